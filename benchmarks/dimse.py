"""C-STORE benchmark: the DICOM listener beside Orthanc's, on the same slices. Prints figures;
asserts nothing (not a test).

    .venv/bin/python benchmarks/dimse.py                       # SQLite, plus PostgreSQL if
    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/dimse.py                   # ... a server is named

N synthetic 512x512 16-bit CT slices are sent by DCMTK's storescu (apt-get install dcmtk), as
a modality sends them: (a) in one association, (b) in two associations at once, each half of
them. To `pacs dicom-listener` (a registered device; each instance stored, durably, before
its response) on SQLite and on PostgreSQL, and, where Debian's Orthanc is installed
(`apt-get install orthanc`), to Orthanc's own DICOM server (its defaults: SQLite index, files
synced). Each figure is the median of --repeats runs on fresh databases and storage.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    ROOT,
    WORK,
    free_port,
    fresh_database,
    line,
    make_slices,
    orthanc_config,
    setup_accounts,
)
from sqlmodel import Session, select

from pacs_app.core import db
from pacs_app.models import User
from pacs_app.services import devices
from pacs_app.services.authz import Actor

# DCMTK's, not pynetdicom's Python apps of the same names in .venv/bin
STORESCU = shutil.which("storescu", path="/usr/local/bin:/usr/bin")
ECHOSCU = shutil.which("echoscu", path="/usr/local/bin:/usr/bin")
AE = "BENCHCT"


def send(port: int, called: str, paths: list[Path]) -> None:
    """``paths`` in one association; raises if any is not stored."""
    # in chunks, so that the command line stays short; one association each
    for i in range(0, len(paths), 250):
        chunk = [str(p) for p in paths[i : i + 250]]
        done = subprocess.run(
            [STORESCU, "-aet", AE, "-aec", called, "127.0.0.1", str(port), *chunk],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"storescu failed: {done.stderr[-2000:]}")


def timed(port: int, called: str, paths: list[Path], associations: int) -> float:
    """Seconds to send ``paths`` in ``associations`` associations at once."""
    parts = [paths[k::associations] for k in range(associations)]
    errors: list[BaseException] = []

    def run(part):
        try:
            send(port, called, part)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(part,)) for part in parts]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def wait_for_echo(port: int, called: str, proc: subprocess.Popen, log: Path) -> None:
    for _ in range(240):
        if proc.poll() is not None:
            raise RuntimeError(f"the listener exited; see {log}")
        echo = [ECHOSCU, "-aet", AE, "-aec", called, "127.0.0.1", str(port)]
        if subprocess.run(echo, capture_output=True).returncode == 0:
            return
        time.sleep(0.25)
    raise RuntimeError(f"the listener did not answer; see {log}")


def ours(kind: str, pg: str | None, paths, warmup, associations: int) -> float:
    url, drop = fresh_database(kind, pg)
    folder = WORK / f"listener-{secrets.token_hex(3)}"
    folder.mkdir()
    setup_accounts(url)
    with Session(db.get_engine(url)) as s:
        admin = Actor.of(s.exec(select(User).where(User.username == "benchadmin")).one())
        tech = s.exec(select(User).where(User.username == "bench")).one()
        devices.create_device(
            session=s,
            actor=admin,
            ae_title=AE,
            centre_id=tech.centre_id,
            uploads_as_id=tech.id,
            networks="127.0.0.1",
        )
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "STORAGE_PATH": str(folder / "storage")}
    command = [sys.executable, "-m", "pacs_app.cli", "dicom-listener", "--host", "127.0.0.1"]
    log = folder / "listener.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*command, "--port", str(port)], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    try:
        wait_for_echo(port, "PACS", proc, log)
        send(port, "PACS", warmup)
        return timed(port, "PACS", paths, associations)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        db.get_engine(url).dispose()
        drop()
        shutil.rmtree(folder, ignore_errors=True)


def orthanc(binary: str, paths, warmup, associations: int) -> tuple[float, str]:
    folder = WORK / f"orthanc-{secrets.token_hex(3)}"
    folder.mkdir()
    http, port = free_port(), free_port()
    config = orthanc_config(folder, http, port)
    log = folder / "orthanc.log"
    with log.open("w") as out:
        proc = subprocess.Popen([binary, str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_echo(port, "ORTHANC", proc, log)
        version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True
        ).stdout.split("\n")[0]
        send(port, "ORTHANC", warmup)
        return timed(port, "ORTHANC", paths, associations), version
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def report(label: str, runs: list[float], count: int, mb: float, versus: float | None) -> float:
    rate = statistics.median(count / s for s in runs)
    rates = [count / s for s in runs]
    beside = f"  {rate / versus:.2f}x Orthanc" if versus else ""
    line(
        label,
        f"{rate:7.1f} instances/s  {rate * mb / count:6.1f} MB/s"
        f"  [{min(rates):.0f}, {max(rates):.0f}]{beside}",
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not (STORESCU and ECHOSCU):
        sys.exit("DCMTK's storescu and echoscu are needed: apt-get install dcmtk")
    pg = os.environ.get("TEST_DATABASE_URL") or os.environ.get("BENCH_DATABASE_URL")
    paths = make_slices(WORK / "slices", args.instances)
    warmup = make_slices(WORK / "warmup", 10, studies_=1)
    mb = sum(p.stat().st_size for p in paths) / 1024 / 1024
    print(f"{len(paths)} CT slices, {mb:.0f} MB, sent by DCMTK's storescu")

    binary = shutil.which("Orthanc")
    reference: dict[int, float] = {}
    for associations in (1, 2):
        what = f"{associations} association{'s' if associations > 1 else ''} at once"
        if binary:
            runs, version = [], "?"
            for _ in range(args.repeats):
                seconds, version = orthanc(binary, paths, warmup, associations)
                runs.append(seconds)
            reference[associations] = report(f"{version}, {what}", runs, len(paths), mb, None)
        for kind in ("sqlite", "postgresql") if pg else ("sqlite",):
            runs = [ours(kind, pg, paths, warmup, associations) for _ in range(args.repeats)]
            report(
                f"pacs dicom-listener, {kind}, {what}",
                runs,
                len(paths),
                mb,
                reference.get(associations),
            )
    if not binary:
        print("(Orthanc is not installed: `apt-get install orthanc` adds the comparison)")
    if not pg:
        print("(no TEST_DATABASE_URL: PostgreSQL figures skipped)")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
