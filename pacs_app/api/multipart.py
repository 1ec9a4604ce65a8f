"""A streaming reader of ``multipart/form-data`` uploads: file parts go straight to disk.

FastAPI's form handling spools every file part (in memory up to 1 MB, then in a temporary
file), after which the route copies it to the staging folder; and its per-field validation
costs more than parsing a DICOM header. ``POST /studies`` receives hundreds of instances a
second, so it reads its body here instead: each file part is written as it arrives into the
upload's private staging folder, under the limits below, and the text fields are collected.

The parser finds the boundaries with ``bytes.find`` over each chunk (python-multipart's
state machine walks the data in Python and cost more than the rest of the request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from pacs_app.core.errors import InvalidInput, StorageUnavailable

MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 100_000
MAX_HEADER_BYTES = 16 * 1024


@dataclass
class UploadedFile:
    name: str  # what the sender called it
    path: Path  # where it was written
    size: int = 0


@dataclass
class Form:
    files: list[UploadedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


class _Reader:
    def __init__(self, folder: Path, file_field: str, text_fields: set[str], max_file_bytes: int):
        self.folder, self.file_field, self.text_fields = folder, file_field, text_fields
        self.max_file_bytes = max_file_bytes
        self.form = Form()
        self.parts = 0
        self._out: BinaryIO | None = None
        self._file: UploadedFile | None = None
        self._text: bytearray | None = None
        self._text_name = ""

    # --- what the parser reports ----------------------------------------------------------
    def part_begin(self, headers: dict[bytes, bytes]) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidInput(f"The upload has more than {MAX_PARTS} parts.")
        _disposition, options = parse_options_header(headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            if name != self.file_field:
                return  # a file in a field this form does not have: skipped
            number = len(self.form.files) + 1
            filename = options[b"filename"].decode("utf-8", "replace")
            self._file = UploadedFile(
                name=filename or f"file {number}", path=self.folder / f"{number:06d}"
            )
            self._out = self._file.path.open("wb")
            self.form.files.append(self._file)
        elif name in self.text_fields:
            self._text, self._text_name = bytearray(), name

    def data(self, chunk: memoryview) -> None:
        if self._out is not None and self._file is not None:
            self._file.size += len(chunk)
            if self._file.size > self.max_file_bytes:
                raise InvalidInput(
                    f"{self._file.name}: the file is over the "
                    f"{self.max_file_bytes // (1024 * 1024)} MB limit"
                )
            self._out.write(chunk)
        elif self._text is not None:
            self._text += chunk
            if len(self._text) > MAX_FIELD_BYTES:
                raise InvalidInput(f"The field {self._text_name} is over {MAX_FIELD_BYTES} bytes.")

    def part_end(self) -> None:
        if self._out is not None:
            self._out.close()
        elif self._text is not None:
            self.form.fields[self._text_name] = self._text.decode("utf-8", "replace")
        self._out = self._file = self._text = None

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


class _Parser:
    """RFC 7578 multipart/form-data, fed chunk by chunk."""

    PREAMBLE, AFTER_DELIMITER, HEADERS, DATA, END = range(5)

    def __init__(self, boundary: bytes, reader: _Reader):
        self.reader = reader
        self.delimiter = b"\r\n--" + boundary
        # The first delimiter may open the body, without the CRLF of the others before it.
        self.buf = bytearray(b"\r\n")
        self.state = self.PREAMBLE

    @property
    def finished(self) -> bool:
        return self.state == self.END

    def feed(self, chunk: bytes) -> None:
        buf = self.buf
        buf += chunk
        while True:
            if self.state in (self.PREAMBLE, self.DATA):
                at = buf.find(self.delimiter)
                if at < 0:
                    # all but a possible start of the delimiter is data (or preamble)
                    keep = len(self.delimiter) - 1
                    if len(buf) > keep:
                        if self.state == self.DATA:
                            with memoryview(buf) as view:
                                self.reader.data(view[: len(buf) - keep])
                        del buf[: len(buf) - keep]
                    return
                if self.state == self.DATA:
                    with memoryview(buf) as view:
                        self.reader.data(view[:at])
                    self.reader.part_end()
                del buf[: at + len(self.delimiter)]
                self.state = self.AFTER_DELIMITER
            if self.state == self.AFTER_DELIMITER:
                if len(buf) < 2:
                    return
                if buf[:2] == b"--":  # the close delimiter; what follows is an epilogue
                    self.state = self.END
                    buf.clear()
                    return
                end = buf.find(b"\r\n")
                if end < 0 or buf[:end].strip(b" \t"):
                    if end < 0 and len(buf) < 256:
                        return  # transport padding, or the CRLF still to come
                    raise InvalidInput("The multipart body is malformed (after a boundary).")
                del buf[: end + 2]
                self.state = self.HEADERS
            if self.state == self.HEADERS:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEADER_BYTES:
                        raise InvalidInput("A part of the multipart body has oversized headers.")
                    return
                headers = {}
                for line in bytes(buf[:end]).split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                del buf[: end + 4]
                self.reader.part_begin(headers)
                self.state = self.DATA
            if self.state == self.END:
                buf.clear()
                return


async def read_form(
    request: Request,
    folder: Path,
    *,
    file_field: str,
    text_fields: set[str],
    max_file_bytes: int,
) -> Form:
    """Read the request's multipart body: files of ``file_field`` into ``folder`` (which the
    caller owns and removes), the ``text_fields`` into a dict; other parts are skipped.

    Raises :class:`InvalidInput` when the body is not multipart/form-data, is cut short, or
    goes over a limit (a file over ``max_file_bytes``, a text field over 64 KiB).
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidInput(
            f"Send the upload as multipart/form-data, with the files in '{file_field}'."
        )
    reader = _Reader(folder, file_field, text_fields, max_file_bytes)
    parser = _Parser(boundary, reader)
    try:
        async for chunk in request.stream():
            if chunk:
                parser.feed(chunk)
    except OSError as exc:  # the staging folder's disk is full or gone
        raise StorageUnavailable(
            f"The upload could not be staged ({exc.strerror or exc}); nothing was stored."
        ) from exc
    finally:
        reader.close()
    if not parser.finished:
        raise InvalidInput("The upload was cut short: its multipart body has no end.")
    return reader.form
