"""Shared fixtures: one migrated database per backend (SQLite always, PostgreSQL when
``TEST_DATABASE_URL`` names a server), clean tables per test, an API client.

The environment is set before ``pacs_app`` is imported, so the tests never touch the
developer's ``data/pacs.db`` or ``.env``.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="pacs-tests-"))
os.environ.update(
    {
        "PACS_ENV": "development",
        "SECRET_KEY": "test-secret-key-" + secrets.token_hex(16),
        "DATABASE_URL": f"sqlite:///{_TMP / 'default.db'}",
        "STORAGE_PATH": str(_TMP / "storage"),
        "SEED_DEMO_DATA": "false",
        # analyses start as soon as they are queued (tests/ai/test_jobs.py covers the wait)
        "AI_SETTLE_SECONDS": "0",
    }
)

import pytest  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlmodel import Session, SQLModel  # noqa: E402

import pacs_app.models  # noqa: E402, F401
from pacs_app.core import db  # noqa: E402

BACKENDS = ["sqlite", "postgresql"]


def _require_postgres() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests skipped (.ci/run sets it)")
    return url


@contextmanager
def _new_database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of a new, empty database of ``backend`` (a file in ``folder`` for SQLite),
    dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'pacs.db'}"
        try:
            yield url
        finally:
            db.get_engine(url).dispose()
        return

    base = make_url(_require_postgres())
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    name = f"pacs_test_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        db.get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """A freshly migrated database of each backend, for the whole session."""
    with _new_database(request.param, tmp_path_factory.mktemp("sqlite")) as url:
        db.migrate(url)
        yield url


@pytest.fixture(params=BACKENDS)
def empty_database_url(request, tmp_path) -> Iterator[str]:
    """A new database of each backend with no tables, for this test alone (migrations)."""
    with _new_database(request.param, tmp_path) as url:
        yield url


def _truncate(engine: Engine) -> None:
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def engine(database_url: str) -> Engine:
    engine = db.get_engine(database_url)
    _truncate(engine)
    return engine


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def storage_root(tmp_path, monkeypatch) -> Path:
    """A fresh STORAGE_PATH for this test, used by everything that calls get_storage()."""
    from pacs_app.config import settings as live
    from pacs_app.storage import get_storage

    root = tmp_path / "storage"
    monkeypatch.setattr(live, "storage_path", root)
    get_storage.cache_clear()
    yield root
    get_storage.cache_clear()


@pytest.fixture
def api(engine: Engine, storage_root: Path):
    """A TestClient for the REST API, on the test database and a fresh storage folder."""
    from fastapi.testclient import TestClient

    from pacs_app.api import build_api
    from pacs_app.api.deps import get_session

    app = build_api()

    def _session() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as s:
            yield s

    app.dependency_overrides[get_session] = _session
    with TestClient(app) as client:
        yield client


@pytest.fixture
def settings(monkeypatch):
    """The live settings object; tests change fields with ``monkeypatch.setattr``."""
    from pacs_app.config import settings as live

    return live


@pytest.fixture
def dcmtk():
    """DCMTK's echoscu and storescu (by path: see tests/dcmtk.py), the reference DICOM
    senders; required in CI (``.ci/run`` sets PACS_REQUIRE_DCMTK=1), skipped with the reason
    elsewhere."""
    from types import SimpleNamespace

    from tests.dcmtk import required

    storescu, echoscu = required("storescu", "echoscu")
    return SimpleNamespace(storescu=storescu, echoscu=echoscu)


@pytest.fixture
def redis_url() -> str:
    """A Redis server's URL (what REDIS_URL names for several backend workers): the local
    one, required in CI (``.ci/run`` sets PACS_REQUIRE_REDIS=1), skipped with the reason
    elsewhere. Its database 14, which nothing else here uses."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            alive = conn.recv(16).startswith(b"+PONG")
    except OSError:
        alive = False
    if alive:
        return "redis://127.0.0.1:6379/14"
    if os.environ.get("PACS_REQUIRE_REDIS") == "1":
        pytest.fail("Redis is required on 127.0.0.1:6379 (apt-get install redis-server)")
    pytest.skip("no Redis on 127.0.0.1:6379 (apt-get install redis-server)")


@pytest.fixture
def unused_port() -> int:
    """A local port nothing listens on now (for a workstation's own storage SCP)."""
    from tests.processes import free_port

    return free_port()
