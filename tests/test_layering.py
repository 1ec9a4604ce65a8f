"""The domain layer imports neither Reflex nor FastAPI/Starlette nor torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "pacs_app.services",
        "pacs_app.core",
        "pacs_app.models",
        "pacs_app.config",
        "pacs_app.cli",
        "pacs_app.dimse",
    ],
)
def test_lower_layers_do_not_import_web_frameworks(module):
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({module!r})\n"
        "for m in pkgutil.walk_packages(getattr(pkg, '__path__', []), pkg.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted({n.split('.')[0] for n in sys.modules} & "
        "{'reflex', 'fastapi', 'starlette', 'torch', 'monai'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} pulls in {out.stdout.strip()}"
