"""gzip for the API's JSON answers.

A remote radiologist reads over a wide-area link: a CT series' DICOM JSON metadata (about
12 KB an instance, 6 MB for 500 slices) or a 12-lead ECG's samples shrink five to twenty times.
Only JSON is compressed: pixel data (frames, rendered JPEG and PNG, whole instances) is either
compressed already or too large to spend the CPU on for every image a viewer shows, and an
upload's answer is small.
"""

from __future__ import annotations

import gzip

import anyio.to_thread
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON_TYPES = ("application/json", "application/dicom+json")
MIN_SIZE = 1024  # smaller answers fit a packet or two either way
LEVEL = 5  # about a third of level 9's time, for nearly its size on DICOM JSON
IN_THREAD_FROM = 256 * 1024  # larger bodies are compressed off the event loop


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header admits gzip (RFC 9110 §12.5.3): listed as gzip (or
    ``*``) with a q-value above zero. An explicit ``gzip;q=0`` refuses it whatever ``*`` says."""
    star = False
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0  # unreadable: not an acceptance
        if coding in ("gzip", "x-gzip"):
            return q > 0
        if coding == "*":
            star = q > 0
    return star


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in JSON_TYPES


class JsonCompression:
    """ASGI middleware: gzip a JSON answer whose whole body comes in one message, where the
    client accepts it. Anything else (a streamed body, another type, an encoded one, a HEAD)
    passes unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not accepts_gzip(
            Headers(scope=scope).get("accept-encoding", "")
        ):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        passing = False

        async def compressing(message: Message) -> None:
            nonlocal start, passing
            if passing:
                await send(message)
                return
            if message["type"] == "http.response.start":
                headers = Headers(raw=message["headers"])
                if _is_json(headers.get("content-type", "")) and not headers.get(
                    "content-encoding"
                ):
                    start = message  # held until the body says whether it is worth it
                else:
                    passing = True
                    await send(message)
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body = message.get("body", b"")
            held, start = start, None
            passing = True
            if message.get("more_body") or len(body) < MIN_SIZE:
                await send(held)
                await send(message)
                return
            if len(body) >= IN_THREAD_FROM:
                body = await anyio.to_thread.run_sync(_gzip, body)
            else:
                body = _gzip(body)
            headers = MutableHeaders(raw=list(held["headers"]))
            headers["Content-Encoding"] = "gzip"
            headers["Content-Length"] = str(len(body))
            headers.add_vary_header("Accept-Encoding")
            await send({**held, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, compressing)


def _gzip(body: bytes) -> bytes:
    # mtime=0: the same answer compresses to the same bytes
    return gzip.compress(body, compresslevel=LEVEL, mtime=0)
