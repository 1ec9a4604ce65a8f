"""Logging without patient data: every process of the app configures its logs here.

An exception's message can quote patient data: PostgreSQL's ``DETAIL`` names a duplicate
key's value, pydicom quotes an element it could not read, a file name can be a patient's
name. Once :func:`configure` has run, every log record of the process, whichever library
writes it and whichever handler prints it, carries an exception as its type and its frames
(file, line, function), never its message; the code that logs may still name what failed
in its own words.
"""

from __future__ import annotations

import logging
import traceback
from types import TracebackType

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEFT_OUT = "(messages left out: they can quote patient data)"


def describe_failure(exc: BaseException) -> str:
    """A traceback of ``exc``, then of the exceptions it was raised from or while handling,
    each with its frames and its type but not its message."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(_one(type(current), current.__traceback__))
        if current.__cause__ is not None:
            parts.append("raised from:")
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            parts.append("raised while handling:")
            current = current.__context__
        else:
            current = None
    return f"Traceback {LEFT_OUT}:\n" + "\n".join(parts)


def _one(kind: type[BaseException], tb: TracebackType | None) -> str:
    frames = "".join(traceback.format_list(traceback.extract_tb(tb, limit=None)))
    # Only the frames' positions and code lines: extract_tb reads the source, not the values.
    return f"{frames}{kind.__module__}.{kind.__qualname__}"


_factory_installed = False


def _without_messages(base):
    def factory(*args, **kwargs) -> logging.LogRecord:
        record = base(*args, **kwargs)
        exc_info = record.exc_info
        if exc_info and exc_info[1] is not None:
            record.exc_text = describe_failure(exc_info[1])
            record.exc_info = None  # no formatter prints the message
        return record

    return factory


def configure(level: int = logging.INFO) -> None:
    """The process's log format, and exceptions without their messages in every record."""
    global _factory_installed
    logging.basicConfig(level=level, format=FORMAT)
    if not _factory_installed:
        logging.setLogRecordFactory(_without_messages(logging.getLogRecordFactory()))
        _factory_installed = True
