"""A streaming reader of ``multipart/form-data`` uploads (and of STOW-RS's
``multipart/related`` bodies): file parts go straight to disk.

FastAPI's form handling spools every file part (in memory up to 1 MB, then in a temporary
file), after which the route copies it to the staging folder; and its per-field validation
costs more than parsing a DICOM header. ``POST /studies`` receives hundreds of instances a
second, so it reads its body here instead: each file part is written as it arrives into the
upload's private staging folder, under the limits below, and the text fields are collected.

The parser finds the boundaries with ``bytes.find`` over each chunk (python-multipart's
state machine walks the data in Python and cost more than the rest of the request).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from pacs_app.core.errors import InvalidInput, TooLarge, UnsupportedMediaType
from pacs_app.core.fileio import start_writeback
from pacs_app.services.ingest import StagedFile
from pacs_app.services.uploads import staging_failed
from pacs_app.storage import Digest

MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 100_000
MAX_HEADER_BYTES = 16 * 1024
DICOM = b"application/dicom"


@dataclass
class UploadedFile:
    name: str  # what the sender called it
    path: Path  # where it was written
    size: int = 0
    sha256: str = ""  # of what was written, computed as it arrived

    def as_message(self) -> list:
        """As an ingest process is sent it (:mod:`pacs_app.api.ingest_pool`)."""
        return [self.name, str(self.path), self.size, self.sha256]

    @classmethod
    def from_message(cls, item: list) -> UploadedFile:
        name, path, size, sha256 = item
        return cls(name=name, path=Path(path), size=size, sha256=sha256)

    def staged(self) -> StagedFile:
        """For ingest, which links the file into storage (the caller removes this name)."""
        return StagedFile(
            name=self.name,
            path=self.path,
            disposable=True,
            digest=Digest(size=self.size, sha256=self.sha256),
        )

    @staticmethod
    def remove(files: list[UploadedFile]) -> None:
        """Drop the staged names (ingest has hard-linked what it stored, or refused them)."""
        for f in files:
            f.path.unlink(missing_ok=True)


@dataclass
class Form:
    files: list[UploadedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


class _Reader:
    """What the parser finds, kept: with a ``file_field``, the parts of a form (files of that
    field, and ``text_fields``); without one, every part is a DICOM instance
    (``multipart/related``; a part of another type is refused)."""

    def __init__(
        self,
        folder: Path,
        prefix: str,
        file_field: str | None,
        text_fields: set[str],
        max_file_bytes: int,
    ):
        self.folder, self.prefix = folder, prefix
        self.file_field, self.text_fields = file_field, text_fields
        self.max_file_bytes = max_file_bytes
        self.form = Form()
        self.parts = 0
        self._out: BinaryIO | None = None
        self._file: UploadedFile | None = None
        self._hash = hashlib.sha256()
        self._text: bytearray | None = None
        self._text_name = ""

    # --- what the parser reports ----------------------------------------------------------
    def part_begin(self, headers: dict[bytes, bytes]) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidInput(f"The upload has more than {MAX_PARTS} parts.")
        if self.file_field is None:
            media_type, _ = parse_options_header(headers.get(b"content-type", DICOM))
            if media_type != DICOM:
                raise UnsupportedMediaType(
                    f"Part {self.parts} is {media_type.decode('latin-1')}: only "
                    "application/dicom instances are accepted."
                )
            self._begin_file(f"instance {self.parts}")
            return
        _disposition, options = parse_options_header(headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            if name != self.file_field:
                return  # a file in a field this form does not have: skipped
            filename = options[b"filename"].decode("utf-8", "replace")
            self._begin_file(filename or f"file {len(self.form.files) + 1}")
        elif name in self.text_fields:
            self._text, self._text_name = bytearray(), name

    def _begin_file(self, name: str) -> None:
        number = len(self.form.files) + 1
        self._file = UploadedFile(name=name, path=self.folder / f"{self.prefix}{number:06d}")
        self._out = self._file.path.open("wb")
        self._hash = hashlib.sha256()
        self.form.files.append(self._file)

    def data(self, chunk: memoryview) -> None:
        if self._out is not None and self._file is not None:
            self._file.size += len(chunk)
            if self._file.size > self.max_file_bytes:
                raise TooLarge(
                    f"{self._file.name}: the file is over the "
                    f"{self.max_file_bytes // (1024 * 1024)} MB limit"
                )
            self._out.write(chunk)
            self._hash.update(chunk)
        elif self._text is not None:
            self._text += chunk
            if len(self._text) > MAX_FIELD_BYTES:
                raise TooLarge(f"The field {self._text_name} is over {MAX_FIELD_BYTES} bytes.")

    def part_end(self) -> None:
        if self._out is not None and self._file is not None:
            start_writeback(self._out)  # ingest's fsync then finds it written
            self._out.close()
            self._file.sha256 = self._hash.hexdigest()
        elif self._text is not None:
            self.form.fields[self._text_name] = self._text.decode("utf-8", "replace")
        self._out = self._file = self._text = None

    def close(self) -> None:
        if self._out is not None:
            self._out.close()

    def discard(self) -> None:
        """Remove what was staged (the body was refused)."""
        for f in self.form.files:
            f.path.unlink(missing_ok=True)


class _Parser:
    """RFC 7578 multipart/form-data, fed chunk by chunk.

    File data is handed on as slices of the chunks as they came (no copy into a buffer): only
    what may be the start of a delimiter at a chunk's end, or a part's headers cut by a
    chunk's end, is carried over to the next chunk.
    """

    PREAMBLE, AFTER_DELIMITER, HEADERS, DATA, END = range(5)

    def __init__(self, boundary: bytes, reader: _Reader):
        self.reader = reader
        self.delimiter = b"\r\n--" + boundary
        # The first delimiter may open the body, without the CRLF of the others before it.
        self.carry = b"\r\n"
        self.state = self.PREAMBLE

    @property
    def finished(self) -> bool:
        return self.state == self.END

    def feed(self, chunk: bytes) -> None:
        if self.state == self.END:
            return  # an epilogue
        pos = 0
        if self.carry:
            carry, self.carry = self.carry, b""
            if self.state in (self.PREAMBLE, self.DATA) and len(chunk) >= len(self.delimiter):
                # The carry is shorter than the delimiter: one that starts in it ends within
                # the chunk's first bytes, so the join of the two is all there is to search.
                joint = carry + chunk[: len(self.delimiter) - 1]
                at = joint.find(self.delimiter)
                if at < 0:
                    self._data(memoryview(carry))
                else:
                    self._data(memoryview(carry)[:at])
                    self._delimiter_found()
                    pos = at + len(self.delimiter) - len(carry)
            else:  # headers cut by the chunk's end, or a short chunk: small, joined
                chunk = carry + chunk
        view = memoryview(chunk)
        with view:
            self._walk(chunk, view, pos)

    def _data(self, data: memoryview) -> None:
        if self.state == self.DATA and len(data):
            self.reader.data(data)

    def _delimiter_found(self) -> None:
        if self.state == self.DATA:
            self.reader.part_end()
        self.state = self.AFTER_DELIMITER

    def _walk(self, chunk: bytes, view: memoryview, pos: int) -> None:
        size = len(chunk)
        while True:
            if self.state in (self.PREAMBLE, self.DATA):
                at = chunk.find(self.delimiter, pos)
                if at < 0:
                    # all but a possible start of the delimiter is data (or preamble)
                    keep = max(pos, size - (len(self.delimiter) - 1))
                    self._data(view[pos:keep])
                    self.carry = bytes(view[keep:])
                    return
                self._data(view[pos:at])
                self._delimiter_found()
                pos = at + len(self.delimiter)
            if self.state == self.AFTER_DELIMITER:
                if size - pos < 2:
                    self.carry = bytes(view[pos:])
                    return
                if chunk[pos : pos + 2] == b"--":  # the close delimiter; an epilogue follows
                    self.state = self.END
                    return
                end = chunk.find(b"\r\n", pos)
                if end < 0 or chunk[pos:end].strip(b" \t"):
                    if end < 0 and size - pos < 256:
                        self.carry = bytes(view[pos:])
                        return  # transport padding, or the CRLF still to come
                    raise InvalidInput("The multipart body is malformed (after a boundary).")
                pos = end + 2
                self.state = self.HEADERS
            if self.state == self.HEADERS:
                end = chunk.find(b"\r\n\r\n", pos)
                if end < 0:
                    if size - pos > MAX_HEADER_BYTES:
                        raise InvalidInput("A part of the multipart body has oversized headers.")
                    self.carry = bytes(view[pos:])
                    return
                headers = {}
                for line in chunk[pos:end].split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                pos = end + 4
                self.reader.part_begin(headers)
                self.state = self.DATA
            if self.state == self.END:
                return


async def read_form(
    request: Request,
    folder: Path,
    *,
    file_field: str,
    text_fields: set[str],
    max_file_bytes: int,
    prefix: str = "",
) -> Form:
    """Read the request's multipart body: files of ``file_field`` into ``folder``, named
    ``{prefix}000001`` and on (the caller removes them once done), the ``text_fields`` into a
    dict; other parts are skipped.

    Raises :class:`InvalidInput` when the body is not multipart/form-data, is cut short, or
    goes over a limit (a file over ``max_file_bytes``, a text field over 64 KiB); what was
    staged of a refused body is removed.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidInput(
            f"Send the upload as multipart/form-data, with the files in '{file_field}'."
        )
    reader = _Reader(folder, prefix, file_field, text_fields, max_file_bytes)
    await _read(request, _Parser(boundary, reader), reader)
    return reader.form


