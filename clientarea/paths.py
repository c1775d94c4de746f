"""URL paths that every request compares with or links to, reversed once per name, script prefix and URL
configuration instead of on each request; and the URLs of the static files every page links to, looked up once
per file, script prefix and static files configuration."""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse


@functools.lru_cache(maxsize=64)
def _reversed(name: str, script_prefix: str, urlconf: str) -> str:
    # The prefix and the configuration are the key: ``reverse`` reads the current ones itself.
    return reverse(name)


def path_of(name: str) -> str:
    """``reverse(name)`` (a URL without arguments) for the current script prefix and URL configuration."""
    return _reversed(name, get_script_prefix(), str(get_urlconf() or settings.ROOT_URLCONF))


@functools.lru_cache(maxsize=64)
def _static(path: str, script_prefix: str) -> str:
    # ``static`` reads the prefix itself (a relative STATIC_URL is under it).
    return static(path)


def static_of(path: str) -> str:
    """``{% static path %}`` for the current script prefix: the storage's URL of a static file (with the
    manifest's hashed name in production), looked up once instead of on every page (40 µs a page with the
    manifest storage, where a variable costs 14). The files and their manifest do not change while the
    process runs; a change of the static files settings (tests) drops what was looked up."""
    return _static(path, get_script_prefix())


@receiver(setting_changed)
def _static_settings_changed(*, setting: str, **kwargs: object) -> None:
    if setting in ("STATIC_URL", "STATIC_ROOT", "STORAGES", "STATICFILES_DIRS"):
        _static.cache_clear()
