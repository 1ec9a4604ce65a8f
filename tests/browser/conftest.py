"""A running app (`reflex run --env prod --single-port`) and Debian's Chromium.

The server runs on its own SQLite database in a temporary folder, in development mode so the
four documented demo accounts exist. Browser tests are skipped, with the reason, where
Chromium is not installed; with ``PACS_REQUIRE_BROWSER=1`` (set by ``.ci/run``) that is a
failure instead, so CI never passes without running them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PACS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_S = 420


def _browser_available() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed"
    if not (shutil.which("bun") or (ROOT / ".tools/node_modules/.bin/bun").exists()):
        return "bun is not installed (scripts/setup.sh installs it)"
    return None


@pytest.fixture(scope="session")
def _require_browser() -> None:
    reason = _browser_available()
    if reason:
        if os.environ.get("PACS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required but cannot run: {reason}")
        pytest.skip(reason)


def _wait_until_up(api: str, pages: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(api + "/ping", timeout=2) as r:  # noqa: S310
                if r.status == 200:
                    with urllib.request.urlopen(pages + "/login/", timeout=10) as page:  # noqa: S310
                        if page.status == 200:
                            return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the app did not start in {START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def running_app(work: Path, *, prod: bool = True, dicom_port: int | None = None) -> Iterator[str]:
    """``reflex run`` on its own SQLite database and storage in ``work``, in development mode
    (the demo accounts exist); the pages' URL while it runs.

    ``prod``: ``--env prod --single-port``, UI and API on one port, in ``.web-test``.
    Otherwise ``reflex run``'s development server as the README starts it: the pages on one
    port, the backend (API, events) on another, in ``.web-dev-test``.
    ``dicom_port``: the DICOM listener's port on 127.0.0.1 (none without it)."""
    pages_port = free_port()
    api_port = pages_port if prod else free_port()
    log = work / "reflex.log"
    env = {
        **os.environ,
        "PATH": f"{ROOT / '.tools/node_modules/.bin'}:{ROOT / '.venv/bin'}:{os.environ['PATH']}",
        "REFLEX_USE_SYSTEM_BUN": "1",
        "REFLEX_TELEMETRY_ENABLED": "false",
        # A build folder of its own, so a developer's `reflex run` is not disturbed.
        "REFLEX_WEB_WORKDIR": str(ROOT / (".web-test" if prod else ".web-dev-test")),
        "REFLEX_STATES_WORKDIR": str(work / "states"),
        "PACS_ENV": "development",
        "SEED_DEMO_DATA": "true",
        "DATABASE_URL": f"sqlite:///{work / 'pacs.db'}",
        "STORAGE_PATH": str(work / "storage"),
    }
    # The ports as a user gives them, on the command line only: the pages must find the
    # backend on the port `reflex run` was given.
    for name in ("REDIS_URL", "API_URL", "FRONTEND_PORT", "BACKEND_PORT"):
        env.pop(name, None)
    env.pop("DICOM_PORT", None)
    if dicom_port:
        env.update({"DICOM_PORT": str(dicom_port), "DICOM_BIND_ADDRESS": "127.0.0.1"})
    cmd = [
        str(ROOT / ".venv/bin/reflex"),
        "run",
        *(["--env", "prod", "--single-port"] if prod else []),
        "--frontend-port",
        str(pages_port),
        "--backend-port",
        str(api_port),
        "--loglevel",
        "info",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://localhost:{pages_port}"
    try:
        _wait_until_up(f"http://localhost:{api_port}", url, proc, log)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited by itself
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        shutil.copy(log, artifacts / f"reflex-server{'' if prod else '-dev'}.log")


@pytest.fixture(scope="session")
def dicom_port() -> int:
    """The port of the app's DICOM listener (``reflex run`` starts it, as DICOM_PORT asks)."""
    return free_port()


@pytest.fixture(scope="session")
def app_work(tmp_path_factory) -> Path:
    """The folder of the app the browser tests drive: its database and storage."""
    return tmp_path_factory.mktemp("app")


@pytest.fixture(scope="session")
def app_url(_require_browser, app_work, dicom_port) -> Iterator[str]:
    """Start the whole app once for the browser tests; stop it afterwards."""
    with running_app(app_work, dicom_port=dicom_port) as url:
        yield url


@pytest.fixture
def app_database(app_url, app_work) -> str:
    """The running app's database URL, for a test that prepares, through the domain services,
    more data than clicking could (a long list); what the test checks it checks in the page."""
    return f"sqlite:///{app_work / 'pacs.db'}"


@pytest.fixture(scope="session")
def browser(_require_browser):
    from playwright.sync_api import expect, sync_playwright

    # An assertion waits for the page up to 15 s (Playwright's default is 5): the whole suite
    # shares two CPUs, and a sign-in's error once took longer than 5 s under that load. A
    # passing check takes no longer for it.
    expect.set_options(timeout=15_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, app_url):
    """Open pages in fresh browser contexts (their own localStorage, like another person)."""
    contexts = []

    def make():
        context = browser.new_context(base_url=app_url, viewport={"width": 1280, "height": 800})
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()