async def read_related(
    request: Request, folder: Path, *, max_file_bytes: int, prefix: str = ""
) -> list[UploadedFile]:
    """Read a STOW-RS body (``multipart/related; type="application/dicom"``, PS3.18 §10.5):
    each part, a DICOM instance, into ``folder`` as :func:`read_form` writes files, named
    "instance 1" and on.

    Raises :class:`UnsupportedMediaType` when the body is not multipart/related or holds a
    part that is not application/dicom (metadata and bulk data parts are not taken), and
    :class:`InvalidInput` as :func:`read_form` does.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    root_type, _ = parse_options_header(options.get(b"type", DICOM))
    if content_type != b"multipart/related" or not boundary or root_type != DICOM:
        raise UnsupportedMediaType(
            'Send the instances as multipart/related; type="application/dicom", one DICOM '
            "file a part (other representations are not accepted)."
        )
    reader = _Reader(folder, prefix, None, set(), max_file_bytes)
    await _read(request, _Parser(boundary, reader), reader)
    return reader.form.files


async def _read(request: Request, parser: _Parser, reader: _Reader) -> None:
    """Feed the request's body to ``parser``; on a refusal, what was staged is removed."""
    try:
        try:
            async for chunk in request.stream():
                if chunk:
                    parser.feed(chunk)
                if parser.finished:
                    break  # the close delimiter: what may follow is an epilogue, ignored
        finally:
            reader.close()
        if not parser.finished:
            raise InvalidInput("The upload was cut short: its multipart body has no end.")
    except OSError as exc:  # the staging folder's disk is full or gone
        reader.discard()
        raise staging_failed(exc) from exc
    except BaseException:
        reader.discard()
        raise
