"""The database server's connection pool: a connection idle a while is checked before use,
and a dead one replaced; one in steady use is not checked (a round trip per request)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pacs_app.core import db


@pytest.fixture
def server_engine(database_url):
    if make_url(database_url).get_backend_name() == "sqlite":
        pytest.skip("SQLite has no server connection to lose")
    fresh = db.get_engine.__wrapped__(database_url)  # not the shared, cached one
    yield fresh
    fresh.dispose()


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _pings(engine, monkeypatch) -> list[int]:
    calls: list[int] = []
    real = engine.dialect.do_ping

    def counting(dbapi_connection):
        calls.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return calls


def _terminate(database_url: str, pid: int) -> None:
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    finally:
        admin.dispose()


def test_a_connection_in_steady_use_is_not_pinged(server_engine, monkeypatch):
    pings = _pings(server_engine, monkeypatch)
    first = _backend_pid(server_engine)
    assert _backend_pid(server_engine) == first  # the same pooled connection, handed out again
    assert pings == []


def test_an_idle_connection_killed_by_the_server_is_replaced(
    server_engine, database_url, monkeypatch
):
    pings = _pings(server_engine, monkeypatch)
    dead = _backend_pid(server_engine)
    _terminate(database_url, dead)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # as if it had waited in the pool

    replacement = _backend_pid(server_engine)  # no error reaches the caller

    assert replacement != dead
    assert pings  # it was checked, found dead, and replaced
