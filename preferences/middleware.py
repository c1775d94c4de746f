"""The language of a request: TradingView's ``lang`` for its authorization flow, else the profile's, else
what Django's LocaleMiddleware found (the language cookie, then the browser's Accept-Language)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from clientarea.paths import path_of

SESSION_KEY = "preferences.language"

# TradingView's locale codes that are not ours; the rest are matched by their first two letters.
_TRADINGVIEW_ALIASES = {"br": "pt", "kr": "ko", "in": "id", "zh_TW": "zh-hant"}


def supported_language(code: str) -> str:
    """Our language for a TradingView or browser code, or "" when we do not ship it."""
    if not code:
        return ""
    code = _TRADINGVIEW_ALIASES.get(code, code).replace("_", "-").lower()
    ours = dict(settings.LANGUAGES)
    if code in ours:
        return code
    base = code.split("-")[0]
    return base if base in ours else ""


def _sign_in_paths() -> tuple[str, ...]:
    return path_of("login"), path_of("signup"), path_of("two_factor_verify")


def flow_language(request: HttpRequest) -> str:
    """TradingView's ``lang`` when the request belongs to its authorization flow (the authorize page itself, or a
    sign-in, sign-up or second-factor page on the way back to it)."""
    # Every request passes here: the paths are reversed once (clientarea.paths).
    authorize = path_of("tradingview:authorize")
    if request.path == authorize:
        return supported_language(request.GET.get("lang", ""))
    nxt = request.GET.get("next", "")
    if not nxt and request.method == "POST" and request.path in _sign_in_paths():
        # Only the small sign-in forms: any other body is left for its view to parse.
        nxt = request.POST.get("next", "")
    if nxt:
        parts = urlsplit(nxt)
        if parts.path == authorize and not parts.netloc:
            return supported_language(parse_qs(parts.query).get("lang", [""])[0])
    return ""


class TraderLanguageMiddleware:
    """After authentication: the flow's language, else the profile's, over LocaleMiddleware's choice."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        code = flow_language(request)
        if not code and request.user.is_authenticated:
            # Put in the session at sign-in and on every change (no query per request).
            code = supported_language(str(request.session.get(SESSION_KEY, "")))
        if code:
            translation.activate(code)
            request.LANGUAGE_CODE = code
        response = self.get_response(request)
        if code:
            response.headers.setdefault("Content-Language", code)
        return response
