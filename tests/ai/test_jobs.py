"""AI jobs end to end, on SQLite and PostgreSQL: queued at upload, claimed once, analysed by the
real pipeline and plugins, recovered after a crash, findings decided, draft accepted."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, func, select

from pacs_app.core.errors import Conflict, NotFound, PermissionDenied
from pacs_app.models import (
    AIFinding,
    AIJob,
    Centre,
    Decision,
    Instance,
    JobStatus,
    Report,
    Role,
    Study,
)
from pacs_app.models.base import utcnow
from pacs_app.services import ai, reports, workflow
from pacs_app.services.ingest import StagedFile, StudyForm, ingest
from pacs_app.storage import LocalStorage
from tests.dicom_factory import TESTDATA, make_series
from tests.factories import actor_of, make_centre, make_user

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def storage(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


@pytest.fixture
def people(session):
    centre = make_centre(session, "AICTR")
    return {
        "centre": centre,
        "tech": actor_of(make_user(session, Role.TECHNICIAN, centre=centre)),
        "tele": actor_of(make_user(session, Role.RADIOLOGIST, username="tele-ai")),
        "admin": actor_of(make_user(session, Role.ADMIN)),
        "manager": actor_of(make_user(session, Role.CENTRE, centre=centre)),
    }


def _ingest(session, storage, people, paths, **form) -> Study:
    result = ingest(
        session=session,
        actor=people["tech"],
        files=[StagedFile(name=p.name, path=p) for p in paths],
        form=StudyForm(**form),
        storage=storage,
    )
    session.expire_all()
    return session.exec(select(Study).where(Study.study_id == result.studies[0].study_id)).one()


def _jobs(session, study: Study) -> list[AIJob]:
    session.expire_all()
    return list(session.exec(select(AIJob).where(AIJob.study_pk == study.id)))


def _run(engine, storage) -> str | None:
    from pacs_app.ai import worker

    return worker.run_once(
        url=str(engine.url.render_as_string(hide_password=False)), storage=storage
    )


def test_an_upload_queues_one_job_and_the_worker_analyses_it(
    engine, session, storage, people, tmp_path
):
    study = _ingest(
        session, storage, people, make_series(tmp_path / "ct", 6, size=64), modality="CT"
    )
    jobs = _jobs(session, study)
    assert [(j.status, j.trigger) for j in jobs] == [(JobStatus.QUEUED, "upload")]
    # asking again while one is queued gives the same job, not a second
    again = ai.request_analysis(session=session, actor=people["tele"], study_id=study.study_id)
    assert again.id == jobs[0].id

    assert _run(engine, storage) == "done"
    assert _run(engine, storage) is None  # nothing left

    job = _jobs(session, study)[0]
    assert job.status in (JobStatus.DONE, JobStatus.DONE_WITH_WARNINGS), job.error
    assert job.device == "cpu" and job.timings["total"] > 0
    assert {"select_series", "load", "plugins", "draft"} <= set(job.timings)
    ran = {p["name"] for p in job.plugins if p["ran"]}
    assert ran  # the default plugins that apply to CT ran
    assert job.draft_technique.startswith("AI-GENERATED PRELIMINARY DRAFT")

    report = ai.ai_report(session=session, actor=people["tele"], study_id=study.study_id)
    assert report.findings and report.draft is not None
    for finding in report.findings:
        assert finding.method and finding.limitations
    # the centre sees the state, not the findings
    centre_view = ai.ai_report(session=session, actor=people["manager"], study_id=study.study_id)
    assert centre_view.job.status == job.status and centre_view.findings == []
    with pytest.raises(PermissionDenied):
        ai.request_analysis(session=session, actor=people["manager"], study_id=study.study_id)


def test_an_upload_in_parts_queues_one_analysis_until_it_has_run(
    session, storage, people, tmp_path
):
    from pydicom.uid import generate_uid

    uid = generate_uid()
    parts = [make_series(tmp_path / f"p{i}", 2, study_uid=uid, size=32) for i in range(3)]
    study = _ingest(session, storage, people, parts[0])
    assert _ingest(session, storage, people, parts[1]).id == study.id
    [job] = _jobs(session, study)
    assert job.status is JobStatus.QUEUED  # the second part found it queued
    session.exec(update(AIJob).where(AIJob.id == job.id).values(status=JobStatus.DONE))
    session.commit()
    _ingest(session, storage, people, parts[2])  # after it ran: the new part is analysed
    assert sorted(j.status for j in _jobs(session, study)) == sorted(
        [JobStatus.DONE, JobStatus.QUEUED]
    )


def _quiet_for(session, study: Study, seconds: int) -> None:
    """As if the study had received nothing for ``seconds``."""
    session.exec(
        update(Instance)
        .where(Instance.study_pk == study.id)
        .values(received_at=utcnow() - timedelta(seconds=seconds))
    )
    session.commit()


def test_an_analysis_waits_for_the_whole_study_and_runs_again_if_it_grew(
    engine, session, storage, people, tmp_path, monkeypatch
):
    from pydicom.uid import generate_uid

    from pacs_app.config import settings

    monkeypatch.setattr(settings, "ai_settle_seconds", 60)
    uid = generate_uid()
    study = _ingest(
        session, storage, people, make_series(tmp_path / "a", 3, study_uid=uid, size=64)
    )
    assert _run(engine, storage) is None  # still receiving (as a modality sends): not yet
    _quiet_for(session, study, 61)
    # a change of workflow (here its change stamp, as an assignment moves it) is not receiving
    session.exec(update(Study).where(Study.id == study.id).values(updated_at=utcnow()))
    session.commit()

    # it begins; two more instances come while it runs
    job = ai.claim_next(session, worker="w1")
    assert job is not None and job.study_pk == study.id
    _ingest(session, storage, people, make_series(tmp_path / "b", 2, study_uid=uid, size=64))
    assert [j.status for j in _jobs(session, study)] == [JobStatus.RUNNING]  # no second job
    partial = ai.Outcome(
        findings=[], plugins=[], timings={}, warnings=[], device="cpu", draft_findings="part"
    )
    # its draft would speak of 3 of the 5 instances: not stored, queued again
    assert ai.complete(session, job.id, partial, worker="w1") is ai.Completion.REQUEUED
    [job] = _jobs(session, study)
    assert (job.status, job.attempts, job.worker, job.draft_findings) == (
        JobStatus.QUEUED,
        0,
        "",
        "",
    )
    assert job.started_at is None
    assert _run(engine, storage) is None  # it waits for the study to be quiet again
    _quiet_for(session, study, 61)
    assert _run(engine, storage) == "done"
    [job] = _jobs(session, study)
    assert job.status in (JobStatus.DONE, JobStatus.DONE_WITH_WARNINGS) and job.attempts == 1
    assert job.draft_findings != "part"
    # a job asked for by hand does not wait
    request = ai.request_analysis(session=session, actor=people["tele"], study_id=study.study_id)
    assert request.trigger == "manual"
    assert ai.claim_next(session, worker="w2").id == request.id


def test_centres_can_turn_automatic_analysis_off(session, storage, people, tmp_path):
    centre = session.get(Centre, people["centre"].id)
    centre.ai_auto_process = False
    session.add(centre)
    session.commit()
    study = _ingest(session, storage, people, make_series(tmp_path / "a", 2, size=32))
    assert _jobs(session, study) == []
    job = ai.request_analysis(session=session, actor=people["admin"], study_id=study.study_id)
    assert job.status is JobStatus.QUEUED and job.trigger == "manual"


def test_two_workers_never_claim_the_same_job(engine, session, storage, people, tmp_path):
    centre = session.get(Centre, people["centre"].id)
    centre.ai_auto_process = False
    session.add(centre)
    session.commit()
    studies = [
        _ingest(session, storage, people, make_series(tmp_path / f"s{i}", 1, size=32))
        for i in range(6)
    ]
    for s in studies:
        ai.enqueue(session, s, trigger="manual")
    session.commit()
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        with Session(engine, expire_on_commit=False) as own:
            barrier.wait()
            while (job := ai.claim_next(own, worker=name)) is not None:
                claimed[name].append(job.id)

    threads = [threading.Thread(target=work, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = claimed["a"] + claimed["b"]
    assert len(everything) == len(set(everything)) == 6, claimed
    session.expire_all()
    assert {j.attempts for j in session.exec(select(AIJob))} == {1}


def test_a_job_left_running_by_a_crash_is_retried_then_failed(
    session, storage, people, tmp_path, settings, monkeypatch
):
    monkeypatch.setattr(settings, "ai_job_max_attempts", 2)
    study = _ingest(session, storage, people, make_series(tmp_path / "c", 1, size=32))
    job = ai.claim_next(session, worker="crashed:1")
    assert job is not None and job.study_pk == study.id
    later = utcnow() + timedelta(seconds=settings.ai_job_stale_seconds + 5)
    assert ai.recover_stale(session, now=later) == (1, 0)
    assert _jobs(session, study)[0].status is JobStatus.QUEUED
    job = ai.claim_next(session, worker="crashed:2")
    assert job.attempts == 2
    assert ai.recover_stale(session, now=later + timedelta(seconds=1)) == (0, 1)
    failed = _jobs(session, study)[0]
    assert failed.status is JobStatus.FAILED and "stopped while analysing" in failed.error
    # the study stays readable and can be analysed again on request
    again = ai.request_analysis(session=session, actor=people["tele"], study_id=study.study_id)
    assert again.id != failed.id and again.status is JobStatus.QUEUED


def test_a_study_without_images_ends_done_with_warnings(engine, session, storage, people):
    sr = TESTDATA / "non_image" / "test-SR.dcm"
    if not sr.exists():
        pytest.skip(f"test data not found: {sr}")
    study = _ingest(session, storage, people, [sr])
    assert _run(engine, storage) == "done"
    job = _jobs(session, study)[0]
    assert job.status is JobStatus.DONE_WITH_WARNINGS
    assert any("no image series" in w for w in job.warnings), job.warnings


def test_an_undecodable_study_fails_with_a_reason_and_the_worker_goes_on(
    engine, session, storage, people, tmp_path
):
    # a file ingest accepts (its header is sound) whose JPEG data no decoder can read
    broken = TESTDATA / "malformed" / "JPEG-lossy.dcm"
    if not broken.exists():
        pytest.skip(f"test data not found: {broken}")
    study = _ingest(session, storage, people, [broken])
    good = _ingest(session, storage, people, make_series(tmp_path / "ok", 2, size=32))
    assert sorted([_run(engine, storage), _run(engine, storage)]) == ["done", "failed"]
    bad_job, good_job = _jobs(session, study)[0], _jobs(session, good)[0]
    assert bad_job.status is JobStatus.FAILED
    assert "could be read" in bad_job.error and "cannot be decoded" in bad_job.error
    assert good_job.status in (JobStatus.DONE, JobStatus.DONE_WITH_WARNINGS)
    # the study itself stays readable
    detail = reports.get_report(session=session, actor=people["admin"], study_id=study.study_id)
    assert detail.study.num_instances == 1


def test_findings_are_decided_and_only_accepted_ones_reach_the_report(
    engine, session, storage, people, tmp_path
):
    study = _ingest(
        session, storage, people, make_series(tmp_path / "d", 6, size=64), modality="CT"
    )
    assert _run(engine, storage) == "done"
    tele = people["tele"]
    workflow.claim(session=session, actor=tele, study_id=study.study_id)
    view = reports.get_report(session=session, actor=tele, study_id=study.study_id)
    assert view.ai_draft is not None and "AI" in view.ai_draft.findings + view.ai_draft.model
    findings = ai.ai_report(session=session, actor=tele, study_id=study.study_id).findings
    with_text = [f for f in findings if f.report_text]
    assert with_text, [f.code for f in findings]
    rejected = with_text[0]
    ai.decide(session=session, actor=tele, finding_id=rejected.id, decision="rejected")
    if len(with_text) > 1:
        ai.decide(
            session=session,
            actor=tele,
            finding_id=with_text[1].id,
            decision="edited",
            text="Radiologist's own wording.",
        )
    with pytest.raises(NotFound):  # someone who cannot see the study cannot decide
        other = actor_of(make_user(session, Role.RADIOLOGIST, username="tele-other"))
        ai.decide(session=session, actor=other, finding_id=rejected.id, decision="accepted")

    draft = ai.accept_draft(session=session, actor=tele, study_id=study.study_id)
    assert draft.source == "ai"
    assert rejected.report_text not in draft.findings
    if len(with_text) > 1:
        assert "Radiologist's own wording." in draft.findings
    assert draft.findings.startswith("[AI-generated preliminary draft")
    session.expire_all()
    rows = session.exec(select(AIFinding).where(AIFinding.study_pk == study.id)).all()
    assert Decision.PENDING not in {f.decision for f in rows if f.report_text}
    report = session.exec(select(Report).where(Report.study_pk == study.id)).one()
    assert report.source.value == "ai" and "job" in report.source_detail
    with pytest.raises(Conflict, match="confirm"):
        ai.accept_draft(session=session, actor=tele, study_id=study.study_id)


def test_the_web_process_never_imports_torch():
    code = (
        "import sys; import pacs_app.pacs_app; import pacs_app.api.main; "
        "import pacs_app.services.ai, pacs_app.ai.worker; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'monai' not in sys.modules, 'monai imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_pacs_worker_command_runs_a_job(engine, session, storage, people, tmp_path):
    study = _ingest(session, storage, people, make_series(tmp_path / "w", 3, size=32))
    env = {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "STORAGE_PATH": str(storage.root),
        "PATH": "/usr/bin:/bin",
        "AI_SETTLE_SECONDS": "0",  # claimed at once (the wait has its own test)
    }
    pacs = shutil.which("pacs", path=str(ROOT / ".venv/bin")) or str(ROOT / ".venv/bin/pacs")
    result = subprocess.run(
        [pacs, "worker", "--once"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "done"
    assert _jobs(session, study)[0].status in (JobStatus.DONE, JobStatus.DONE_WITH_WARNINGS)
    session.execute(update(Study).where(Study.id == study.id).values(updated_at=utcnow()))
    session.commit()
    assert session.exec(select(func.count()).select_from(AIFinding)).one() > 0
