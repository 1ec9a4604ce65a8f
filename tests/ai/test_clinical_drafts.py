"""The AI pipeline on every real clinical file in the shared test data: each ends done (or done
with warnings, saying why) with a draft; the drafts land in test-artifacts/ai-drafts.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from pacs_app.models import AIJob, JobStatus, Role, Study
from pacs_app.services import ai
from pacs_app.services.ingest import StagedFile, ingest
from pacs_app.storage import LocalStorage
from tests.dicom_factory import TESTDATA
from tests.factories import actor_of, make_centre, make_user

CLINICAL = TESTDATA / "clinical"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_every_clinical_file_gets_an_honest_draft(engine, database_url, session, tmp_path):
    if not database_url.startswith("sqlite"):
        pytest.skip("the pipeline does not depend on the database; SQLite run covers it")
    files = sorted(CLINICAL.glob("*.dcm")) if CLINICAL.exists() else []
    if not files:
        pytest.skip(f"no test data in {CLINICAL}")
    from pacs_app.ai import worker

    storage = LocalStorage(tmp_path / "store")
    centre = make_centre(session, "CLIN")
    tech = actor_of(make_user(session, Role.TECHNICIAN, centre=centre))
    admin = actor_of(make_user(session, Role.ADMIN))
    url = engine.url.render_as_string(hide_password=False)
    out = ["# AI drafts for ../shared/testdata/dicom/clinical/", ""]
    for path in files:
        result = ingest(
            session=session, actor=tech, files=[StagedFile(path.name, path)], storage=storage
        )
        study_id = result.studies[0].study_id
        assert worker.run_once(url=url, storage=storage) in ("done", "failed")
        session.expire_all()
        study = session.exec(select(Study).where(Study.study_id == study_id)).one()
        job = session.exec(select(AIJob).where(AIJob.study_pk == study.id)).one()
        assert job.status in (JobStatus.DONE, JobStatus.DONE_WITH_WARNINGS), (path.name, job.error)
        report = ai.ai_report(session=session, actor=admin, study_id=study_id)
        assert report.draft is not None, path.name
        assert report.draft.findings.startswith("AI-GENERATED PRELIMINARY DRAFT")
        for finding in report.findings:
            assert finding.method and finding.limitations, (path.name, finding.code)
        out += [
            f"## {path.name} ({study.modality} {study.body_part}) - {job.status.value}, "
            f"{job.timings.get('total', 0):.2f} s",
            "",
            "```",
            report.draft.findings,
            "",
            "Impression: " + report.draft.impression,
            "```",
            "",
        ]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "ai-drafts.md").write_text("\n".join(out), encoding="utf-8")
