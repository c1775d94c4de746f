"""The TradingView link in tests: the adapter's bearer, TradingView's redirect, consent and token calls."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from django.test import Client

from accounts.models import Ctid, Jurisdiction, TradingAccount
from sandbox import adapter as adapter_sim_module
from sandbox.httpd import RunningServer
from tests.factories import TradingAccountFactory
from tradingview.models import OAuthClient

BROKER_BEARER = "test-broker-bearer-7f3a"
REDIRECT_URI = "https://tv.example/oauth/callback"
# A state TradingView might send: it must come back byte for byte.
STATE = "st/ä 1+2=3&x?y#z"


@dataclass
class Adapter:
    sim: adapter_sim_module.AdapterSim
    server: RunningServer
    url: str


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


@dataclass
class Registered:
    client: OAuthClient
    secret: str


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
