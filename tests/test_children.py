"""The web process's children behind a turn (``start_child(..., one_per_app=...)``): of the
children that several backend workers start for one app on one machine, one runs; the others
stand by, take over when it ends, and end with their own worker."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pacs_app.core.children import start_child, turn_lock_path
from tests.processes import running, wait_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def started(tmp_path, monkeypatch):
    """The file where each test child writes its process id as it starts."""
    out = tmp_path / "started"
    out.touch()
    monkeypatch.setenv("TURN_CHILD_OUT", str(out))
    monkeypatch.chdir(ROOT)  # `python -m tests.turn_child`
    return lambda: [int(line) for line in out.read_text().split()]


def test_one_child_runs_and_a_standby_takes_over_when_it_ends(started):
    what = f"test child {uuid.uuid4()}"
    first = start_child("tests.turn_child", one_per_app=what)
    assert wait_for(lambda: started() == [first.pid])
    second = start_child("tests.turn_child", one_per_app=what)
    try:
        time.sleep(2.5)  # it has asked for its turn more than once
        assert started() == [first.pid] and second.poll() is None  # standing by
        assert Path(turn_lock_path(what)).read_text() == str(first.pid)
        first.terminate()
        first.wait(timeout=10)
        # it becomes the child in its own process: the worker that started it stops it
        assert wait_for(lambda: started() == [first.pid, second.pid])
        assert Path(turn_lock_path(what)).read_text() == str(second.pid)
    finally:
        for child in (first, second):
            child.terminate()
            child.wait(timeout=10)


def test_other_apps_children_do_not_wait(started):
    first = start_child("tests.turn_child", one_per_app=f"test child {uuid.uuid4()}")
    other = start_child("tests.turn_child", one_per_app=f"test child {uuid.uuid4()}")
    try:
        assert wait_for(lambda: sorted(started()) == sorted([first.pid, other.pid]))
    finally:
        for child in (first, other):
            child.terminate()
            child.wait(timeout=10)


def test_two_checkouts_naming_the_same_relative_database_are_two_apps(monkeypatch, tmp_path):
    from pacs_app.config import settings

    monkeypatch.setattr(settings, "database_url", "sqlite:///./data/pacs.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(settings, "storage_path", Path("storage"))  # .env.example's, relative
    here = turn_lock_path("the embedded AI worker")
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    assert turn_lock_path("the embedded AI worker") != here


def test_children_and_standbys_end_with_the_worker_that_started_them(started):
    """A backend worker killed without its shutdown (no SIGTERM to its children)."""
    what = f"test child {uuid.uuid4()}"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pacs_app.core.children import start_child\n"
            "children = [start_child('tests.turn_child', one_per_app=sys.argv[1]) for _ in '12']\n"
            "print(*(c.pid for c in children), flush=True)\n"
            "time.sleep(600)",
            what,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    children = [int(pid) for pid in worker.stdout.readline().split()]
    assert wait_for(lambda: len(started()) == 1)  # either may have taken its turn first
    took_turn = started()
    assert set(took_turn) < set(children) and all(map(running, children))
    worker.kill()
    worker.wait()
    assert wait_for(lambda: not any(map(running, children)))
    assert started() == took_turn  # the standby did not take over from an app that ended


def test_the_embedded_ai_worker_runs_once_per_machine(monkeypatch, tmp_path, database_url):
    from pacs_app.ai import worker
    from pacs_app.config import settings

    monkeypatch.setattr(settings, "ai_embedded_worker", True)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STORAGE_PATH", str(tmp_path / "storage"))
    lock = Path(turn_lock_path("the embedded AI worker"))
    children = [worker.start_embedded() for _ in range(2)]
    try:
        pids = {str(c.pid) for c in children}
        assert wait_for(lambda: lock.exists() and lock.read_text() in pids)
        holder = next(c for c in children if str(c.pid) == lock.read_text())
        standby = next(c for c in children if c is not holder)
        command = {c: Path(f"/proc/{c.pid}/cmdline").read_text().split("\0") for c in children}
        assert command[holder][1:3] == ["-m", "pacs_app.ai.worker"]  # the worker itself
        assert command[standby][1:3] == ["-m", "pacs_app.core.children"]  # waiting its turn
    finally:
        for child in children:
            child.terminate()
            child.wait(timeout=30)
