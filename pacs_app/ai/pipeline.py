"""One study's analysis, as a chain of small named steps:

select series -> load (once: modality LUT, MONOCHROME1, geometry) -> preprocess (MONAI
transforms for learned models) -> run each applicable plugin -> assemble findings -> draft.

Each step is timed. A plugin that fails is recorded as a warning and the others still run; a
study with nothing to analyse ends "done with warnings" saying why; only a study whose images
cannot be read at all fails the job, with the reason. Runs in worker processes (imports torch
through the learned-model plugins).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlmodel import Session, col, select

from pacs_app.ai import draft as drafting
from pacs_app.ai.base import Plugin, PluginResult, SeriesVolume, StudyContext
from pacs_app.ai.loading import InstanceRef, SeriesCandidate, SeriesLoadError, load_series
from pacs_app.ai.loading import select_series as choose_series
from pacs_app.ai.plugins import default_plugins
from pacs_app.config import settings
from pacs_app.core.errors import DomainError
from pacs_app.models import AIJob, Centre, Instance, LearnedModel, Series, Study
from pacs_app.services.ai import FindingRecord, Outcome, model_spec, plugin_names
from pacs_app.services.reports import matching_templates
from pacs_app.storage import Storage

log = logging.getLogger("pacs.ai.pipeline")
MAX_SERIES = 4  # image series analysed per study (the order's modality first)


class AnalysisFailed(DomainError):
    """The study cannot be analysed at all (e.g. no image could be decoded)."""

    code = "analysis_failed"


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def step(self, name: str, fn: Callable, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)


def _candidates(session: Session, study: Study, storage: Storage) -> list[SeriesCandidate]:
    out = []
    for series in session.exec(
        select(Series).where(Series.study_pk == study.id).order_by(col(Series.id))
    ):
        instances = session.exec(
            select(Instance)
            .where(Instance.series_pk == series.id)
            .order_by(col(Instance.instance_number), col(Instance.number))
        ).all()
        refs = [
            InstanceRef(
                path=storage.local_path(i.storage_key) or Path(i.storage_key),
                sop_instance_uid=i.sop_instance_uid,
                instance_number=i.instance_number,
                number_of_frames=i.number_of_frames,
                rows=i.rows,
                columns=i.columns,
                dicom_json=i.dicom_json or {},
            )
            for i in instances
        ]
        out.append(
            SeriesCandidate(
                series_uid=series.series_instance_uid,
                modality=series.modality,
                body_part=series.body_part,
                description=series.description,
                instances=refs,
            )
        )
    return out


def learned_plugins(session: Session) -> list[Plugin]:
    """Enabled learned models whose weights are installed and match their sha256."""
    from pacs_app.ai.models import LearnedModelPlugin, model_state

    plugins: list[Plugin] = []
    for row in session.exec(select(LearnedModel).where(col(LearnedModel.enabled))):
        spec = model_spec(row)
        if model_state(spec) == "ready":
            plugins.append(LearnedModelPlugin(spec))
    return plugins


def _evidence_saver(storage: Storage, prefix: str) -> Callable[[str, bytes, str], str]:
    def save(name: str, data: bytes, _media_type: str) -> str:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:80]
        key = f"{prefix}/{safe}"
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            tmp.write(data)
        storage.put_file(key, Path(tmp.name), move=True)
        return key

    return save


def analyse(
    session: Session,
    job: AIJob,
    storage: Storage,
    *,
    plugins: list[Plugin] | None = None,
    device: str | None = None,
) -> Outcome:
    """Run the pipeline for ``job``'s study and return what to store (nothing is written to
    the database here; evidence files go to storage under ``{centre}/{study}/ai/``)."""
    clock = _Clock()
    study = session.get(Study, job.study_pk)
    if study is None:
        raise AnalysisFailed("The study no longer exists.")
    centre = session.get(Centre, study.centre_id)
    warnings: list[str] = []
    if device is None:
        from pacs_app.ai.models import pick_device

        device = pick_device()

    # 1. select series
    candidates = clock.step("select_series", _candidates, session, study, storage)
    selected, skipped = clock.step(
        "select_series", choose_series, candidates, study.modality, study.body_part
    )
    if len(selected) > MAX_SERIES:
        warnings.append(
            f"{len(selected) - MAX_SERIES} further image series not analysed (at most "
            f"{MAX_SERIES} per study)."
        )
        selected = selected[:MAX_SERIES]

    # 2. load each series once
    volumes: list[SeriesVolume] = []
    for candidate in selected:
        try:
            volume = clock.step("load", load_series, candidate)
        except SeriesLoadError as exc:
            warnings.append(f"Series '{candidate.description or candidate.series_uid}': {exc}")
            continue
        warnings.extend(volume.warnings)
        volumes.append(volume)
    if selected and not volumes:
        raise AnalysisFailed("No image of the study could be read: " + " ".join(warnings)[:2000])

    context = StudyContext(
        study_id=study.study_id,
        modality=study.modality,
        body_part=study.body_part,
        description=study.description,
        series=volumes,
        skipped_series=skipped,
        save_evidence=_evidence_saver(
            storage, f"{centre.code if centre else study.centre_id}/{study.study_id}/ai/job{job.id}"
        ),
        device=device,
    )
    if not volumes:
        warnings.append(
            "The study has no image series to analyse"
            + (f" (only {', '.join(sorted({s.modality for s in skipped}))})." if skipped else ".")
        )

    # 3-4. preprocess (inside learned plugins, with MONAI transforms) and run the plugins
    chosen = plugins if plugins is not None else [*default_plugins(), *learned_plugins(session)]
    records: list[FindingRecord] = []
    ran: list[dict] = []
    for plugin in chosen:
        entry = {"name": plugin.name, "version": plugin.version, "kind": plugin.kind}
        try:
            applies = bool(volumes or skipped) and plugin.applies(context)
        except Exception as exc:  # a plugin bug must not stop the others
            log.exception("plugin %s failed in applies()", plugin.name)
            warnings.append(f"Plugin {plugin.name} failed: {type(exc).__name__}: {exc}")
            ran.append({**entry, "ran": False, "error": str(exc)[:300]})
            continue
        if not applies:
            ran.append({**entry, "ran": False})
            continue
        step = "preprocess+infer" if plugin.kind == "learned" else "plugins"
        try:
            result: PluginResult = clock.step(step, plugin.run, context)
        except Exception as exc:
            log.exception("plugin %s failed", plugin.name)
            warnings.append(f"Plugin {plugin.name} failed: {type(exc).__name__}: {exc}")
            ran.append({**entry, "ran": False, "error": str(exc)[:300]})
            continue
        ran.append({**entry, "ran": True, "findings": len(result.findings)})
        warnings.extend(f"{plugin.name}: {w}" for w in result.warnings)
        for f in result.findings:
            unvalidated = bool(f.evidence.get("unvalidated"))
            records.append(
                FindingRecord(
                    plugin=plugin.name,
                    plugin_version=plugin.version,
                    code=f.code[:80],
                    title=f.title[:300],
                    severity=str(f.severity),
                    method=f.method,
                    limitations=f.limitations,
                    value=None if f.value is None else float(f.value),
                    unit=f.unit[:32],
                    value_text=f.value_text[:300],
                    series_uid=f.series_uid or "",
                    evidence=_jsonable(f.evidence),
                    report_text="" if unvalidated else f.report_text,
                    validated=not unvalidated,
                )
            )

    # 5-6. assemble and draft
    ran_names = plugin_names(ran)
    templates = matching_templates(session, study)
    from pacs_app.ai.base import Finding, Severity

    shown = [
        (
            f"{r.plugin} {r.plugin_version}",
            Finding(
                code=r.code,
                title=r.title,
                severity=Severity(r.severity),
                method=r.method,
                limitations=r.limitations,
                report_text=r.report_text,
            ),
        )
        for r in records
        if r.validated
    ]
    made = clock.step(
        "draft",
        drafting.assemble,
        modality=study.modality,
        body_part=study.body_part,
        volumes=volumes,
        findings=shown,
        plugins=ran_names,
        warnings=warnings,
        template_name=templates[0].name if templates and templates[0].modality else None,
    )
    if settings.ai_llm_url and settings.ai_llm_model:
        made, problem = clock.step(
            "rephrase",
            drafting.rephrase,
            made,
            url=settings.ai_llm_url,
            model=settings.ai_llm_model,
            timeout=settings.ai_llm_timeout_seconds,
        )
        if problem:
            warnings.append(problem)
    return Outcome(
        findings=records,
        plugins=ran,
        timings=clock.timings,
        warnings=warnings,
        device=device,
        technique=made.technique,
        draft_findings=made.findings,
        impression=made.impression,
    )


def _jsonable(value):
    """Evidence as JSON (numpy numbers to Python numbers, tuples to lists)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"<array {value.shape}>"
    return value
