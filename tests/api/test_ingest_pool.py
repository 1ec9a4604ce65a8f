"""`POST /studies` through the ingest processes (real child processes, on both databases).

The TestClient runs the API without the Reflex lifespan that starts the pool in `reflex
run`; each test starts one in the client's event loop, on the test's database and storage.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import sys
import time

import pytest
from sqlmodel import func, select

from pacs_app.api import ingest_pool
from pacs_app.models import Instance, Role, Study
from pacs_app.models.audit import AuditEvent
from pacs_app.services import uploads
from tests.dicom_factory import make_series
from tests.factories import PASSWORD, make_centre, make_user


@pytest.fixture
def tech(api, session):
    make_user(session, Role.TECHNICIAN, centre=make_centre(session, "NORTH"), username="tech")
    r = api.post("/auth/token", data={"username": "tech", "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def pool(api, database_url, storage_root, monkeypatch):
    """A pool of ``request.param`` (default 1) children, stopped after the test."""
    from pacs_app.config import settings

    monkeypatch.setattr(settings, "database_url", database_url)  # what the children use

    def start(processes: int = 1) -> ingest_pool.IngestPool:
        started = api.portal.call(ingest_pool.start, processes)
        assert started is not None and started.live == processes
        return started

    yield start
    api.portal.call(ingest_pool.stop)


def _post(api, headers, paths, **fields):
    files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in paths]
    return api.post("/studies", headers=headers, files=files, data=fields)


def _staged(storage_root):
    staging = storage_root / ".staging"
    return sorted(staging.iterdir()) if staging.exists() else []


def _children() -> set[int]:
    pool = ingest_pool.current()
    return {c.process.pid for c in pool._children} if pool else set()


def test_uploads_are_ingested_by_the_children(api, tech, pool, session, tmp_path, storage_root):
    started = pool(2)
    workers = _children()
    paths = make_series(tmp_path / "s", 3, patient_name="DOE^JANE")

    r = _post(api, tech, paths, patient_age="47", priority="urgent")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["stored"] == 3 and body["duplicates"] == 0
    assert body["studies"][0]["patient_age"] == "047Y"
    assert body["studies"][0]["priority"] == "urgent"
    assert len(body["study_id"]) == 8

    again = _post(api, tech, paths[:2])
    assert again.status_code == 201 and again.json()["duplicates"] == 2

    session.expire_all()
    assert session.exec(select(func.count()).select_from(Instance)).one() == 3
    study = session.exec(select(Study)).one()
    assert study.study_id == body["study_id"] and study.num_instances == 3
    # the audit trail names the technician, as the in-process path does
    assert (
        session.exec(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "study.uploaded")
        ).one()
        == 2
    )
    assert _staged(storage_root) == []  # the children removed the staged names
    assert started.answered == 2  # the children did the work, not the web process
    assert ingest_pool.current() is started and _children() == workers  # none was replaced
    assert all(pid != os.getpid() for pid in workers)


def _batch(api, headers, paths, **form) -> str:
    batch = api.post("/uploads", headers=headers, json=form).json()["batch_id"]
    for p in paths:
        r = api.put(
            f"/uploads/{batch}/files",
            headers=headers,
            params={"name": p.name},
            content=p.read_bytes(),
        )
        assert r.status_code == 200, r.text
    return batch


def test_a_web_uploader_batch_is_committed_by_a_child(
    api, tech, pool, session, tmp_path, storage_root
):
    started = pool(1)
    batch = _batch(api, tech, make_series(tmp_path / "s", 3), patient_name="ROE^RAY")

    r = api.post(f"/uploads/{batch}/commit", headers=tech)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["stored"] == 3 and body["studies"][0]["patient_name"] == "ROE^RAY"
    assert started.answered == 1  # the child ingested it, not the web process
    assert not (storage_root / ".staging" / batch).exists()
    session.expire_all()
    assert session.exec(select(func.count()).select_from(Instance)).one() == 3
    assert api.post(f"/uploads/{batch}/commit", headers=tech).status_code == 404

    # the child's refusals are the API's: a batch holding a refused file stores nothing
    junk = tmp_path / "notes.dcm"
    junk.write_text("not DICOM")
    refused = _batch(api, tech, [*make_series(tmp_path / "t", 1), junk])
    r = api.post(f"/uploads/{refused}/commit", headers=tech)
    assert r.status_code == 422 and "notes.dcm" in r.json()["detail"]
    assert started.answered == 3  # the commit, the 404 of its re-commit, this refusal
    session.expire_all()
    assert session.exec(select(func.count()).select_from(Instance)).one() == 3


def test_long_uploads_leave_a_child_free_for_single_instances(
    api, tech, pool, session, tmp_path, storage_root
):
    """Two large web batches commit one after the other on a pool of two, and a modality's
    single instance, sent after both, is answered first, by the child they leave free (with
    both batches in the children it would wait for one to finish)."""
    started = pool(2)
    assert started.long_slots == 1
    token = tech["Authorization"].removeprefix("Bearer ")
    batches = [_batch(api, tech, make_series(tmp_path / name, 150)) for name in ("a", "b")]
    (single,) = make_series(tmp_path / "single", 1)
    staged = uploads.staging_root() / "post-test-000001"
    shutil.copyfile(single, staged)
    data = staged.read_bytes()
    messages = [
        ("a", {"kind": ingest_pool.BATCH, "token": token, "address": None, "batch_id": batches[0]}),
        ("b", {"kind": ingest_pool.BATCH, "token": token, "address": None, "batch_id": batches[1]}),
        (
            "single",
            {
                "token": token,
                "address": None,
                "files": [[single.name, str(staged), len(data), hashlib.sha256(data).hexdigest()]],
                "fields": {},
            },
        ),
    ]
    assert [ingest_pool.is_long(m) for _, m in messages] == [True, True, False]

    async def race() -> list[tuple[str, int]]:
        answered: list[tuple[str, int]] = []

        async def send(name: str, message: dict) -> None:
            answered.append((name, (await started.run(message))["status"]))

        await asyncio.gather(*(send(name, message) for name, message in messages))
        return answered

    assert api.portal.call(race) == [("single", 201), ("a", 201), ("b", 201)]
    session.expire_all()
    assert session.exec(select(func.count()).select_from(Instance)).one() == 301
    assert _staged(storage_root) == []


def test_a_lone_sender_keeps_to_the_child_that_answered_last(
    api, tech, pool, tmp_path, storage_root
):
    """The child that answered last takes the next upload (its caches are current), so the
    idle children stay in the same order while one sender sends one upload after another."""
    started = pool(2)
    orders = []
    for i in range(3):
        r = _post(api, tech, make_series(tmp_path / f"s{i}", 1))
        assert r.status_code == 201, r.text
        orders.append([c.process.pid for c in started._idle._queue])
    assert len(orders[0]) == 2 and orders[0] == orders[1] == orders[2]


def test_refusals_come_back_as_the_api_answers_them(
    api, tech, pool, session, tmp_path, storage_root
):
    pool()
    text_file = tmp_path / "notes.dcm"
    text_file.write_text("not DICOM")
    r = _post(api, tech, [text_file, *make_series(tmp_path / "s", 1)])
    assert r.status_code == 422
    assert "notes.dcm" in r.json()["detail"] and r.json()["code"] == "invalid_dicom"

    bad_age = _post(api, tech, make_series(tmp_path / "a", 1), patient_age="forty")
    assert bad_age.status_code == 422 and "patient_age" in bad_age.json()["detail"]

    # a token that is well signed but revoked is refused by the child, with the header
    api.post("/auth/logout", headers=tech)
    revoked = _post(api, tech, make_series(tmp_path / "r", 1))
    assert revoked.status_code == 401
    assert revoked.headers["www-authenticate"] == "Bearer"

    session.expire_all()
    assert session.exec(select(func.count()).select_from(Study)).one() == 0
    assert _staged(storage_root) == []
    assert not [p for p in storage_root.rglob("*.dcm")]


def test_a_child_that_dies_is_replaced_and_its_upload_answered_503(
    api, tech, pool, session, tmp_path, storage_root
):
    pool(1)
    (dead,) = _children()
    os.kill(dead, signal.SIGKILL)
    os.waitpid(dead, 0)

    r = _post(api, tech, make_series(tmp_path / "s", 2))
    assert r.status_code == 503
    assert "send the upload again" in r.json()["detail"]
    assert _staged(storage_root) == []

    for _ in range(200):  # the replacement starts in the background
        if _children() - {dead}:
            break
        time.sleep(0.1)
    assert _children() and dead not in _children()
    again = _post(api, tech, make_series(tmp_path / "t", 2))
    assert again.status_code == 201, again.text
    session.expire_all()
    assert session.exec(select(func.count()).select_from(Instance)).one() == 2


def test_without_a_child_the_web_process_ingests(
    api, tech, database_url, storage_root, tmp_path, monkeypatch
):
    from pacs_app.config import settings

    monkeypatch.setattr(settings, "database_url", database_url)
    monkeypatch.setattr(sys, "executable", "/bin/false")  # every child fails to start
    try:
        assert api.portal.call(ingest_pool.start, 2) is not None
        assert ingest_pool.current() is None
        r = _post(api, tech, make_series(tmp_path / "s", 2))
        assert r.status_code == 201, r.text
    finally:
        api.portal.call(ingest_pool.stop)


def test_the_default_number_of_processes(monkeypatch):
    from pacs_app.config import Settings

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert Settings(ingest_processes=None).ingest_process_count == 2
    assert Settings(ingest_processes=None, redis_url="redis://x").ingest_process_count == 0
    assert Settings(ingest_processes=0).ingest_process_count == 0
    monkeypatch.setattr(os, "cpu_count", lambda: 32)
    assert Settings(ingest_processes=None).ingest_process_count == 8
