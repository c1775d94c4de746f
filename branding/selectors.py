"""The brand in force: the staff-edited row over the BRAND_* settings.

Kept in the shared cache and dropped by every edit (branding.services), so pages do not read the row each time;
when the cache cannot answer, the row is read. Every page shows the brand, so each process also keeps the one it
last read for ``LOCAL_SECONDS`` rather than asking the shared cache on every page: an edit shows at once in the
process that made it (and after a change of the BRAND_* settings) and within ``LOCAL_SECONDS`` everywhere else.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.templatetags.static import static

from branding.models import Brand


@dataclass(frozen=True)
class BrandView:
    name: str
    primary_color: str
    header_color: str
    support_email: str
    support_url: str
    legal_footer: str
    logo_url: str
    favicon_url: str
    version: str


def _build() -> BrandView:
    row = Brand.objects.filter(pk=1).defer("logo").first()
    name = (row and row.name) or settings.BRAND_NAME
    primary = (row and row.primary_color) or settings.BRAND_PRIMARY_COLOR
    header = (row and row.header_color) or settings.BRAND_HEADER_COLOR
    email = (row and row.support_email) or settings.BRAND_SUPPORT_EMAIL
    url = (row and row.support_url) or settings.BRAND_SUPPORT_URL
    footer = (row and row.legal_footer) or settings.BRAND_LEGAL_FOOTER
    stamp = row.updated_at.timestamp() if row else 0
    has_logo = bool(row and row.logo_content_type)
    version = hashlib.sha256(f"{primary}{header}{stamp}".encode()).hexdigest()[:12]
    if has_logo:
        from django.urls import reverse

        logo_url = f"{reverse('brand-logo')}?v={version}"
    elif settings.BRAND_LOGO:
        logo_url = static(settings.BRAND_LOGO)
    else:
        logo_url = ""
    return BrandView(
        name=name,
        primary_color=primary,
        header_color=header,
        support_email=email,
        support_url=url,
        legal_footer=footer,
        logo_url=logo_url,
        favicon_url=static(settings.BRAND_FAVICON),
        version=version,
    )


CACHE_KEY = "branding:current"
CACHE_SECONDS = 300
LOCAL_SECONDS = 5.0

# (when it was read, the brand): replaced whole, so a thread reads one or the other, never half of each.
_local: tuple[float, BrandView] | None = None


def brand_current() -> BrandView:
    """The brand to show now."""
    global _local
    held = _local
    if held is not None and time.monotonic() - held[0] < LOCAL_SECONDS:
        return held[1]
    view = _shared()
    _local = (time.monotonic(), view)
    return view


def _shared() -> BrandView:
    from django.core.cache import cache

    try:
        cached = cache.get(CACHE_KEY)
    except Exception:  # the cache is down: read the row
        return _build()
    if isinstance(cached, BrandView):
        return cached
    view = _build()
    with contextlib.suppress(Exception):  # not cached this time; the next page tries again
        cache.set(CACHE_KEY, view, timeout=CACHE_SECONDS)
    return view


def brand_forget() -> None:
    """Drop the cached brand (after an edit), here and in the shared cache."""
    global _local
    from django.core.cache import cache

    _local = None

    with contextlib.suppress(Exception):  # the cache is down: the entry expires by itself (CACHE_SECONDS)
        cache.delete(CACHE_KEY)


def brand_logo() -> tuple[bytes, str] | None:
    row = Brand.objects.filter(pk=1).only("logo", "logo_content_type").first()
    if row is None or not row.logo or not row.logo_content_type:
        return None
    return bytes(row.logo), row.logo_content_type


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: object) -> None:
    # The brand falls back on the BRAND_* settings (changed by tests and at run time by nothing else).
    if setting.startswith("BRAND_"):
        brand_forget()
