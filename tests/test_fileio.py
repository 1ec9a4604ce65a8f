"""The writeback hint: asked on Linux for a written file, harmless on a bad descriptor."""

from __future__ import annotations

import os
import sys

import pytest

from pacs_app.core.fileio import start_writeback


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_writeback_is_started_for_a_written_file_and_a_bad_descriptor_is_no_error(tmp_path):
    path = tmp_path / "staged.dcm"
    with path.open("wb") as out:
        out.write(os.urandom(256 * 1024))
        assert start_writeback(out) is True  # flushed first
    assert path.stat().st_size == 256 * 1024
    assert start_writeback(10_000) is False  # EBADF: reported, not raised
