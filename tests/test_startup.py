"""Settings safety, migrations and start-up bootstrap."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlmodel import Session, func, select

from pacs_app.config import DEV_SECRET_KEY, Environment, InsecureConfiguration, Settings
from pacs_app.core import db
from pacs_app.models import Centre, User
from pacs_app.services import seed, system


@pytest.mark.parametrize("key", [DEV_SECRET_KEY, "short-key"])
def test_production_refuses_an_unsafe_secret_key(key):
    with pytest.raises(InsecureConfiguration, match="SECRET_KEY"):
        Settings(pacs_env="production", secret_key=key, _env_file=None)


def test_production_accepts_a_strong_secret_key():
    s = Settings(pacs_env="production", secret_key="x" * 48, _env_file=None)
    assert s.is_production and not s.demo_data_allowed


def test_development_is_the_default(monkeypatch):
    monkeypatch.delenv("PACS_ENV")
    s = Settings(_env_file=None, seed_demo_data=True)
    assert s.pacs_env is Environment.DEVELOPMENT and s.demo_data_allowed


def test_migrations_create_the_schema_and_match_the_models(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    engine = db.get_engine(database_url)
    assert db.current_revision(database_url) == db.head_revision()
    assert {"centre", "user_account", "audit_event", "revoked_token"} <= set(
        inspect(engine).get_table_names()
    )
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata
        )
    assert diff == []


def test_migrations_downgrade_and_upgrade_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'cycle.db'}"
    db.migrate(url)
    db.migrate(url, "head")  # idempotent
    from alembic import command

    command.downgrade(db.alembic_config(url), "base")
    assert "user_account" not in inspect(db.get_engine(url)).get_table_names()
    db.migrate(url)
    assert db.current_revision(url) == db.head_revision()


def _count(engine, model) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_bootstrap_seeds_the_demo_users_once_in_development(
    engine, database_url, settings, monkeypatch
):
    monkeypatch.setattr(settings, "seed_demo_data", True)
    system.bootstrap(url=database_url)
    assert _count(engine, User) == 4 and _count(engine, Centre) == 1
    system.bootstrap(url=database_url)
    assert _count(engine, User) == 4
    with Session(engine) as s:
        by_name = {u.username: u for u in s.exec(select(User))}
    assert by_name["admin"].email == "admin@pacs.local" and by_name["admin"].centre_id is None
    assert by_name["radiologist"].centre_id is None  # a tele-radiologist
    assert by_name["centre"].centre_id == by_name["technician"].centre_id is not None


def test_production_never_seeds_and_refuses_demo_passwords(
    engine, database_url, settings, monkeypatch
):
    monkeypatch.setattr(settings, "seed_demo_data", True)
    monkeypatch.setattr(settings, "pacs_env", Environment.PRODUCTION)
    system.bootstrap(url=database_url)
    assert _count(engine, User) == 0

    with Session(engine) as s:
        monkeypatch.setattr(settings, "pacs_env", Environment.DEVELOPMENT)
        seed.seed_demo_data(s)
    monkeypatch.setattr(settings, "pacs_env", Environment.PRODUCTION)
    with pytest.raises(system.UnsafeToStart, match="admin, radiologist, centre, technician"):
        system.bootstrap(url=database_url)


def test_every_setting_is_documented_in_env_example():
    from pacs_app.config import ROOT_DIR

    documented = {
        line.split("=", 1)[0].strip()
        for line in (ROOT_DIR / ".env.example").read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert {name.upper() for name in Settings.model_fields} == documented


def test_the_example_environment_file_loads_as_it_is(tmp_path):
    """A new user copies .env.example to .env: its empty values mean "unset"."""
    from pacs_app.config import ROOT_DIR

    env = tmp_path / ".env"
    env.write_text((ROOT_DIR / ".env.example").read_text())
    loaded = Settings(_env_file=str(env))
    assert loaded.frontend_port is None and loaded.ingest_processes is None
    assert loaded.redis_url is None


def test_the_postgresql_pool_follows_the_settings(monkeypatch, database_url):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(_env_file=None, database_pool_size=0)
    if not database_url.startswith("postgresql"):
        return  # SQLite's connections are not pooled to a server
    from pacs_app.config import settings

    monkeypatch.setattr(settings, "database_pool_size", 3)
    monkeypatch.setattr(settings, "database_max_overflow", 4)
    engine = db.get_engine(f"{database_url}?application_name=pool-test")  # an engine of its own
    try:
        assert (engine.pool.size(), engine.pool._max_overflow) == (3, 4)
    finally:
        engine.dispose()


def test_each_worker_takes_a_share_of_the_connections_unless_told(monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert Settings(_env_file=None).database_pool == (10, 20)  # one backend worker
    several = Settings(_env_file=None, redis_url="redis://x")
    assert several.backend_worker_count == 8 and several.database_pool == (5, 5)  # 80 in all
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert Settings(_env_file=None, redis_url="redis://x").database_pool == (8, 8)  # 5 workers
    told = Settings(_env_file=None, redis_url="redis://x", database_pool_size=3)
    assert told.database_pool == (3, 13)
    told = Settings(_env_file=None, database_pool_size=2, database_max_overflow=0)
    assert told.database_pool == (2, 0)


def test_start_up_warns_where_the_workers_could_open_more_connections_than_allowed(
    monkeypatch, database_url, caplog
):
    import os

    from pacs_app.config import settings

    monkeypatch.setattr(settings, "redis_url", "redis://127.0.0.1:6379/14")
    monkeypatch.setattr(os, "cpu_count", lambda: 4)  # Reflex then starts 8 workers
    assert system.connection_budget_exceeded(database_url) is None  # their share: 80 in all
    monkeypatch.setattr(settings, "database_pool_size", 10)
    monkeypatch.setattr(settings, "database_max_overflow", 20)
    budget = system.connection_budget_exceeded(database_url)
    if not database_url.startswith("postgresql"):
        assert budget is None  # SQLite has no server limit
        return
    assert budget.startswith("8 backend worker(s) may open up to 240 PostgreSQL connections")
    assert "DATABASE_POOL_SIZE" in budget and "max_connections" in budget
    with caplog.at_level("WARNING", logger="pacs.startup"):
        system.bootstrap(url=database_url, migrate=False)
    assert budget in caplog.text


def test_a_new_sqlite_database_opened_while_another_process_writes_to_it(tmp_path):
    """The first connections switch a new database to WAL mode, which needs the file to
    itself: SQLite refuses at once, without waiting, while another process writes to it (a
    backend starting beside one that migrates the new database). The connection waits."""
    import sqlite3
    import subprocess
    import sys
    import time

    path = tmp_path / "pacs.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    code = (
        "import sys; from pacs_app.core import db\n"
        "with db.get_engine(sys.argv[1]).connect() as conn:\n"
        "    print(conn.exec_driver_sql('PRAGMA journal_mode').scalar())"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", code, f"sqlite:///{path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(1.5)
    assert other.poll() is None  # waiting, not failed
    writer.execute("COMMIT")
    writer.close()
    output = other.communicate(timeout=60)[0]
    assert other.returncode == 0 and output.strip() == "wal", output
