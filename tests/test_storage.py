"""Local storage: keys stay under the root; puts are atomic; a deferred sync; a given digest."""

from __future__ import annotations

import hashlib

import pytest

from pacs_app.storage import Digest, KeyExists, LocalStorage, StorageError


@pytest.mark.parametrize(
    "key", ["../outside.dcm", "A/../../outside.dcm", "/etc/passwd", "A//B.dcm", "", "A/./B", "a\\b"]
)
def test_keys_that_could_leave_the_root_are_refused(tmp_path, key):
    storage = LocalStorage(tmp_path / "store")
    source = tmp_path / "x.dcm"
    source.write_bytes(b"x")
    with pytest.raises(StorageError, match="escapes the storage root"):
        storage.put_file(key, source)
    assert not (tmp_path / "outside.dcm").exists()


@pytest.mark.parametrize("move", [False, True])
def test_a_deferred_put_is_complete_and_sync_makes_it_durable(tmp_path, move):
    storage = LocalStorage(tmp_path / "store")
    source = tmp_path / "x.dcm"
    source.write_bytes(b"DICM" * 1000)
    stored = storage.put_file(
        "NORTH/ABCD1234/instance_001.dcm", source, overwrite=False, move=move, durable=False
    )
    assert stored.sha256 == hashlib.sha256(b"DICM" * 1000).hexdigest() and stored.size == 4000
    storage.sync([stored.key])
    assert storage.local_path(stored.key).read_bytes() == b"DICM" * 1000
    with pytest.raises(KeyExists):
        storage.put_file(stored.key, source, overwrite=False, move=move)
    with pytest.raises(StorageError, match="could not make the stored files durable"):
        storage.sync(["NORTH/ABCD1234/instance_999.dcm"])


def test_a_digest_computed_while_staging_is_taken_as_given(tmp_path):
    storage = LocalStorage(tmp_path / "store")
    source = tmp_path / "x.dcm"
    source.write_bytes(b"abc")
    given = Digest(size=3, sha256=hashlib.sha256(b"abc").hexdigest())
    stored = storage.put_file("C/S/i.dcm", source, overwrite=False, move=True, digest=given)
    assert (stored.size, stored.sha256) == (given.size, given.sha256)
