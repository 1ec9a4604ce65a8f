"""Processes the web process starts beside itself (the embedded AI worker, the DICOM
listener): each a module of the app run with ``--parent-pid``, so that it stops when the app
that started it has gone.

An app may run several backend workers (``REDIS_URL`` set), each starting its children, but a
port takes one listener and a machine needs one embedded AI worker (each loads the models).
Such a child is started behind a *turn*: a small process that waits for a lock of this machine,
named for the app's database and what the child is, and then becomes the child, holding the
lock until it ends. One worker's child runs; the others' stand by, and one takes over within
a second when it ends (its worker restarted, or it died), never while it still runs.

Run as ``python -m pacs_app.core.children LOCK PARENT_PID WHAT COMMAND...`` it is that waiting
process; it imports nothing of the app but its log format, so a standby costs little memory.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import time

TURN_POLL_S = 1.0
log = logging.getLogger("pacs.children")


def start_child(module: str, *, one_per_app: str | None = None) -> subprocess.Popen:
    """Run ``python -m module --parent-pid <this process>`` with this process's environment.

    ``one_per_app``: what the child is (with what distinguishes it, e.g. a port); of the
    children started so for one database on this machine, one runs at a time."""
    command = [sys.executable, "-m", module, "--parent-pid", str(os.getpid())]
    if one_per_app:
        lock = turn_lock_path(one_per_app)
        command = [sys.executable, "-m", __name__, lock, str(os.getpid()), one_per_app, *command]
    return subprocess.Popen(command, env=os.environ.copy())  # noqa: S603 (our own module)


def turn_lock_path(what: str) -> str:
    """The lock file of ``what`` for this app (its database and storage: two checkouts may
    both name ``sqlite:///./data/pacs.db``) on this machine: in the temporary folder, which
    is the machine's own even where storage is shared."""
    from pacs_app.config import settings

    app = f"{settings.database_url}\n{settings.storage_path.resolve()}\n{what}"
    digest = hashlib.sha256(app.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"pacs-{digest}.lock")


def parent_gone(parent_pid: int | None) -> bool:
    """Whether the process that started this one (``--parent-pid``) has ended."""
    return parent_pid is not None and os.getppid() != parent_pid


def wait_for_turn(lock_path: str, parent_pid: int | None, what: str) -> int | None:
    """Take the lock at ``lock_path``, waiting while another process holds it. Returns its
    file descriptor (inheritable: the lock lasts while any process holding it runs), or
    None if the parent ended meanwhile."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    waited = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not waited:
                holder = os.pread(fd, 16, 0).decode(errors="replace").strip() or "?"
                log.info(
                    "%s: process %s of another backend worker runs it; process %s stands by",
                    what,
                    holder,
                    os.getpid(),
                )
                waited = True
        else:
            break
        if parent_gone(parent_pid):
            os.close(fd)
            return None
        time.sleep(TURN_POLL_S)
    if parent_gone(parent_pid):  # the app ended as the child before this one did
        os.close(fd)
        return None
    if waited:
        log.info("%s: process %s takes over", what, os.getpid())
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    os.set_inheritable(fd, True)
    return fd


def _take_turn(argv: list[str]) -> int:
    lock_path, parent_pid, what, command = argv[0], int(argv[1]), argv[2], argv[3:]
    from pacs_app.core import logs

    logs.configure()
    if wait_for_turn(lock_path, parent_pid, what) is None:
        return 0
    os.execv(command[0], command)  # noqa: S606 (our own module, as start_child built it)


if __name__ == "__main__":
    sys.exit(_take_turn(sys.argv[1:]))
