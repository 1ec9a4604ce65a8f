"""Migrations that fill new columns from what is already stored, run on stored data, on
SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydicom
from sqlalchemy import inspect, text
from sqlmodel import Session, func, select

from alembic import command
from pacs_app.core import db
from pacs_app.models import Centre, Role, User
from pacs_app.services import seed
from pacs_app.services.ingest import StagedFile, ingest
from pacs_app.storage import LocalStorage
from tests.dicom_factory import make_series
from tests.factories import actor_of, make_centre, make_user

ROOT = Path(__file__).resolve().parents[1]


def test_0009_fills_the_matching_values_of_the_studies_stored_before_it(
    empty_database_url, tmp_path
):
    url = empty_database_url
    db.migrate(url)
    engine = db.get_engine(url)
    described = make_series(tmp_path / "a", 2, patient_id="M-1")
    for path in described:
        ds = pydicom.dcmread(path)
        ds.StudyTime, ds.ReferringPhysicianName, ds.StudyID = "0815", "Who^Referred", "S-9"
        ds.save_as(path)
    [bare] = make_series(tmp_path / "b", 1, patient_id="M-2")
    ds = pydicom.dcmread(bare)
    del ds.StudyTime, ds.StudyID
    ds.save_as(bare)
    storage = LocalStorage(tmp_path / "store")
    with Session(engine, expire_on_commit=False) as s:
        tech = actor_of(make_user(s, Role.TECHNICIAN, centre=make_centre(s, "NORTH")))
        for paths in (described, [bare]):
            files = [StagedFile(name=p.name, path=p) for p in paths]
            ingest(session=s, actor=tech, files=files, storage=storage)

    def kept() -> dict[str, tuple[str, str, str]]:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT patient_id, study_time, referring_physician_norm, dicom_study_id "
                    "FROM study"
                )
            )
            return {r[0]: tuple(r[1:]) for r in rows}

    expected = {"M-1": ("081500.000000", "WHO REFERRED", "S-9"), "M-2": ("", "", "")}
    assert kept() == expected  # as ingest keeps them
    command.downgrade(db.alembic_config(url), "0008")
    assert "study_time" not in {c["name"] for c in inspect(engine).get_columns("study")}
    db.migrate(url)  # the upgrade reads them from each study's first stored header
    assert kept() == expected


def test_sqlite_table_rebuilds_keep_the_rows_that_point_into_the_table(tmp_path):
    """Batch mode rebuilds a SQLite table (copy, drop, rename): dropping the old study table
    must not delete its series and instances through their ON DELETE CASCADE. 0003's
    downgrade rebuilds the study and centre tables."""
    url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    db.migrate(url)
    engine = db.get_engine(url)
    paths = make_series(tmp_path / "a", 3, patient_id="R-1")
    with Session(engine, expire_on_commit=False) as s:
        tech = actor_of(make_user(s, Role.TECHNICIAN, centre=make_centre(s, "NORTH")))
        files = [StagedFile(name=p.name, path=p) for p in paths]
        ingest(session=s, actor=tech, files=files, storage=LocalStorage(tmp_path / "store"))

    def counts() -> tuple[int, ...]:
        with engine.connect() as conn:
            return tuple(
                conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("study", "series", "instance", "user_account")
            )

    assert counts() == (1, 1, 3, 1)
    command.downgrade(db.alembic_config(url), "0002")
    assert counts() == (1, 1, 3, 1)
    db.migrate(url)
    assert counts() == (1, 1, 3, 1)
    with engine.connect() as conn:  # and the pooled connections enforce keys again
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


def test_backends_starting_together_migrate_and_seed_one_after_the_other(empty_database_url):
    """Several backends on one database (the workers of one app with REDIS_URL set, or
    scale-out) bootstrap as they start: started at once on an empty database, each would
    apply the same migrations and create the same demo accounts, and fail on the others'
    tables and rows. They take turns; the next finds nothing left to do. (Processes, as
    backends are: Alembic's context is one per process.)"""
    code = (
        "import sys; from pacs_app.services import system; "
        "system.bootstrap(url=sys.argv[1], migrate=True)"
    )
    env = {**os.environ, "PACS_ENV": "development", "SEED_DEMO_DATA": "true"}
    starting = [
        subprocess.Popen(
            [sys.executable, "-c", code, empty_database_url],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in starting]
    assert [p.returncode for p in starting] == [0, 0, 0, 0], outputs
    assert db.current_revision(empty_database_url) == db.head_revision()
    assert sum("Created the demo centre" in output for output in outputs) == 1, outputs
    with Session(db.get_engine(empty_database_url)) as session:
        assert session.exec(select(func.count()).select_from(User)).one() == len(seed.DEMO_USERS)
        assert session.exec(select(func.count()).select_from(Centre)).one() == 1
