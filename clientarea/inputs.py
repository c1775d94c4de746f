"""Malformed input is the client's error: a NUL byte (PostgreSQL cannot store it) or another control
character that no form field accepts, in any query or form parameter, answers 400 before a view sees it."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext as _

# C0 controls except tab, line feed and carriage return (a textarea sends those), and unpaired surrogates.
_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def has_invalid_characters(request: HttpRequest) -> bool:
    for query in (request.GET, request.POST if request.method == "POST" else None):
        if query is None:
            continue
        for key, values in query.lists():
            if _INVALID.search(key) or any(_INVALID.search(v) for v in values):
                return True
    return bool(_INVALID.search(request.path))


class RejectInvalidCharactersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            invalid = has_invalid_characters(request)
        except (MultiPartParserError, UnicodeDecodeError, ValueError):
            invalid = True
        if invalid:
            message = _(
                "The request contains characters that are not allowed. Please check what you typed and try again."
            )
            if request.path.startswith(("/api/", "/tradingview/oauth/token")):
                return JsonResponse({"error": "invalid_request", "error_description": message}, status=400)
            return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
