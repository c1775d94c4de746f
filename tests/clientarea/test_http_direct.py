"""Peer calls go straight to the connection pool, and the peer cannot tell: the same bytes on the wire, the same
response, the same exceptions as a call through ``requests.Session.request``.

Every case is made twice against the same loopback peer, once by a session of ``clientarea.http.session()``
and once by the same kind of session with ``direct = False`` (everything through requests), and the two are
compared: what the peer received, byte for byte, and what the caller got back or raised.
"""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from urllib3.util.retry import Retry

from accounts.ctrader.transport import mount_without_retries, not_sent
from clientarea import http
from tests.helpers.peers import recording_peer, tls_peer
from tests.trickle import trickling_server


def _sessions(**options: Any) -> tuple[http.Session, http.Session]:
    direct, through_requests = http.session(**options), http.session(**options)
    through_requests.direct = False
    return direct, through_requests


def _seen(response: requests.Response) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "reason": response.reason,
        "headers": dict(response.headers),
        "content": response.content,
        "text": response.text,
        "encoding": response.encoding,
        "url": response.url,
        "ok": response.ok,
        "is_redirect": response.is_redirect,
        "request": (response.request.method, response.request.url, response.request.body),
        "request headers": dict(response.request.headers),
    }


CALLS = {
    "GET with query parameters": (
        "GET",
        "/json",
        {"params": {"grant_type": "refresh_token", "x": "a b&c=d/é"}},
    ),
    "GET on a URL with a query": ("GET", "/json?fixed=1", {"params": {"more": "2"}}),
    "GET without parameters": ("GET", "/json", {}),
    "GET on a URL without a path": ("GET", "", {}),
    "GET on a URL with an empty query": ("GET", "/json?", {"params": {"a": "1"}}),
    "GET on a URL with a fragment": ("GET", "/json#part", {"params": {"a": "1"}}),
    "GET on a URL with characters to quote": ("GET", "/json/a b/é", {}),
    "POST with JSON": ("POST", "/json", {"json": {"login": 1, "name": "Zoë", "nested": [1, None, True]}}),
    "POST with JSON and its own content type": (
        "POST",
        "/json",
        {"json": {"a": 1}, "headers": {"Content-Type": "application/vnd.api+json"}},
    ),
    "POST with bytes": ("POST", "/json", {"data": b"raw=1&b=2"}),
    "POST without a body": ("POST", "/json", {}),
    "DELETE without a body": ("DELETE", "/json", {}),
    "headers added, overridden and removed": (
        "GET",
        "/json",
        {"headers": {"Authorization": "Bearer s3cret", "Accept": "application/json", "User-Agent": None}},
    ),
    "lower-case method": ("get", "/json", {}),
    "gzip body": ("GET", "/gzip", {}),
    "chunked body": ("GET", "/chunked", {}),
    "text without a charset": ("GET", "/text", {}),
    "no content": ("GET", "/empty", {}),
    "redirect not followed": ("GET", "/redirect", {}),
    "server error": ("POST", "/error", {"json": {}}),
}


@pytest.mark.parametrize("case", list(CALLS))
def test_the_direct_route_sends_and_returns_what_requests_does(case):
    method, path, options = CALLS[case]
    direct, through_requests = _sessions(deadline=10)
    with recording_peer() as (url, received):
        got = []
        for session in (direct, through_requests):
            response = session.request(method, url + path, allow_redirects=False, timeout=(5, 5), **options)
            got.append(_seen(response))
        # The direct session's connection is back in its pool: a second call reuses it.
        direct.request(method, url + path, allow_redirects=False, timeout=(5, 5), **options)
    assert got[0] == got[1]
    (port_a, sent_a), (port_b, sent_b), (port_again, sent_again) = received
    assert sent_a == sent_b == sent_again
    assert port_again == port_a != port_b


@pytest.fixture
def through_requests_calls(monkeypatch) -> list[tuple[Any, ...]]:
    """The (method, URL) of every call that goes through ``requests.Session.request``, from now on."""
    calls: list[tuple[Any, ...]] = []
    original = requests.Session.request

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args[:2])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", counted)
    return calls


