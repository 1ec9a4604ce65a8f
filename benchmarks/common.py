"""Shared pieces of the benchmarks: a scratch folder, databases, accounts, a running backend."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="pacs-bench-"))
os.environ.setdefault("SECRET_KEY", "bench-" + secrets.token_hex(24))
os.environ["DATABASE_URL"] = f"sqlite:///{WORK / 'bootstrap.db'}"
os.environ["SEED_DEMO_DATA"] = "false"

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pydicom.examples  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlmodel import Session  # noqa: E402

from pacs_app.core import db  # noqa: E402
from pacs_app.models import Role  # noqa: E402
from pacs_app.services import users  # noqa: E402
from pacs_app.services.authz import Actor  # noqa: E402

PASSWORD = "Timing-figures-42"
# With Redis, `reflex run --env prod` starts several backend worker processes (2 x CPUs + 1),
# as a production deployment would; without it, one.
REDIS_URL = os.environ.get("REDIS_URL")


def line(label: str, value: str) -> None:
    print(f"  {label:<58} {value}")


def phantom_slice(rng: np.random.Generator, index: int) -> np.ndarray:
    """A 512x512 CT-like slice in stored values (intercept -1024): air, a soft-tissue body,
    two lungs, a bone ring, and acquisition noise, so that images compress like real ones."""
    yy, xx = np.mgrid[0:512, 0:512]
    hu = np.full((512, 512), -1000.0)
    body = ((xx - 256) / 210) ** 2 + ((yy - 256) / 160) ** 2 < 1
    hu[body] = 40
    for cx in (180, 332):
        hu[((xx - cx) / 60) ** 2 + ((yy - 250) / (90 + index % 20)) ** 2 < 1] = -820
    ring = np.abs(np.hypot(xx - 256, yy - 330) - 28) < 6
    hu[ring] = 700
    hu += rng.normal(0, 12, hu.shape)
    return np.clip(hu + 1024, 0, 4095).astype(np.int16)


def make_slices(folder: Path, count: int, studies_: int = 2) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.examples.ct
    template.Rows = template.Columns = 512
    rng = np.random.default_rng(7)
    study_uids = [generate_uid() for _ in range(studies_)]
    series_uids = [generate_uid() for _ in range(studies_)]
    paths = []
    for i in range(count):
        k = i % studies_
        template.StudyInstanceUID, template.SeriesInstanceUID = study_uids[k], series_uids[k]
        template.SOPInstanceUID = generate_uid()
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.InstanceNumber = i + 1
        template.PatientID = f"BENCH-{k}"
        template.PixelData = phantom_slice(rng, i).tobytes()
        path = folder / f"ct_{i:04d}.dcm"
        template.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def fresh_database(kind: str, pg_base: str | None) -> tuple[str, callable]:
    if kind == "sqlite":
        url = f"sqlite:///{WORK / f'bench-{secrets.token_hex(3)}.db'}"
        db.migrate(url)
        return url, lambda: None
    base = make_url(pg_base).set(drivername="postgresql+psycopg")
    name = f"pacs_bench_{secrets.token_hex(3)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    db.migrate(url)

    def drop():
        db.get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return url, drop


def setup_accounts(url: str) -> Actor:
    with Session(db.get_engine(url)) as s:
        centre = users.create_centre(session=s, actor=None, name="Bench", code="BENCH")
        tech = users.create_user(
            session=s,
            actor=None,
            username="bench",
            password=PASSWORD,
            role=Role.TECHNICIAN,
            centre_id=centre.id,
        )
        users.create_user(
            session=s, actor=None, username="benchadmin", password=PASSWORD, role=Role.ADMIN
        )
    return Actor(user_id=tech.id, username=tech.username, role=tech.role, centre_id=centre.id)


def orthanc_config(folder: Path, http_port: int, dicom_port: int | None = None) -> Path:
    """An Orthanc configuration in ``folder``: its defaults (SQLite index, files synced, no
    plugins), its REST API on ``http_port`` without authentication, and its DICOM server on
    ``dicom_port`` (AE title ORTHANC) where given."""
    config = folder / "orthanc.json"
    settings = {
        "Name": "bench",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port,
        "DicomServerEnabled": dicom_port is not None,
        "AuthenticationEnabled": False,
        "RemoteAccessAllowed": True,
        "Plugins": [],
    }
    if dicom_port is not None:
        settings.update({"DicomAet": "ORTHANC", "DicomPort": dicom_port})
    config.write_text(json.dumps(settings))
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Backend:
    """`reflex run --env prod` (backend only, or with the UI on the same port) on its own port,
    database and storage."""

    def __init__(
        self,
        url: str,
        store: Path,
        *,
        with_frontend: bool = False,
        env: dict[str, str] | None = None,
    ):
        self.port = free_port()
        environment = {
            **os.environ,
            "DATABASE_URL": url,
            "STORAGE_PATH": str(store),
            "REFLEX_WEB_WORKDIR": str(ROOT / (".web-test" if with_frontend else ".web-bench")),
            "BACKEND_PORT": str(self.port),
            "PATH": f"{ROOT / '.tools/node_modules/.bin'}:{ROOT / '.venv/bin'}:"
            f"{os.environ['PATH']}",
            "REFLEX_USE_SYSTEM_BUN": "1",
            "REFLEX_TELEMETRY_ENABLED": "false",
            "PACS_ENV": "development",
            "REDIS_URL": REDIS_URL or "",
            "API_URL": f"http://localhost:{self.port}",
            # The AI worker analyses every upload; on a 2-core machine it would take the CPUs
            # these figures measure. benchmarks/ai.py measures it; set AI_EMBEDDED_WORKER=true
            # to see ingest with it running beside.
            "AI_EMBEDDED_WORKER": os.environ.get("AI_EMBEDDED_WORKER", "false"),
        }
        environment.update(env or {})
        if with_frontend:
            environment["FRONTEND_PORT"] = str(self.port)
        else:
            # Reflex refuses a frontend port for the backend only
            environment.pop("FRONTEND_PORT", None)
        self.log = (WORK / f"backend-{self.port}.log").open("w")
        self.proc = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/reflex"),
                "run",
                "--env",
                "prod",
                *(
                    ["--single-port", "--frontend-port", str(self.port)]
                    if with_frontend
                    else ["--backend-only"]
                ),
                "--backend-port",
                str(self.port),
            ],
            cwd=ROOT,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base = f"http://localhost:{self.port}"
        ready = "/login/" if with_frontend else "/health"  # the frontend is built at start
        for _ in range(600):
            try:
                if httpx.get(self.base + ready, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"backend did not start; see {self.log.name}")

    def token(self, username: str) -> str:
        r = httpx.post(self.base + "/auth/token", data={"username": username, "password": PASSWORD})
        r.raise_for_status()
        return r.json()["access_token"]

    def pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-g", str(os.getpgid(self.proc.pid))], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]

    def rss_mb(self, field: str = "VmRSS") -> float:
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue
            match = re.search(rf"{field}:\s+(\d+) kB", status)
            total += int(match.group(1)) if match else 0
        return total / 1024

    def stop(self):
        os.killpg(self.proc.pid, 15)
        self.proc.wait(timeout=30)
        self.log.close()


def percentiles(fn, runs: int = 60) -> tuple[float, float]:
    fn()  # warm
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]
