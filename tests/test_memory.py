"""The web process keeps freed memory for the next request (see pacs_app/core/memory.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_the_app_sets_the_allocator_thresholds_and_freezes_its_heap_when_imported():
    # In a fresh interpreter: importing the Reflex app module sets them once.
    code = (
        "import pacs_app.pacs_app\n"
        "from pacs_app.core import memory\n"
        "assert memory._done, 'not set at import'\n"
        "assert memory.keep_freed_memory()\n"
        "import gc\n"
        "assert gc.get_threshold() == (memory.YOUNG_THRESHOLD, *memory.OLDER_THRESHOLDS)\n"
        "assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
