"""The app as it scales out on one machine: with REDIS_URL set, ``reflex run --env prod``
runs several backend workers, each of which bootstraps and starts its children. Started on an
empty database, it must come up whole: migrated and seeded once, one DICOM listener on the
port and one embedded AI worker, the other workers' standing by."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.processes import free_port, group_commands, wait_for

ROOT = Path(__file__).resolve().parents[1]


def test_several_backend_workers_start_on_an_empty_database(
    empty_database_url, redis_url, tmp_path
):
    port, dicom_port = free_port(), free_port()
    env = {
        **os.environ,
        "PATH": f"{ROOT / '.tools/node_modules/.bin'}:{ROOT / '.venv/bin'}:{os.environ['PATH']}",
        "REFLEX_USE_SYSTEM_BUN": "1",
        "REFLEX_TELEMETRY_ENABLED": "false",
        "REFLEX_WEB_WORKDIR": str(tmp_path / "web"),
        "REFLEX_STATES_WORKDIR": str(tmp_path / "states"),
        "PACS_ENV": "development",
        "SEED_DEMO_DATA": "true",
        "DATABASE_URL": empty_database_url,
        "STORAGE_PATH": str(tmp_path / "storage"),
        "REDIS_URL": redis_url,
        "DICOM_PORT": str(dicom_port),
        "DICOM_BIND_ADDRESS": "127.0.0.1",
        "AI_EMBEDDED_WORKER": "true",
    }
    log = tmp_path / "reflex.log"
    command = [str(ROOT / ".venv/bin/reflex"), "run", "--env", "prod", "--backend-only"]
    command += ["--backend-port", str(port), "--loglevel", "info"]
    with log.open("w") as out:
        app = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert app.poll() is None, f"the app exited:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"the app did not start:\n{log.read_text()[-4000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        time.sleep(3)  # every worker has started its children by now, and they their turns

        # seeded once: the demo technician signs in
        form = urllib.parse.urlencode({"username": "technician", "password": "tech123"})
        sign_in = urllib.request.Request(
            f"http://127.0.0.1:{port}/auth/token", data=form.encode(), method="POST"
        )
        with urllib.request.urlopen(sign_in, timeout=10) as r:  # noqa: S310
            assert json.loads(r.read())["access_token"]

        # one listener on the port, which answers; one AI worker; the rest stand by
        commands = group_commands(app.pid)
        modules = [c[2] for c in commands if len(c) > 2 and c[1] == "-m"]
        assert modules.count("pacs_app.dimse.listener") == 1, commands
        assert modules.count("pacs_app.ai.worker") == 1, commands
        assert modules.count("pacs_app.core.children") >= 2, "only one backend worker ran"
        with socket.create_connection(("127.0.0.1", dicom_port), timeout=5):
            pass
        text = log.read_text()
        assert text.count("Created the demo centre and users") == 1
        assert text.count(f"DICOM listener PACS on 127.0.0.1:{dicom_port}") == 1
        assert "Traceback" not in text and "[ERROR]" not in text and " ERROR " not in text, text
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, signal.SIGKILL)
            app.wait()
    # everything it started has ended with it, standbys included
    assert wait_for(lambda: not group_commands(app.pid), 20), group_commands(app.pid)
