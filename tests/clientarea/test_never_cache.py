"""The project's ``never_cache`` writes what Django's writes: the same two headers, byte for byte, whatever the
response already has; the same refusal of something that is not a request; and the project's pages use it."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import cache as django_cache
from django.utils.http import http_date
from django.views.decorators.cache import never_cache as django_never_cache

from clientarea import never_cache as ours

ROOT = Path(__file__).resolve().parents[2]

# Responses as views make them: nothing set, or one of the two headers, or both, already set.
PRESET = [
    {},
    {"Cache-Control": "public, max-age=60"},
    {"Cache-Control": "private"},
    {"Cache-Control": "no-store"},
    {"Expires": "Thu, 01 Jan 2099 00:00:00 GMT"},
    {"Cache-Control": "max-age=3600, s-maxage=10", "Expires": "Thu, 01 Jan 2099 00:00:00 GMT"},
]


def _response(headers: dict[str, str]) -> HttpResponse:
    response = HttpResponse("page")
    for name, value in headers.items():
        response[name] = value
    return response


@pytest.fixture
def frozen_clock(monkeypatch):
    # Both write Expires from the clock: the same second for both.
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    return now


@pytest.mark.parametrize("preset", PRESET, ids=lambda p: ",".join(p) or "nothing")
def test_the_headers_are_djangos(frozen_clock, preset):
    theirs, mine = _response(preset), _response(preset)
    django_cache.add_never_cache_headers(theirs)
    ours.add_never_cache_headers(mine)
    assert dict(mine.headers) == dict(theirs.headers)
    assert mine["Cache-Control"] == theirs["Cache-Control"]


def test_a_response_without_the_headers_gets_them_written_at_once(frozen_clock, monkeypatch):
    # The direct path: Django's two-pass merge is not called.
    monkeypatch.setattr(django_cache, "patch_cache_control", _fail)
    response = _response({})
    ours.add_never_cache_headers(response)
    assert response["Cache-Control"] == ours.NEVER_CACHE
    assert response["Expires"] == http_date(frozen_clock)


def _fail(*args, **kwargs):
    raise AssertionError("Django's merge was used for a response without caching headers")


def test_the_decorator_answers_as_djangos_for_sync_and_async_views(frozen_clock):
    request = RequestFactory().get("/page")

    def view(request, *args, **kwargs):
        response = HttpResponse(f"{args}{kwargs}")
        response["Cache-Control"] = "public"
        return response

    async def async_view(request, *args, **kwargs):
        return HttpResponse(f"{args}{kwargs}")

    for decorate in (ours.never_cache, django_never_cache):
        assert decorate(view).__name__ == "view"
    mine, theirs = ours.never_cache(view)(request, 1, k=2), django_never_cache(view)(request, 1, k=2)
    assert (dict(mine.headers), mine.content) == (dict(theirs.headers), theirs.content)
    mine = asyncio.run(ours.never_cache(async_view)(request, 3))
    theirs = asyncio.run(django_never_cache(async_view)(request, 3))
    assert (dict(mine.headers), mine.content) == (dict(theirs.headers), theirs.content)


def test_a_view_marked_as_a_coroutine_function_is_awaited_as_django_awaits_it(frozen_clock):
    from asgiref.sync import markcoroutinefunction

    async def answer(request):
        return HttpResponse("marked")

    def view(request):
        return answer(request)

    markcoroutinefunction(view)
    request = RequestFactory().get("/page")
    mine = asyncio.run(ours.never_cache(view)(request))
    theirs = asyncio.run(django_never_cache(view)(request))
    assert (dict(mine.headers), mine.content) == (dict(theirs.headers), theirs.content) != ({}, b"")


def test_a_method_decorated_without_method_decorator_is_refused_as_django_refuses_it():
    class Views:
        @ours.never_cache
        def page(self, request):
            return HttpResponse()

    with pytest.raises(TypeError, match=r"didn't receive an HttpRequest.*method_decorator"):
        Views().page(RequestFactory().get("/"))


def test_the_projects_views_use_it():
    django_import = re.compile(r"from django\.views\.decorators\.cache import [^\n]*never_cache")
    sources = [
        path
        for path in ROOT.rglob("*.py")
        if not any(part in {".venv", "tests", "node_modules"} for part in path.relative_to(ROOT).parts)
    ]
    assert not [str(p.relative_to(ROOT)) for p in sources if django_import.search(p.read_text())]


@pytest.mark.django_db
def test_a_page_that_must_not_be_cached_says_so(client):
    response = client.get("/account/login/")
    assert response.status_code == 200
    assert response["Cache-Control"] == ours.NEVER_CACHE
    assert response.has_header("Expires")
