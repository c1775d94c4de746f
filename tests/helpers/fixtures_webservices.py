"""Fixtures for account opening: the WebServices simulator (live and demo hosts) and an SMTP server, both on
loopback, wired into the settings; account types; traders with a verified email."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from accounts.ctrader.webservices import md5_hex
from accounts.models import AccountType, Jurisdiction
from sandbox.httpd import RunningServer, serve
from sandbox.mail import Mailbox
from sandbox.webservices_server import WebServicesSim, join
from sandbox.world import World, demo_world

MANAGERS = {"live": (41001, "live-manager-Pa55"), "demo": (41002, "demo-manager-Pa55")}


@dataclass
class WebServices:
    world: World
    live: WebServicesSim
    demo: WebServicesSim
    server: RunningServer

    def sim(self, environment: str) -> WebServicesSim:
        return self.live if environment == "live" else self.demo


@pytest.fixture
def webservices(settings) -> Iterator[WebServices]:
    world = demo_world()
    sims = {
        env: WebServicesSim(world, env, {login: md5_hex(password)}, hang_seconds=3)
        for env, (login, password) in MANAGERS.items()
    }
    join(*sims.values())
    server = serve([r for env, sim in sims.items() for r in sim.routes(f"/ws/{env}")])
    settings.CTRADER_WEBSERVICES_LIVE_URL = f"{server.url}/ws/live"
    settings.CTRADER_WEBSERVICES_DEMO_URL = f"{server.url}/ws/demo"
    settings.CTRADER_MANAGER_LIVE_LOGIN, settings.CTRADER_MANAGER_LIVE_PASSWORD = MANAGERS["live"]
    settings.CTRADER_MANAGER_DEMO_LOGIN, settings.CTRADER_MANAGER_DEMO_PASSWORD = MANAGERS["demo"]
    settings.HTTP_READ_TIMEOUT = 1.0
    settings.ACCOUNT_OPENING_RETRY_BASE_SECONDS = 0.2
    settings.ACCOUNT_OPENING_RETRY_CAP_SECONDS = 1.0
    settings.ACCOUNT_OPENING_RETRY_IN_PROCESS = False  # tests run the retries themselves
    yield WebServices(world, sims["live"], sims["demo"], server)
    for sim in sims.values():
        sim.release_hangs()
    server.stop()


@pytest.fixture
def mailbox(settings) -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = box.host, box.port
    settings.EMAIL_TIMEOUT = 5
    yield box
    box.stop()


@pytest.fixture
def sandbox_jurisdiction(db: None) -> Jurisdiction:
    return Jurisdiction.objects.create(
        broker_name="SANDBOX-EU", display_name="Sandbox EU", tradingview_enabled=True
    )


@pytest.fixture
def demo_type(sandbox_jurisdiction: Jurisdiction) -> AccountType:
    return AccountType.objects.create(
        jurisdiction=sandbox_jurisdiction,
        name="TV demo",
        environment="demo",
        group_name="SANDBOX-TV",
        deposit_currencies="EUR,USD",
        leverage_choices="30,100",
        is_tradingview=True,
        who_may_open=AccountType.Access.ANYONE,
        starting_balance=10_000,
    )


@pytest.fixture
def live_type(sandbox_jurisdiction: Jurisdiction) -> AccountType:
    return AccountType.objects.create(
        jurisdiction=sandbox_jurisdiction,
        name="TV live",
        environment="live",
        group_name="SANDBOX-TV",
        deposit_currencies="EUR",
        leverage_choices="30",
        is_tradingview=True,
        who_may_open=AccountType.Access.KYC,
    )
