"""Fixtures of the DICOM tests."""

from __future__ import annotations

import pytest

from tests.dcmtk import required


@pytest.fixture
def dsrdump() -> str:
    """DCMTK's dsrdump, the reference reader of structured reports; required in CI."""
    return required("dsrdump")[0]
