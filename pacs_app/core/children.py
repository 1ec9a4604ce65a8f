"""Processes the web process starts beside itself (the embedded AI worker, the DICOM
listener): each a module of the app run with ``--parent-pid``, so that it stops when the app
that started it has gone."""

from __future__ import annotations

import os
import subprocess
import sys


def start_child(module: str) -> subprocess.Popen:
    """Run ``python -m module --parent-pid <this process>`` with this process's environment."""
    command = [sys.executable, "-m", module, "--parent-pid", str(os.getpid())]
    return subprocess.Popen(command, env=os.environ.copy())  # noqa: S603 (our own module)


def parent_gone(parent_pid: int | None) -> bool:
    """Whether the process that started this one (``--parent-pid``) has ended."""
    return parent_pid is not None and os.getppid() != parent_pid
