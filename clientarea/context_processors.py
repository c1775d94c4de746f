from django.conf import settings
from django.http import HttpRequest

from clientarea.paths import static_of


def site(request: HttpRequest) -> dict[str, object]:
    return {
        "SANDBOX": settings.SANDBOX,
        "SANDBOX_HTTP": settings.SANDBOX_HTTP if settings.SANDBOX else "",
        # Every page links the site's stylesheet (base.html).
        "site_css_url": static_of("css/site.css"),
    }
