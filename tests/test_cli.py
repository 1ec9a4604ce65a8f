"""The `pacs` command creates and manages accounts in production."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlmodel import Session, select

from pacs_app.models import User


def _pacs(database_url: str, *args: str, stdin: str = "", env: dict | None = None):
    full_env = {**os.environ, "DATABASE_URL": database_url, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pacs_app.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


PROD = {"PACS_ENV": "production", "SECRET_KEY": "p" * 40}


def test_create_centre_and_users_in_production(engine, database_url):
    r = _pacs(database_url, "create-centre", "City Scans", "CITY", "--currency", "AED", env=PROD)
    assert r.returncode == 0, r.stderr
    r = _pacs(
        database_url,
        "create-user",
        "chief",
        "--role",
        "admin",
        "--email",
        "chief@example.org",
        "--password-stdin",
        stdin="a-strong-pass\n",
        env=PROD,
    )
    assert r.returncode == 0, r.stderr
    r = _pacs(
        database_url,
        "create-user",
        "tech1",
        "--role",
        "technician",
        "--centre",
        "CITY",
        "--password-stdin",
        stdin="another-pass\n",
        env=PROD,
    )
    assert r.returncode == 0, r.stderr
    with Session(engine) as s:
        assert {u.username for u in s.exec(select(User))} == {"chief", "tech1"}


def test_cli_errors_are_clear(engine, database_url):
    r = _pacs(
        database_url,
        "create-user",
        "tech2",
        "--role",
        "technician",
        "--password-stdin",
        stdin="another-pass\n",
    )
    assert r.returncode == 2 and "must belong to a centre" in r.stderr
    r = _pacs(
        database_url,
        "create-user",
        "admin2",
        "--role",
        "admin",
        "--password-stdin",
        stdin="admin123\n",
        env=PROD,
    )
    assert r.returncode == 2 and "demo passwords" in r.stderr
    r = _pacs(database_url, "deactivate-user", "nobody")
    assert r.returncode == 2 and "No such user" in r.stderr


def test_production_cli_refuses_default_secret(database_url):
    r = _pacs(
        database_url,
        "migrate",
        env={
            "PACS_ENV": "production",
            "SECRET_KEY": "dev-only-insecure-secret-key-change-me-0000000000",
        },
    )
    assert r.returncode != 0 and "SECRET_KEY" in r.stderr


def test_set_password_and_deactivate(engine, database_url):
    _pacs(
        database_url,
        "create-user",
        "doc",
        "--role",
        "radiologist",
        "--password-stdin",
        stdin="first-pass-1\n",
    )
    assert (
        _pacs(
            database_url, "set-password", "doc", "--password-stdin", stdin="second-pass-2\n"
        ).returncode
        == 0
    )
    assert _pacs(database_url, "deactivate-user", "doc").returncode == 0
    with Session(engine) as s:
        assert s.exec(select(User).where(User.username == "doc")).one().is_active is False


def test_an_unsafe_or_invalid_setting_is_one_line_not_a_traceback(database_url):
    r = _pacs(database_url, "migrate", env={"PACS_ENV": "production", "SECRET_KEY": "short"})
    assert r.returncode == 2
    assert r.stderr.startswith("error: PACS_ENV=production refuses a SECRET_KEY shorter")
    assert "Traceback" not in r.stderr
    r = _pacs(database_url, "migrate", env={"INGEST_PROCESSES": "many"})
    assert r.returncode == 2
    assert "ingest_processes" in r.stderr and "Traceback" not in r.stderr
