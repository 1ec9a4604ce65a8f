"""Database engine, sessions and migrations.

The schema is owned by Alembic (``alembic/``); the application never calls ``create_all``.
SQLite is the embedded default; PostgreSQL (``postgresql+psycopg://``) in production.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, partial
from pathlib import Path

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session, create_engine

from pacs_app.config import ROOT_DIR, settings


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    _use_wal(cursor)
    cursor.close()


WAL_SWITCH_WITHIN_S = 30.0


def _use_wal(cursor) -> None:
    """Put the database in WAL mode, which the file keeps: the first connection to a new
    database switches it. The switch needs the file to itself, and SQLite answers "database
    is locked" at once, without waiting, while another process writes to it or switches it
    too (backends starting together on a new database): try again until it is done."""
    deadline = time.monotonic() + WAL_SWITCH_WITHIN_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _json_dumps(value: object) -> str:
    """The JSON columns' serializer: orjson, with the json module for what orjson refuses
    (integers beyond 64 bits, keys that are not strings)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value)


@cache
def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: ``settings.database_url``), created once per URL."""
    url = url or settings.database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=_json_dumps,
            hide_parameters=True,  # a statement's values are patient data: never in a log
        )
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        pool_size, max_overflow = settings.database_pool
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            json_serializer=_json_dumps,
            hide_parameters=True,
        )
        event.listen(engine, "checkin", _mark_idle)
        event.listen(engine, "checkout", partial(_ping_after_idle, engine.dialect))
    return engine


# A database server's connection that has waited in the pool this long is checked before use.
PING_AFTER_IDLE_S = 10.0


def _mark_idle(_dbapi_connection, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_after_idle(dialect, dbapi_connection, record, _proxy) -> None:
    """Check a pooled connection that has been idle a while before handing it out (the
    server may have closed it, or restarted); one in steady use is not checked, which saves
    a round trip per request. A dead one is replaced: the pool retries the checkout."""
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return
    try:
        alive = dialect.do_ping(dbapi_connection)
    except Exception as exc:
        raise DisconnectionError("the pooled connection is closed") from exc
    if not alive:
        raise DisconnectionError("the pooled connection is closed")


@contextmanager
def pipelined(session: Session) -> Iterator[None]:
    """Send the statements executed inside without waiting for each one's answer, where the
    driver can: psycopg 3's pipeline mode, on PostgreSQL. Elsewhere it changes nothing.

    For writes whose results are not read inside the block (INSERT without RETURNING,
    UPDATE): an upload's rows then cost one round trip instead of one each. A statement's
    error comes when the block ends, raised as SQLAlchemy's exception for it (an
    IntegrityError for a unique violation), as it would have been without the pipeline."""
    conn = session.connection()
    if conn.dialect.driver != "psycopg":
        yield
        return
    import psycopg
    from sqlalchemy.exc import DBAPIError

    try:
        with conn.connection.driver_connection.pipeline():
            yield
    except psycopg.Error as exc:
        raise DBAPIError.instance(None, None, exc, psycopg.Error, dialect=conn.dialect) from exc


class _SqliteWriters:
    """Takes turns between the writers of one SQLite database file: a lock for this
    process's threads, and an ``flock`` on a file beside the database for other processes
    (the web process and its ingest workers). A writer waiting here wakes as soon as the
    one before it commits; SQLite's own busy handler would sleep 1, 2, 5, 10 ms... between
    tries instead."""

    def __init__(self, database: str | None):
        self._threads = threading.Lock()
        self._path = f"{database}.write-lock" if database and database != ":memory:" else None
        self._fd: int | None = None
        self._pid = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            if self._path is None:
                yield
                return
            if self._pid != os.getpid():  # the first use here, or in a forked child
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


@cache
def _sqlite_writers(database: str | None) -> _SqliteWriters:
    return _SqliteWriters(database)


@contextmanager
def write_transaction(session: Session) -> Iterator[None]:
    """A transaction that reads what it will write: everything inside sees the database as
    no other writer changes it until the block ends (it commits inside, or is rolled back).

    PostgreSQL: a plain transaction; the statements lock the rows they read for update.
    SQLite has no row locks, and begins a transaction at its first write, so a row read
    before it could be stale by then: here the writers take turns and the transaction
    begins at once with ``BEGIN IMMEDIATE`` (SQLite's write lock), before the first read;
    there the session must have no transaction open when the block begins."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    with _sqlite_writers(bind.url.database).held():
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            session.rollback()  # before the next writer's turn
            raise
        finally:
            if session.in_transaction():  # the block neither committed nor raised
                session.rollback()


# Processes doing the same work on one database at once (backends starting together: several
# workers of one app, or scale-out) take turns under these locks, the next one finding the work
# done. PostgreSQL: session advisory locks (the migration key is the one earlier versions
# took, so that old and new backends take turns during an upgrade); SQLite: an ``flock`` on a
# file beside the database.
TURN_LOCKS = {"migrate": 0x70616373, "start": 0x70616374}  # "pacs", "pact"


@contextmanager
def one_at_a_time(connection: Connection, name: str) -> Iterator[None]:
    """Hold the lock ``name`` of ``TURN_LOCKS`` for the database of ``connection`` while the
    block runs, waiting for other processes holding it.

    On PostgreSQL the lock is the connection's session's, held across transactions (a
    migration may commit midway), and asked again every half second with no transaction
    open in between: a concurrent index build (migration 0015) waits for every transaction
    begun before it, a waiting lock request's too. The block may use ``connection``."""
    key = TURN_LOCKS[name]
    if connection.dialect.name == "sqlite":
        database = connection.engine.url.database
        if not database or database == ":memory:":
            yield  # a private database: no other process opens it
            return
        fd = os.open(f"{database}.{name}-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
        return
    take = f"SELECT pg_try_advisory_lock({key})"
    while not connection.exec_driver_sql(take).scalar():
        connection.commit()
        time.sleep(0.5)
    connection.commit()
    try:
        yield
    finally:  # before the pool hands the connection out again
        connection.rollback()
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
        connection.commit()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str | None = None):
    from alembic.config import Config

    cfg = Config(str(ROOT_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT_DIR / "alembic"))
    cfg.set_main_option("sqlalchemy.url", (url or settings.database_url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def migrate(url: str | None = None, revision: str = "head") -> None:
    """Apply pending Alembic migrations up to ``revision``."""
    from alembic import command

    url = url or settings.database_url
    get_engine(url)  # creates the SQLite folder if needed
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
