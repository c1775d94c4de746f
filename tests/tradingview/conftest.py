"""Fixtures for the TradingView link: a real adapter simulator on loopback and a trader with accounts.

``trader`` (tests/conftest.py) is Alice here, verified (``trader_traits``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from accounts.models import Ctid, Jurisdiction, TradingAccount
from sandbox import adapter as adapter_sim_module
from sandbox.httpd import serve
from tests.factories import CtidFactory, JurisdictionFactory
from tests.helpers.ctrader import make_trader
from tests.helpers.tradingview import BROKER_BEARER, REDIRECT_URI, Adapter, Registered, make_account
from tradingview.services.clients import oauth_client_create


@pytest.fixture
def trader_traits() -> dict[str, Any]:
    return {"user__username": "alice", "kyc_verified": True}


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


@pytest.fixture
def jurisdiction(db) -> Jurisdiction:
    return JurisdictionFactory(
        broker_name="BESTBROKER", display_name="Best Broker EU", tradingview_enabled=True
    )


@pytest.fixture
def jurisdiction_disabled(db) -> Jurisdiction:
    return JurisdictionFactory(broker_name="OTHERWL", display_name="Other WL", tradingview_enabled=False)


@pytest.fixture
def ctid(trader) -> Ctid:
    return CtidFactory(user_id=14601, trader=trader)


@pytest.fixture
def accounts(ctid, jurisdiction) -> list[TradingAccount]:
    return [
        make_account(ctid, 137780091, live=True, jurisdiction=jurisdiction, is_tradingview=True),
        make_account(ctid, 137792301, live=False, jurisdiction=jurisdiction),
    ]


@pytest.fixture
def other_trader_account(db, jurisdiction) -> TradingAccount:
    other = make_trader("mallory", verified=True)
    other_ctid = CtidFactory(user_id=99999, trader=other)
    return make_account(other_ctid, 555000111, live=True, jurisdiction=jurisdiction)


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
