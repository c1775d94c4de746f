"""Fixtures for the TradingView link: a real adapter simulator on loopback and a trader with accounts."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client

from accounts.models import Ctid, Jurisdiction, Trader, TradingAccount
from sandbox import adapter as adapter_sim_module
from sandbox.httpd import RunningServer, serve
from tests.factories import CtidFactory, JurisdictionFactory, TraderFactory, TradingAccountFactory
from tradingview.models import OAuthClient
from tradingview.services.clients import oauth_client_create

BROKER_BEARER = "test-broker-bearer-7f3a"
REDIRECT_URI = "https://tv.example/oauth/callback"
# A state TradingView might send: it must come back byte for byte.
STATE = "st/ä 1+2=3&x?y#z"


@dataclass
class Adapter:
    sim: adapter_sim_module.AdapterSim
    server: RunningServer
    url: str


@pytest.fixture
def adapter(settings) -> Iterator[Adapter]:
    sim = adapter_sim_module.AdapterSim(bearer=BROKER_BEARER, delay=3.0)
    server = serve(adapter_sim_module.routes(bearer=BROKER_BEARER, sim=sim))
    settings.TRADINGVIEW_ADAPTER_URL = f"{server.url}/adapter"
    settings.TRADINGVIEW_ADAPTER_TOKEN = BROKER_BEARER
    settings.HTTP_READ_TIMEOUT = 0.5
    settings.HTTP_CONNECT_TIMEOUT = 1.0
    settings.HTTP_CONNECT_RETRIES = 0
    yield Adapter(sim=sim, server=server, url=f"{server.url}/adapter")
    server.stop()


@pytest.fixture
def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/adapter"


def make_trader(username: str, *, verified: bool = True) -> Trader:
    return TraderFactory(user__username=username, kyc_verified=verified)


@pytest.fixture
def jurisdiction(db) -> Jurisdiction:
    return JurisdictionFactory(
        broker_name="BESTBROKER", display_name="Best Broker EU", tradingview_enabled=True
    )


@pytest.fixture
def jurisdiction_disabled(db) -> Jurisdiction:
    return JurisdictionFactory(broker_name="OTHERWL", display_name="Other WL", tradingview_enabled=False)


@pytest.fixture
def trader(db) -> Trader:
    return make_trader("alice")


@pytest.fixture
def ctid(trader) -> Ctid:
    return CtidFactory(user_id=14601, trader=trader)


def make_account(
    ctid: Ctid, number: int, *, live: bool, jurisdiction: Jurisdiction | None, **kw
) -> TradingAccount:
    return TradingAccountFactory(
        ctid=ctid,
        ctid_trader_account_id=number,
        login=number % 10_000_000,
        is_live=live,
        jurisdiction=jurisdiction,
        **kw,
    )


@pytest.fixture
def accounts(ctid, jurisdiction) -> list[TradingAccount]:
    return [
        make_account(ctid, 137780091, live=True, jurisdiction=jurisdiction, is_tradingview=True),
        make_account(ctid, 137792301, live=False, jurisdiction=jurisdiction),
    ]


@pytest.fixture
def other_trader_account(db, jurisdiction) -> TradingAccount:
    other = make_trader("mallory")
    other_ctid = CtidFactory(user_id=99999, trader=other)
    return make_account(other_ctid, 555000111, live=True, jurisdiction=jurisdiction)


@dataclass
class Registered:
    client: OAuthClient
    secret: str


@pytest.fixture
def tv_client(db) -> Registered:
    client, secret = oauth_client_create(
        name="TradingView production", environment="TV prod → broker prod", redirect_uris=[REDIRECT_URI]
    )
    return Registered(client=client, secret=secret)


@pytest.fixture
def browser_client(trader) -> Client:
    c = Client()
    c.force_login(trader.user)
    return c


def authorize_params(tv: Registered, **overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": tv.client.client_id,
        "redirect_uri": REDIRECT_URI,
        "state": STATE,
        "lang": "en",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def open_consent(client: Client, tv: Registered) -> str:
    """GET the authorize page and return the consent form's nonce."""
    response = client.get("/tradingview/oauth/authorize", authorize_params(tv))
    assert response.status_code == 200, response.content[:500]
    match = re.search(rb'name="consent" value="([^"]+)"', response.content)
    assert match, "no consent form on the page"
    return match.group(1).decode()


def redirect_query(response) -> dict[str, list[str]]:
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


def link(client: Client, tv: Registered, account_ids: list[int]) -> str:
    """Consent to ``account_ids`` and return the code TradingView receives."""
    nonce = open_consent(client, tv)
    response = client.post(
        "/tradingview/oauth/authorize", {"consent": nonce, "action": "allow", "accounts": account_ids}
    )
    query = redirect_query(response)
    assert query["state"] == [STATE]
    return query["code"][0]


def exchange(tv: Registered, code: str, **overrides: str):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": tv.client.client_id,
        "client_secret": tv.secret,
    }
    data.update(overrides)
    return token_post({k: v for k, v in data.items() if v is not None})


def token_post(data: dict[str, str], **extra):
    return Client().post(
        "/tradingview/oauth/token", urlencode(data), content_type="application/x-www-form-urlencoded", **extra
    )
