"""Ingest processes: ``POST /studies`` stores its uploads in child processes of the web process.

The web process receives an upload and stages its files (:mod:`pacs_app.api.multipart`);
a child checks the token and ingests them (:func:`pacs_app.api.ingest_worker.handle`), and
the web process sends back the child's answer. With one backend worker, as ``reflex run``
starts without Redis, every request otherwise runs under the one interpreter lock of the
web process: two modalities sending at once could not use two CPUs, and a long ingest held
up the pages and the viewer. Each child works on one upload at a time; an upload waits for
a free one.

Each child is spoken to over a socket pair, one frame at a time: a 4-byte length and a JSON
document. A child that stops is replaced; the upload it had gets a 503 (what it had
committed stays, and a re-send reports those instances as duplicates).

Long uploads (a web uploader's batch, or more than ``LONG_UPLOAD_BYTES`` in one request) take
at most all children but one at a time: a modality sending one instance per request then
always finds a child free, instead of waiting seconds behind two centres' large batches.

:func:`start` runs in the web process's lifespan; where no pool runs (tests, or
``INGEST_PROCESSES=0``), :func:`current` is None and the route ingests in its thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass

import orjson
from starlette.responses import Response

from pacs_app.config import settings
from pacs_app.core.errors import StorageUnavailable

log = logging.getLogger(__name__)

# What a request asks a child: ``POST /studies`` (the default), a batch commit of the
# web uploader (``/uploads/{id}/commit``) or a STOW-RS request (``POST /dicomweb/studies``).
STUDIES, BATCH, STOW = "studies", "batch", "stow"
_LENGTH = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024  # an answer lists every file of an upload; 64 MB is ample
LONG_UPLOAD_BYTES = 64 * 1024 * 1024  # about 128 CT slices: a second or more of ingest
START_TIMEOUT_S = 120


def encode(message: object) -> bytes:
    data = orjson.dumps(message)
    return _LENGTH.pack(len(data)) + data


def decode_length(head: bytes) -> int:
    (length,) = _LENGTH.unpack(head)
    if length > MAX_FRAME:
        raise ConnectionError(f"a frame of {length} bytes is over the limit")
    return length


async def _read(reader: asyncio.StreamReader) -> object:
    head = await reader.readexactly(_LENGTH.size)
    return orjson.loads(await reader.readexactly(decode_length(head)))


def response(answer: dict) -> Response:
    """The HTTP answer a child sent back (its status, JSON body and headers)."""
    return Response(
        answer["body"],
        status_code=answer["status"],
        headers=answer["headers"],
        media_type="application/json",
    )


def is_long(request: dict) -> bool:
    """Whether ``request`` is a long upload: a web uploader's batch (its size is not in the
    message; it is typically hundreds of files), or files of more than LONG_UPLOAD_BYTES."""
    if request.get("kind", STUDIES) == BATCH:
        return True
    return sum(size for _name, _path, size, _sha256 in request["files"]) > LONG_UPLOAD_BYTES


class WorkerLost(StorageUnavailable):
    """The child process ingesting an upload stopped before it answered."""


@dataclass(eq=False)
class _Child:
    process: subprocess.Popen
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


async def _stopped(child: _Child) -> None:
    """Stop a child: it exits when its socket closes (an upload it is storing is finished
    first); one that has not after 30 s is killed."""
    child.writer.close()
    try:
        await asyncio.wait_for(asyncio.to_thread(child.process.wait), 30)
    except TimeoutError:
        child.process.kill()
        await asyncio.to_thread(child.process.wait)


def child_environment() -> dict[str, str]:
    """The web process's environment, with its settings as they are now (tests and the
    command line may have changed them since they were read)."""
    env = dict(os.environ)
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            env.pop(name.upper(), None)
        else:
            env[name.upper()] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return env


class IngestPool:
    def __init__(self, processes: int):
        self.processes = processes
        # Last in, first out: the child that answered last takes the next upload. A lone
        # sender then keeps one child busy, whose CPU caches and SQLite page cache are still
        # current (a child that wrote nothing since another did must reload what changed);
        # in paired rounds one client's uploads went 10-19% faster than taking turns.
        self._idle: asyncio.Queue[_Child | None] = asyncio.LifoQueue()
        self._children: set[_Child] = set()
        self._starting = 0
        self._closed = False
        self._respawning: set[asyncio.Task] = set()
        # Long uploads in children (or waiting for one) at a time: all children but one.
        self.long_slots = max(1, processes - 1)
        self._long = asyncio.Semaphore(self.long_slots)
        self.answered = 0  # uploads the children have answered

    @property
    def live(self) -> int:
        """Children started or starting."""
        return len(self._children) + self._starting

    async def start(self) -> None:
        """Start the children and wait until they are ready (or failed to start)."""
        await asyncio.gather(*(self._spawn() for _ in range(self.processes)))

    async def _spawn(self) -> None:
        self._starting += 1
        try:
            child = await self._start_child()
        except Exception:
            log.exception("an ingest process failed to start; uploads use the others")
            child = None
        finally:
            self._starting -= 1
        if child is None:
            if not self.live:  # none is left: wake the uploads waiting for one
                self._idle.put_nowait(None)
        elif self._closed:
            await _stopped(child)
        else:
            self._children.add(child)
            self._idle.put_nowait(child)

    async def _start_child(self) -> _Child:
        ours, theirs = socket.socketpair()
        with theirs:
            process = subprocess.Popen(  # noqa: S603 (our own module)
                [sys.executable, "-m", "pacs_app.api.ingest_worker", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env=child_environment(),
            )
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        child = _Child(process, reader, writer)
        try:
            await asyncio.wait_for(_read(reader), START_TIMEOUT_S)  # its "ready"
        except BaseException:
            await _stopped(child)
            raise
        return child

    async def run(self, request: dict) -> dict:
        """Have a child handle ``request``; its answer. Raises :class:`WorkerLost` if the
        child stops first (it is replaced). A long upload (:func:`is_long`) first waits for
        one of the ``long_slots``."""
        long = is_long(request)
        if long:
            await self._long.acquire()
        try:
            child = await self._idle.get()
            if child is None:  # no child is left (see _spawn)
                self._idle.put_nowait(None)
                raise WorkerLost("No ingest process is running; the upload was not stored.")
        except BaseException:
            if long:
                self._long.release()
            raise
        # A request whose client goes away is cancelled; the exchange is not: the child's
        # answer must be read before it takes another upload, and a long one keeps its slot
        # until then.
        exchange = asyncio.ensure_future(self._exchange(child, request))
        if long:
            exchange.add_done_callback(lambda _: self._long.release())
        return await asyncio.shield(exchange)

    async def _exchange(self, child: _Child, request: dict) -> dict:
        try:
            child.writer.write(encode(request))
            await child.writer.drain()
            answer = await _read(child.reader)
        except (ConnectionError, asyncio.IncompleteReadError, orjson.JSONDecodeError) as exc:
            self._children.discard(child)
            code = child.process.poll()
            await _stopped(child)
            log.error("an ingest process stopped (exit code %s); starting another", code)
            if not self._closed:
                task = asyncio.get_running_loop().create_task(self._spawn())
                self._respawning.add(task)
                task.add_done_callback(self._respawning.discard)
            raise WorkerLost(
                "The upload's ingest process stopped before it finished; send the upload "
                "again (what was stored of it is reported as duplicates)."
            ) from exc
        self._idle.put_nowait(child)
        self.answered += 1
        assert isinstance(answer, dict)
        return answer

    async def close(self) -> None:
        self._closed = True
        children, self._children = self._children, set()
        await asyncio.gather(*(_stopped(child) for child in children))


_POOL: IngestPool | None = None


def current() -> IngestPool | None:
    """The running pool, if it has a child (ready or busy, or being started)."""
    return _POOL if _POOL is not None and _POOL.live else None


async def start(processes: int | None = None) -> IngestPool | None:
    """Start the web process's pool (``settings.ingest_process_count`` children)."""
    global _POOL
    count = settings.ingest_process_count if processes is None else processes
    if count <= 0:
        return None
    pool = IngestPool(count)
    _POOL = pool
    log.info("starting %d ingest processes", count)
    await pool.start()
    return pool


async def stop() -> None:
    global _POOL
    pool, _POOL = _POOL, None
    if pool is not None:
        await pool.close()
