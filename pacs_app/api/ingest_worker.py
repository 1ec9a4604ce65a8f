"""An ingest process (see :mod:`pacs_app.api.ingest_pool`): ``python -m
pacs_app.api.ingest_worker FD``, where FD is its end of a socket pair with the web process.

It reads one upload at a time (the staged files and the form, a web uploader's batch, or a
STOW-RS request's instances; the caller's token and address), checks the token and ingests
the files as the route would in the web process
(:func:`pacs_app.api.routes.studies.ingest_upload`,
:func:`pacs_app.api.routes.uploads.commit_batch`,
:func:`pacs_app.api.dicomweb.stow.store_upload`), and answers with the HTTP status, body and
headers to send. It exits when the web process closes the socket.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys

import orjson
from sqlmodel import Session

from pacs_app.api.dicomweb.stow import store_upload
from pacs_app.api.ingest_pool import BATCH, STOW, STUDIES, decode_length, encode
from pacs_app.api.main import error_answer
from pacs_app.api.multipart import UploadedFile
from pacs_app.api.routes.studies import ingest_upload
from pacs_app.api.routes.uploads import commit_batch
from pacs_app.core import db, logs
from pacs_app.core.errors import DomainError
from pacs_app.core.memory import tune_collector
from pacs_app.services import auth

log = logging.getLogger("pacs_app.ingest_worker")
PLAIN_TEXT = {"content-type": "text/plain; charset=utf-8"}


def handle(message: dict) -> dict:
    """One upload to ``{"status", "body", "headers"}``: ``POST /studies``'s staged files,
    ``{"token", "address", "files": [[name, path, size, sha256], ...], "fields": {...}}``, a
    batch of the web uploader, ``{"kind": "batch", "token", "address", "batch_id"}``, or a
    STOW-RS request, ``{"kind": "stow", "token", "address", "files", "study_uid",
    "base_url"}``."""
    kind = message.get("kind", STUDIES)
    with Session(db.get_engine(), expire_on_commit=False) as session:
        try:
            if kind == STOW:
                return store_upload(session, message)
            if kind == BATCH:
                token, address = message["token"], message["address"]
                actor = auth.resolve_token(session=session, token=token, address=address)
                body = commit_batch(session, actor, message["batch_id"], address)
            else:
                files = [UploadedFile.from_message(item) for item in message["files"]]
                body = ingest_upload(
                    session, message["token"], message["address"], files, message["fields"]
                )
        except DomainError as exc:
            status, detail, headers = error_answer(exc)
            return {"status": status, "body": orjson.dumps(detail).decode(), "headers": headers}
        except Exception as exc:
            # logged as its type and frames (core.logs): its message can quote patient data
            log.error("an upload failed in an ingest process", exc_info=exc)
            # answered as Starlette answers a failure on every other route
            return {"status": 500, "body": "Internal Server Error", "headers": PLAIN_TEXT}
    return {"status": 201, "body": body, "headers": {}}


def serve(sock: socket.socket) -> None:
    stream = sock.makefile("rb")
    sock.sendall(encode({"ready": os.getpid()}))
    while True:
        head = stream.read(4)
        if len(head) < 4:
            return  # the web process closed its end, or is gone
        message = orjson.loads(stream.read(decode_length(head)))
        sock.sendall(encode(handle(message)))


def main() -> int:
    # Ctrl+C in `reflex run` reaches the whole process group: the web process stops its
    # children itself (closing the socket), after its requests end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.configure()
    sock = socket.socket(fileno=int(sys.argv[1]))
    tune_collector()
    try:
        serve(sock)
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
