"""The brand's stylesheet (colours) and uploaded logo, served from our own origin."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_GET

from branding.selectors import brand_current, brand_logo


def _text_on(color: str) -> str:
    """Dark or white text, whichever reads better on ``color`` (#rrggbb)."""
    r, g, b = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return "#1b1f24" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.55 else "#ffffff"


@require_GET
def brand_css(request: HttpRequest) -> HttpResponse:
    brand = brand_current()
    # The colours are validated as #rrggbb on the way in (settings and admin), so nothing else reaches CSS.
    header_fg = _text_on(brand.header_color)
    body = (
        f":root {{ --accent:{brand.primary_color}; --on-accent:{_text_on(brand.primary_color)};"
        f" --brand-header-bg:{brand.header_color}; --brand-header-fg:{header_fg}; }}\n"
        ".site-header { background: var(--brand-header-bg); color: var(--brand-header-fg); }\n"
        "#header { background: var(--brand-header-bg); color: var(--brand-header-fg); }\n"
        "#header a:link, #header a:visited, #site-name a:link, #site-name a:visited,"
        " #user-tools, #user-tools button { color: var(--brand-header-fg); }\n"
        "#site-name a { display: inline-flex; align-items: center; gap: .5rem; }\n"
    )
    response = HttpResponse(body, content_type="text/css; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    return response


@require_GET
def logo(request: HttpRequest) -> HttpResponse:
    found = brand_logo()
    if found is None:
        raise Http404("No logo uploaded.")
    data, content_type = found
    response = HttpResponse(data, content_type=content_type)
    response["Cache-Control"] = "public, max-age=86400"
    # An SVG opened on its own must not run anything.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(brand_current().favicon_url)
