from django.conf import settings
from django.http import HttpRequest

from branding.selectors import brand_current


def brand(request: HttpRequest) -> dict[str, object]:
    return {
        "brand": brand_current(),
        "TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS": settings.TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS,
    }
