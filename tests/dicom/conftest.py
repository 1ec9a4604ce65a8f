"""Fixtures of the DICOM tests."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture
def dsrdump() -> str:
    """DCMTK's dsrdump, the reference reader of structured reports; required in CI."""
    found = shutil.which("dsrdump")
    if found is None:
        if os.environ.get("PACS_REQUIRE_DCMTK") == "1":
            pytest.fail("dsrdump is required (apt-get install dcmtk)")
        pytest.skip("DCMTK is not installed (apt-get install dcmtk)")
    return found
