"""Local ports and processes, for the tests that start the app or its children: a free port,
waiting for a condition, and what /proc says of a process (whether it runs, its process
group's commands, whether it listens on a port)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """A local port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], object], seconds: float = 20, every: float = 0.1) -> bool:
    """Whether ``condition()`` came true within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def _stat(pid: int | str) -> list[str]:
    """/proc/PID/stat's fields after the command's name: state, parent, process group..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, reaped by no one here, has ended)."""
    try:
        return _stat(pid)[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def group_commands(pgid: int) -> list[list[str]]:
    """The command lines of the running processes of process group ``pgid``."""
    commands = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = _stat(proc.name)
            if int(stat[2]) == pgid and stat[0] not in ("Z", "X"):
                commands.append((proc / "cmdline").read_text().split("\0"))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return commands


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` has a socket listening on TCP ``port`` (IPv4)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.split(":")[1], 16) == port and inode in inodes:
            return True
    return False