def test_a_peer_call_does_not_go_through_requests_session_machinery(through_requests_calls):
    calls = through_requests_calls
    session = http.session(deadline=10)
    with recording_peer() as (url, _):
        assert (
            session.post(url + "/json", json={"a": 1}, allow_redirects=False).json()["expiresIn"] == 2628000
        )
        assert session.request("GET", url + "/json", params={"a": "1"}, allow_redirects=False).ok
        assert calls == []
        # Anything the direct route leaves out goes through requests, unchanged.
        session.get(url + "/json")  # follows redirects
        session.request("GET", url + "/json", allow_redirects=False, stream=True).close()
        session.request("GET", url + "/json", allow_redirects=False, params={"a": ["1", "2"]})
        session.request("GET", url + "/json?q=a b", allow_redirects=False)
        session.cookies.set("chosen", "1")
        session.request("GET", url + "/json", allow_redirects=False)
    assert len(calls) == 5


def test_cookies_a_peer_sets_are_not_kept():
    direct = http.session(deadline=10)
    with recording_peer() as (url, received):
        response = direct.request("GET", url + "/cookie", allow_redirects=False)
        direct.request("GET", url + "/json", allow_redirects=False)
    assert response.headers["Set-Cookie"] == "seen=1; Path=/"
    assert not direct.cookies
    assert b"Cookie" not in received[1][1]


def _failure(call: Any) -> tuple[type[BaseException], bool, str]:
    with pytest.raises(requests.RequestException) as info:
        call()
    return type(info.value), not_sent(info.value), type(getattr(info.value.args[0], "reason", None)).__name__


@pytest.mark.parametrize("connect_retries", [0, 2])
def test_a_refused_connection_raises_the_same_exception(connect_retries):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed_port = probe.getsockname()[1]
    results = [
        _failure(
            lambda s=session: s.request(
                "GET", f"http://127.0.0.1:{closed_port}/json", allow_redirects=False, timeout=(1, 1)
            )
        )
        for session in _sessions(deadline=10, connect_retries=connect_retries)
    ]
    assert results[0] == results[1]
    assert results[0][0] is requests.ConnectionError
    assert results[0][1] is True


@pytest.mark.parametrize("retries", ["session", "none"])
def test_a_read_timeout_raises_the_same_exception(retries):
    results = []
    with recording_peer() as (url, _):
        for session in _sessions(deadline=10):
            if retries == "none":
                mount_without_retries(session, url)
            results.append(
                _failure(
                    lambda s=session: s.request("GET", url + "/slow", allow_redirects=False, timeout=(1, 0.3))
                )
            )
    assert results[0] == results[1]
    assert results[0][1] is False
    assert results[0][0] is (requests.ConnectionError if retries == "session" else requests.ReadTimeout)


@pytest.mark.parametrize("path", ["/truncated", "/bad-gzip"])
def test_a_broken_body_raises_the_same_exception(path):
    with recording_peer() as (url, _):
        results = [
            _failure(lambda s=session: s.request("GET", url + path, allow_redirects=False, timeout=(1, 1)))
            for session in _sessions(deadline=10)
        ]
    assert results[0] == results[1]
    assert results[0][0] in (
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    )


@pytest.mark.parametrize("body_first", [False, True], ids=["status-line", "body"])
def test_the_deadline_ends_a_direct_call_as_it_ends_one_through_requests(body_first):
    outcomes = []
    for session in _sessions(deadline=0.8):
        with trickling_server(interval=0.25, body_first=body_first) as url:
            started = time.monotonic()
            with pytest.raises(http.DeadlineExceeded) as info:
                session.request("GET", url + "/slow", allow_redirects=False, timeout=(2, 2))
            outcomes.append((info.value.request_sent, time.monotonic() - started < 0.8 + 3.0))
    assert outcomes == [(True, True), (True, True)]


