"""DCMTK's command-line tools for the tests, found by path.

pynetdicom installs Python apps of the same names (``storescu``, ``echoscu``...) into the
virtual environment, whose ``bin`` comes first on the test command's PATH: a test that means
DCMTK must not run those. A tool here is an executable on PATH that is not a script.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def tool(name: str) -> str | None:
    """The path of DCMTK's ``name`` on PATH, or None."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder or ".") / name
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        with candidate.open("rb") as head:
            if head.read(2) != b"#!":  # a compiled program, not a console script
                return str(candidate)
    return None


def required(*names: str, install: str = "dcmtk") -> list[str]:
    """The paths of the tools ``names`` (:func:`tool`), for a test that compares with them.
    Where one is missing the test fails in CI (``.ci/run`` installs them and sets
    PACS_REQUIRE_DCMTK=1) and is skipped elsewhere, naming the package to install."""
    found = [tool(name) for name in names]
    if all(found):
        return [path for path in found if path is not None]
    missing = " and ".join(name for name, path in zip(names, found, strict=True) if not path)
    if os.environ.get("PACS_REQUIRE_DCMTK") == "1":
        pytest.fail(f"{missing} required (apt-get install {install})")
    pytest.skip(f"{missing} not installed (apt-get install {install})")
