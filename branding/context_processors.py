import functools

from django.conf import settings
from django.http import HttpRequest
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.functional import SimpleLazyObject

from branding.selectors import brand_current


@functools.lru_cache(maxsize=16)
def _brand_css_path(script_prefix: str, urlconf: str) -> str:
    # Reversed once per script prefix and URL configuration: every page links the stylesheet.
    return reverse("brand-css")


def brand(request: HttpRequest) -> dict[str, object]:
    return {
        # Loaded when the page first uses it, once per page.
        "brand": SimpleLazyObject(brand_current),
        "brand_css_path": _brand_css_path(get_script_prefix(), str(get_urlconf() or settings.ROOT_URLCONF)),
        "TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS": settings.TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS,
    }
