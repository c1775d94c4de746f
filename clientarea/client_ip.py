"""The client's address, as the trusted reverse proxies in front of us saw it.

With ``TRUSTED_PROXY_COUNT`` = 0 the address is the socket peer (``REMOTE_ADDR``), and ``X-Forwarded-For``
is ignored: anyone can send it. With N trusted proxies, each appends the address it received the request
from, so the client is the N-th address from the right of the chain ``X-Forwarded-For, REMOTE_ADDR``;
whatever a client put further left is ignored. python-ipware reads the chain.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from python_ipware import IpWare


def client_ip(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR") or None
    count = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if count <= 0 or not forwarded or remote is None:
        return remote
    # python-ipware counts the proxies listed in the chain; the nearest one is the socket peer.
    chain = {"HTTP_X_FORWARDED_FOR": f"{forwarded}, {remote}"}
    ip, _trusted = IpWare(precedence=("HTTP_X_FORWARDED_FOR",), proxy_count=count).get_client_ip(chain)
    # Fewer addresses than trusted proxies: the request did not come through them all.
    return str(ip) if ip is not None else remote
