"""The one factory for outgoing HTTP sessions: every peer call has timeouts and bounded connect retries."""

from __future__ import annotations

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


def timeout() -> tuple[float, float]:
    return (settings.HTTP_CONNECT_TIMEOUT, settings.HTTP_READ_TIMEOUT)


def session(*, pool_maxsize: int = 10) -> requests.Session:
    """A session that retries only failures to connect (nothing was sent), never reads or non-idempotent sends."""
    retry = Retry(
        total=settings.HTTP_CONNECT_RETRIES,
        connect=settings.HTTP_CONNECT_RETRIES,
        read=0,
        status=0,
        other=0,
        redirect=0,
        backoff_factor=0.2,
        allowed_methods=None,
        raise_on_status=False,
    )
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=pool_maxsize)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.trust_env = False
    return s
