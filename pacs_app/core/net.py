"""Which address a request came from, behind trusted reverse proxies or none.

Sign-in throttling and the audit log key on the client's address. Behind a reverse proxy
(nginx, Caddy, a load balancer) every request's peer is the proxy, so all users would share
one address: one attacker's failed sign-ins would lock everyone out, and the audit would name
the proxy. Each proxy appends the address it saw to ``X-Forwarded-For``; the header is
otherwise whatever the client wrote, so only the entries the trusted proxies added are
believed. ``TRUSTED_PROXY_HOPS`` says how many proxies stand in front; the web pages
(Reflex's ``trusted_proxy_hops``) and the API read the same setting.
"""

from __future__ import annotations


def client_address(peer: str | None, forwarded_for: str | None, trusted_hops: int) -> str | None:
    """The client's address: ``peer`` (the connection's), or, with ``trusted_hops`` proxies
    in front, the entry of ``forwarded_for`` the farthest trusted one added (the
    ``trusted_hops``-th from the end), as Reflex reads it for the pages.

    Example::

        client_address("10.0.0.2", "6.6.6.6, 203.0.113.7", 1)  # "203.0.113.7"
        client_address("10.0.0.2", "6.6.6.6, 203.0.113.7", 0)  # "10.0.0.2": header ignored
    """
    if trusted_hops <= 0 or not forwarded_for:
        return peer
    entries = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    if len(entries) < trusted_hops:
        return peer
    return entries[-trusted_hops]
