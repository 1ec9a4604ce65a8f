"""The client's address behind trusted reverse proxies (X-Forwarded-For), or none."""

from __future__ import annotations

import pytest

from pacs_app.core.net import client_address


@pytest.mark.parametrize(
    ("forwarded_for", "hops", "expected"),
    [
        (None, 1, "10.0.0.2"),  # no header: the peer
        ("203.0.113.7", 0, "10.0.0.2"),  # no proxy trusted: a client could write anything
        ("203.0.113.7", 1, "203.0.113.7"),  # one proxy: the address it saw
        ("6.6.6.6, 203.0.113.7", 1, "203.0.113.7"),  # a client's own entry comes first
        ("6.6.6.6, 203.0.113.7, 10.0.0.9", 2, "203.0.113.7"),  # two proxies
        (" 203.0.113.7 ,", 1, "203.0.113.7"),  # spaces and an empty entry
        ("203.0.113.7", 2, "10.0.0.2"),  # fewer entries than proxies: not through them all
    ],
)
def test_the_address_the_farthest_trusted_proxy_saw(forwarded_for, hops, expected):
    assert client_address("10.0.0.2", forwarded_for, hops) == expected
