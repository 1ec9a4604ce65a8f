"""The streaming multipart reader of POST /studies, on bodies as real clients encode them."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pacs_app.api.multipart import read_form
from pacs_app.core.errors import InvalidInput, TooLarge


class _Request:
    """What read_form uses of a Starlette request: the headers and the body, in chunks of
    ``chunk`` bytes, or of the sizes listed."""

    def __init__(self, headers, body: bytes, chunk: int | list[int]):
        self.headers, self._body, self._chunk = headers, body, chunk

    async def stream(self):
        if isinstance(self._chunk, int):
            for i in range(0, len(self._body), self._chunk):
                yield self._body[i : i + self._chunk]
            return
        at = 0
        for size in self._chunk:
            yield self._body[at : at + size]
            at += size
        if at < len(self._body):
            yield self._body[at:]


def _run(coroutine):
    """Run ``coroutine`` to its end in a thread of its own: a test that ran before in this
    process (Playwright's sync API) may have left an event loop set on this thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _encoded(files, data):
    request = httpx.Request("POST", "http://x/studies", files=files, data=data)
    return dict(request.headers), request.read()


def _read(headers, body, chunk, tmp_path, **limits):
    folder = tmp_path / f"stage-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    return _run(
        read_form(
            _Request(headers, body, chunk),
            folder,
            file_field="files",
            text_fields={"patient_name", "priority"},
            max_file_bytes=limits.get("max_file_bytes", 10 * 1024 * 1024),
        )
    )


# data that looks like the start of a boundary, CRLFs, and random bytes
TRICKY = b"\r\n--\r\n-" + os.urandom(200_000) + b"\r\n--not-the-boundary\r\n" + b"\r\n" * 3


@pytest.mark.parametrize("chunk", [1, 7, 70, 4096, 65536, 10_000_000])
def test_files_and_fields_come_through_whole_in_any_chunking(tmp_path, chunk):
    if chunk == 1:
        body_files = [("files", ("a.dcm", b"\r\n--x\r\n" * 50, "application/dicom"))]
    else:
        body_files = [
            ("files", ("a.dcm", TRICKY, "application/dicom")),
            ("other", ("skip.bin", b"ignored", "application/octet-stream")),
            ("files", ("dir/b ü.dcm", b"", "application/dicom")),
            ("files", ("c.dcm", os.urandom(3000), "application/dicom")),
        ]
    headers, body = _encoded(
        body_files, {"patient_name": "Doe^Jane Ü", "priority": "urgent", "unknown": "x"}
    )
    form = _read(headers, body, chunk, tmp_path)
    sent = [f for name, f in body_files if name == "files"]
    assert [f.name for f in form.files] == [f[0] for f in sent]
    assert [f.path.read_bytes() for f in form.files] == [f[1] for f in sent]
    assert [f.size for f in form.files] == [len(f[1]) for f in sent]
    assert form.fields == {"patient_name": "Doe^Jane Ü", "priority": "urgent"}


@pytest.mark.parametrize("seed", range(12))
def test_random_chunkings_of_data_full_of_near_delimiters(tmp_path, seed):
    """Chunks cut anywhere, including inside a delimiter, a part's headers or data that
    looks like a delimiter but is not one; every file arrives whole, with its sha256."""
    rng = random.Random(seed)
    boundary = "".join(rng.choice("abcdefXYZ0123456789") for _ in range(rng.randint(8, 40)))
    near = [b"\r\n--" + boundary[:k].encode() for k in range(len(boundary))]
    payloads = []
    for _ in range(rng.randint(1, 4)):
        pieces = [rng.choice(near) if rng.random() < 0.4 else rng.randbytes(rng.randint(0, 300))]
        pieces += [rng.choice(near) + rng.randbytes(rng.randint(0, 50)) for _ in range(20)]
        payloads.append(b"".join(pieces))
    body = b"preamble\r\n" if seed % 2 else b""
    for i, data in enumerate(payloads):
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="f{i}.dcm"\r\nContent-Type: application/dicom\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    sizes = [rng.choice([1, 2, 3, len(boundary) + 3, len(boundary) + 4, rng.randint(1, 400)])]
    while sum(sizes) < len(body):
        sizes.append(rng.choice([1, 2, len(boundary) + 4, rng.randint(1, 400)]))
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    form = _read(headers, body, sizes, tmp_path)
    assert [f.path.read_bytes() for f in form.files] == payloads
    assert [f.sha256 for f in form.files] == [hashlib.sha256(p).hexdigest() for p in payloads]


def test_a_body_without_its_end_is_refused(tmp_path):
    headers, body = _encoded([("files", ("a.dcm", b"x" * 1000, "application/dicom"))], {})
    with pytest.raises(InvalidInput, match="cut short"):
        _read(headers, body[:-60], 100, tmp_path)


def test_limits(tmp_path):
    headers, body = _encoded([("files", ("big.dcm", b"x" * 3_000_000, "application/dicom"))], {})
    with pytest.raises(TooLarge, match=r"big\.dcm: the file is over the 2 MB limit"):
        _read(headers, body, 65536, tmp_path, max_file_bytes=2 * 1024 * 1024)
    headers, body = _encoded(
        [("files", ("a.dcm", b"x", "application/dicom"))], {"patient_name": "x" * 70_000}
    )
    with pytest.raises(InvalidInput, match="patient_name is over"):
        _read(headers, body, 65536, tmp_path)
    with pytest.raises(InvalidInput, match="multipart/form-data"):
        _read({"content-type": "application/json"}, b"{}", 10, tmp_path)


def test_a_staging_folder_that_cannot_be_written_is_a_clear_503(tmp_path):
    from pacs_app.core.errors import StorageUnavailable

    headers, body = _encoded([("files", ("a.dcm", b"x" * 100, "application/dicom"))], {})
    gone = tmp_path / "gone"  # never created: opening the staged file fails
    with pytest.raises(StorageUnavailable, match="could not be staged"):
        _run(
            read_form(
                _Request(headers, body, 64),
                gone,
                file_field="files",
                text_fields=set(),
                max_file_bytes=1024,
            )
        )