def test_a_call_leaves_the_session_headers_as_they_were():
    session = http.session(deadline=10)
    defaults = dict(session.headers)
    with recording_peer() as (url, received):
        session.request("POST", url + "/json", json={"a": 1}, allow_redirects=False)
        session.request("POST", url + "/json", allow_redirects=False, headers={"X-Once": "1"})
        session.request("GET", url + "/json", allow_redirects=False)
    assert dict(session.headers) == defaults
    last = received[-1][1].lower()
    assert b"content-type" not in last
    assert b"content-length" not in last
    assert b"x-once" not in last


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    with recording_peer() as (url, received):
        results = [
            _failure(
                lambda s=session: s.request(
                    "GET", url + "/json", allow_redirects=False, headers={"X-Bad": "a\r\nX-Injected: 1"}
                )
            )
            for session in _sessions(deadline=10)
        ]
    assert results[0] == results[1]
    assert results[0][0] is requests.exceptions.InvalidHeader
    assert received == []


def test_a_direct_call_retries_a_refused_connect_like_requests(monkeypatch):
    # The session's Retry policy is the one urllib3 applies on the direct route too: a refused connect is
    # tried again (connect=2), a read is never resent (read=0).
    session = http.session(deadline=10, connect_retries=2)
    adapter = session.get_adapter("http://127.0.0.1/")
    assert isinstance(adapter.max_retries, Retry)
    attempts = []
    original = http._HTTPConnection.connect

    def counted(self):  # type: ignore[no-untyped-def]
        attempts.append(1)
        return original(self)

    monkeypatch.setattr(http._HTTPConnection, "connect", counted)
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed_port = probe.getsockname()[1]
    with pytest.raises(requests.ConnectionError):
        session.request("GET", f"http://127.0.0.1:{closed_port}/", allow_redirects=False, timeout=(1, 1))
    assert len(attempts) == 3


def test_the_hot_peer_calls_take_the_direct_route(settings, through_requests_calls):
    # The Open API token refresh and the adapter's token request: if either ever asks for something the direct
    # route leaves out, it falls back to requests silently; this says so instead.
    from accounts.services.tokens import oauth_client
    from tradingview import adapter

    with recording_peer() as (url, received):
        settings.CTRADER_TOKEN_URL = f"{url}/apps/token"
        settings.TRADINGVIEW_ADAPTER_URL = f"{url}/adapter"
        settings.TRADINGVIEW_ADAPTER_TOKEN = "bearer-for-the-test"
        pair = oauth_client().refresh(refresh_token="r" * 40)
        generated = adapter.generate_token(
            user_id=1, broker_names=["BROKER"], ctid_trader_account_ids=[2], is_verified=True
        )
    assert pair.access_token == "a" * 40
    assert generated.token == "tv-adapter-token"
    (_, token_request), (_, adapter_request) = received
    method, target, _ = token_request.split(b" ", 2)
    path, _, query = target.decode().partition("?")
    assert (method, path) == (b"GET", "/apps/token")
    assert parse_qs(query)["refresh_token"] == ["r" * 40]
    assert adapter_request.startswith(b"POST /adapter/generate/token ")
    assert b"Authorization: Bearer bearer-for-the-test" in adapter_request
    assert through_requests_calls == []


@pytest.mark.parametrize("case", ["GET with query parameters", "POST with JSON", "gzip body"])
def test_over_tls_the_direct_route_sends_and_returns_what_requests_does(case, tmp_path):
    context, ca = tls_peer()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    method, path, options = CALLS[case]
    direct, through_requests = _sessions(deadline=10)
    with recording_peer(tls=context) as (url, received):
        got = []
        for session in (direct, through_requests):
            session.verify = str(bundle)
            response = session.request(method, url + path, allow_redirects=False, timeout=(5, 5), **options)
            got.append(_seen(response))
    assert url.startswith("https://")
    assert got[0] == got[1]
    assert got[0]["status"] == 200
    (_, sent_a), (_, sent_b) = received
    assert sent_a == sent_b


@pytest.mark.parametrize("connect_retries", [0, 2])
def test_an_untrusted_certificate_is_refused_the_same_way(connect_retries):
    # verify=True: the bundle requests ships, which does not hold the test CA.
    context, _ = tls_peer()
    with recording_peer(tls=context) as (url, received):
        results = [
            _failure(lambda s=session: s.request("GET", url + "/json", allow_redirects=False, timeout=(2, 2)))
            for session in _sessions(deadline=10, connect_retries=connect_retries)
        ]
    assert results[0] == results[1]
    assert results[0][0] is requests.exceptions.SSLError
    assert received == []
