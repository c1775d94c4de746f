"""URL paths that every request compares with or links to, reversed once per name, script prefix and URL
configuration instead of on each request."""

from __future__ import annotations

import functools

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse


@functools.lru_cache(maxsize=64)
def _reversed(name: str, script_prefix: str, urlconf: str) -> str:
    # The prefix and the configuration are the key: ``reverse`` reads the current ones itself.
    return reverse(name)


def path_of(name: str) -> str:
    """``reverse(name)`` (a URL without arguments) for the current script prefix and URL configuration."""
    return _reversed(name, get_script_prefix(), str(get_urlconf() or settings.ROOT_URLCONF))
