from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from branding.selectors import brand_current


def brand(request: HttpRequest) -> dict[str, object]:
    return {
        # Loaded when the page first uses it, once per page.
        "brand": SimpleLazyObject(brand_current),
        "TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS": settings.TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS,
    }
