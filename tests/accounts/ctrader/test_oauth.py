"""The cTrader ID client against real loopback servers: request shape, errorCode on HTTP 200, failures."""

from __future__ import annotations

import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from accounts.ctrader.oauth import CtraderOAuth, TokenRejected, TokenTransientError
from clientarea import http
from sandbox.httpd import Request, Response
from tests.helpers.peers import recording_peer, tls_peer

SECRET = "s3cr3t-client-secret"


def client(url: str, **kwargs) -> CtraderOAuth:
    return CtraderOAuth(
        auth_url="https://id.example.test/my/settings/openapi/grantingaccess/",
        token_url=f"{url}/apps/token",
        client_id="cid",
        client_secret=SECRET,
        redirect_uri="https://client.example.test/ctrader/callback/",
        scope="accounts",
        session=http.session(),
        timeout=kwargs.pop("timeout", (2.0, 2.0)),
        **kwargs,
    )


def test_consent_url_carries_every_parameter():
    url = client("http://127.0.0.1:9").consent_url(state="st-1")
    parts = urlsplit(url)
    assert (
        f"{parts.scheme}://{parts.netloc}{parts.path}"
        == "https://id.example.test/my/settings/openapi/grantingaccess/"
    )
    assert parse_qs(parts.query) == {
        "client_id": ["cid"],
        "redirect_uri": ["https://client.example.test/ctrader/callback/"],
        "scope": ["accounts"],
        "product": ["web"],
        "state": ["st-1"],
    }
    assert SECRET not in url


def test_code_exchange_is_a_get_with_query_parameters(token_server):
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response.json(
            {
                "accessToken": "AT",
                "refreshToken": "RT",
                "expiresIn": 2628000,
                "tokenType": "bearer",
                "errorCode": None,
            }
        )

    token_server.add_routes([("GET", "/apps/token", handler)])
    pair = client(token_server.url).exchange_code(code="the-code")
    assert (pair.access_token, pair.refresh_token, pair.expires_in, pair.token_type) == (
        "AT",
        "RT",
        2628000,
        "bearer",
    )
    assert seen[0].method == "GET"
    assert seen[0].body == b""
    assert seen[0].query == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https://client.example.test/ctrader/callback/",
        "client_id": "cid",
        "client_secret": SECRET,
    }
    assert "AT" not in repr(pair)
    assert "RT" not in repr(pair)


def test_refresh_sends_no_redirect_uri_and_parses_snake_case(token_server):
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response.json(
            {"access_token": "AT2", "refresh_token": "RT2", "expires_in": "60", "token_type": "bearer"}
        )

    token_server.add_routes([("GET", "/apps/token", handler)])
    pair = client(token_server.url).refresh(refresh_token="RT1")
    assert (pair.access_token, pair.refresh_token, pair.expires_in) == ("AT2", "RT2", 60)
    assert seen[0].query == {
        "grant_type": "refresh_token",
        "refresh_token": "RT1",
        "client_id": "cid",
        "client_secret": SECRET,
    }


def test_error_code_with_http_200_is_a_rejection(token_server):
    token_server.add_routes(
        [
            (
                "GET",
                "/apps/token",
                lambda r: Response.json(
                    {
                        "accessToken": "looks-fine",
                        "refreshToken": "x",
                        "errorCode": "INVALID_GRANT",
                        "description": "used",
                    }
                ),
            )
        ]
    )
    with pytest.raises(TokenRejected) as info:
        client(token_server.url).refresh(refresh_token="RT1")
    assert info.value.error_code == "INVALID_GRANT"
    assert info.value.status == 200
    assert "RT1" not in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("response", "expected", "ambiguous"),
    [
        (Response.json({"error": "nope"}, 400), TokenRejected, None),
        (Response.json({"message": "down"}, 503), TokenTransientError, True),
        (
            Response(200, b"<html>proxy error</html>", {"Content-Type": "text/html"}),
            TokenTransientError,
            True,
        ),
        (Response.json({"accessToken": "", "refreshToken": ""}), TokenTransientError, True),
        (Response(drop=True), TokenTransientError, True),
    ],
)
def test_failures_map_to_the_right_family(token_server, response, expected, ambiguous):
    token_server.add_routes([("GET", "/apps/token", lambda r: response)])
    with pytest.raises(expected) as info:
        client(token_server.url).refresh(refresh_token="RT-secret-value")
    if ambiguous is not None:
        assert info.value.may_have_been_sent is ambiguous
    assert "RT-secret-value" not in str(info.value)
    assert SECRET not in str(info.value)
    # Never chained to the requests exception: its text carries the URL and query string.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_read_timeout_is_transient_and_ambiguous(token_server):
    import threading

    release = threading.Event()

    def hang(request: Request) -> Response:
        release.wait(5)
        return Response.json({})

    token_server.add_routes([("GET", "/apps/token", hang)])
    try:
        with pytest.raises(TokenTransientError) as info:
            client(token_server.url, timeout=(1.0, 0.3)).refresh(refresh_token="RT1")
    finally:
        release.set()
    assert info.value.may_have_been_sent is True
    assert "read timeout" in str(info.value)


def test_connection_refused_is_transient_and_certainly_not_sent():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on that port any more.
    with pytest.raises(TokenTransientError) as info:
        client(f"http://127.0.0.1:{port}", connect_attempts=2).refresh(refresh_token="RT1")
    assert info.value.may_have_been_sent is False
    assert "RT1" not in str(info.value)


def test_an_untrusted_certificate_is_transient_and_certainly_not_sent():
    # A TLS handshake that fails on the peer's certificate: nothing of the request left, so the stored refresh
    # token is certainly still valid (no ambiguous follow-up), and the failure is the client's own exception.
    context, _ = tls_peer()
    with recording_peer(tls=context) as (url, received), pytest.raises(TokenTransientError) as info:
        client(url, connect_attempts=2).refresh(refresh_token="RT1")
    assert info.value.may_have_been_sent is False
    assert "RT1" not in str(info.value)
    assert received == []
