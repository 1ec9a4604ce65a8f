"""Which Accept-Encoding headers admit gzip (the answers themselves: test_dicomweb)."""

from __future__ import annotations

import pytest

from pacs_app.api.compression import accepts_gzip


@pytest.mark.parametrize(
    ("header", "admitted"),
    [
        ("gzip, deflate, br, zstd", True),  # Chromium's
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate, gzip;q=0.1", True),
        ("*", True),
        ("br;q=1.0, *;q=0.5", True),
        ("", False),
        ("identity", False),
        ("br, deflate", False),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("gzip;q=0, *", False),  # named and refused: the wildcard does not bring it back
        ("*;q=0", False),
        ("gzip;q=high", False),
    ],
)
def test_accepts_gzip(header, admitted):
    assert accepts_gzip(header) is admitted
