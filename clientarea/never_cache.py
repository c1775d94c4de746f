"""Django's ``never_cache``, writing its two headers directly when the response has neither.

Django's ``add_never_cache_headers`` builds the ``Cache-Control`` header in two passes (``max-age=0``, then
parsed back and merged with ``no-cache, no-store, must-revalidate, private``), which costs a page about three
times what writing the result does. Every page that must not be cached (the sign-in and two-step pages, the
TradingView authorization, the account opening) answers with a response that has no ``Cache-Control`` yet, so
this writes the same two headers at once; a response that already has one, or an ``Expires``, is left to
Django's function, which merges. ``tests/clientarea/test_never_cache.py`` pins the headers against Django's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils import cache
from django.utils.http import http_date

# What Django's add_never_cache_headers writes into a response without a Cache-Control header.
NEVER_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"

View = TypeVar("View", bound=Callable[..., Any])


def add_never_cache_headers(response: HttpResponseBase) -> None:
    """As ``django.utils.cache.add_never_cache_headers``: ``Expires`` now and ``Cache-Control`` forbidding any
    cache to keep the response."""
    if response.has_header("Cache-Control") or response.has_header("Expires"):
        cache.add_never_cache_headers(response)
        return
    response.headers["Expires"] = http_date()
    response.headers["Cache-Control"] = NEVER_CACHE


def _check_request(request: Any) -> None:
    if not hasattr(request, "META"):
        raise TypeError(
            "never_cache didn't receive an HttpRequest. If you are decorating a classmethod, be sure to use "
            "@method_decorator."
        )


def never_cache(view_func: View) -> View:
    """As ``django.views.decorators.cache.never_cache``, with ``add_never_cache_headers`` above."""
    if iscoroutinefunction(view_func):

        async def _async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            _check_request(request)
            response = await view_func(request, *args, **kwargs)
            add_never_cache_headers(response)
            return response

        return functools.wraps(view_func)(_async_view)  # type: ignore[return-value]

    def _view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        _check_request(request)
        response = view_func(request, *args, **kwargs)
        add_never_cache_headers(response)
        return response

    return functools.wraps(view_func)(_view)  # type: ignore[return-value]
