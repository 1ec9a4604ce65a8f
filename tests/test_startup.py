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
