from django.conf import settings
from django.http import HttpRequest

from branding.selectors import brand_current
from clientarea.paths import path_of


def brand(request: HttpRequest) -> dict[str, object]:
    return {
        # Every page shows the brand, and this process holds the one it last read (branding.selectors): read
        # here, the template's lookups on it are plain attribute reads, where a lazy object would add a proxy
        # call and a caught AttributeError to each of them.
        "brand": brand_current(),
        # Every page links the stylesheet: its path reversed once (clientarea.paths).
        "brand_css_path": path_of("brand-css"),
        "TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS": settings.TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS,
    }
