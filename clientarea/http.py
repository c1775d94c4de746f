"""The one factory for outgoing HTTP sessions: every peer call has timeouts and bounded connect retries.

Peer clients keep their session per thread (``per_thread``): a ``requests.Session`` reuses its keep-alive
connections but is not meant to be shared between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

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


T = TypeVar("T")

_per_thread = threading.local()


def per_thread(name: str, *, key: Hashable, build: Callable[[], T]) -> T:
    """The object ``build`` returns, made once per thread under ``name`` and made again when ``key`` changes.

    ``key`` holds the settings the object was built from, so a changed setting takes effect on the next call.
    """
    cache: dict[str, tuple[Hashable, Any]] = _per_thread.__dict__.setdefault("cache", {})
    cached = cache.get(name)
    if cached is not None and cached[0] == key:
        return cached[1]
    value = build()
    cache[name] = (key, value)
    return value
