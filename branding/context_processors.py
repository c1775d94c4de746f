from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from branding.selectors import brand_current
from clientarea.paths import path_of


def brand(request: HttpRequest) -> dict[str, object]:
    return {
        # Loaded when the page first uses it, once per page.
        "brand": SimpleLazyObject(brand_current),
        # Every page links the stylesheet: its path reversed once (clientarea.paths).
        "brand_css_path": path_of("brand-css"),
        "TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS": settings.TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS,
    }
