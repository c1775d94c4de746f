"""Fixtures for the Open API client, simulator and gateway: real WebSocket servers on loopback."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.ctrader.openapi.gateway import Gateway, GatewayConfig
from accounts.models import Ctid, CtidToken, Trader, TradingAccount
from accounts.services.gateway import DjangoGatewayStore
from sandbox.ctrader_id import CtraderIdSimulator
from sandbox.httpd import serve
from sandbox.openapi_server import OpenApiSimulator
from sandbox.world import Grant, SimAccount, World

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret-value"


@pytest.fixture
def world() -> World:
    world = World()
    world.add_ctid(
        9100001,
        "Ann",
        [
            SimAccount(61000001, 7100001, True, "BROKER-EU", "Broker EU", 1_250_050, 2, "EUR"),
            SimAccount(61000002, 7100002, False, "BROKER-EU", "Broker EU", 10_000_000, 2, "USD"),
            SimAccount(61000003, 7100003, True, "BROKER-INTL", "Broker Intl", 52_015_000_000, 8, "USD"),
        ],
    )
    return world


def issue(world: World, user_id: int, scope: str = "accounts") -> dict[str, object]:
    """Tokens for every account of a simulated cTID, as a consent ticking all of them would give."""
    with world.lock:
        account_ids = tuple(a.ctid_trader_account_id for a in world.ctids[user_id].accounts)
    return world.issue_tokens(Grant(user_id, account_ids, scope))


def _start(world: World, environment: str, heartbeat: float | None) -> OpenApiSimulator:
    sim = OpenApiSimulator(
        world,
        environment,  # type: ignore[arg-type]
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        heartbeat_interval=heartbeat,
    )
    sim.start_in_thread()
    return sim


@pytest.fixture
def ctrader_id(world: World, settings: Any) -> Iterator[CtraderIdSimulator]:
    """The cTrader ID token endpoint on loopback, on the same World as the Open API simulators.

    A refresh through it rotates the World's tokens, so the simulators refuse the old access token and end its
    sessions with ProtoOAAccountsTokenInvalidatedEvent, as Spotware does. ``calls`` lists every token call.
    """
    sim = CtraderIdSimulator(world, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, hang_seconds=3.0)
    server = serve(sim.routes())
    settings.CTRADER_CLIENT_ID = CLIENT_ID
    settings.CTRADER_CLIENT_SECRET = CLIENT_SECRET
    settings.CTRADER_TOKEN_URL = f"{server.url}/ctrader-id/apps/token"
    settings.CTRADER_AUTH_URL = f"{server.url}/ctrader-id/grantingaccess/"
    settings.TOKEN_HTTP_READ_TIMEOUT = 2.0
    yield sim
    sim.release_hangs()
    server.stop()


@pytest.fixture
def live_sim(world: World) -> Iterator[OpenApiSimulator]:
    sim = _start(world, "live", None)
    yield sim
    sim.stop()


@pytest.fixture
def demo_sim(world: World) -> Iterator[OpenApiSimulator]:
    sim = _start(world, "demo", None)
    yield sim
    sim.stop()


# --- the gateway against the simulators, with the real database ---
def link_ctid(world: World, user_id: int, *, username: str | None = None) -> tuple[Ctid, dict[str, object]]:
    """A trader who connected the simulated cTID: tokens from the World, accounts stored as the connect flow would."""
    tokens = issue(world, user_id)
    user = get_user_model().objects.create_user(
        username=username or f"trader{user_id}", password="x-Pass-123"
    )
    trader = Trader.objects.create(user=user)
    ctid = Ctid.objects.create(user_id=user_id, trader=trader)
    CtidToken.objects.create(
        ctid=ctid,
        access_token=str(tokens["accessToken"]),
        refresh_token=str(tokens["refreshToken"]),
        scope="accounts",
        expires_at=timezone.now() + timedelta(days=30),
    )
    with world.lock:
        sim_accounts = list(world.ctids[user_id].accounts)
    TradingAccount.objects.bulk_create(
        TradingAccount(
            ctid_trader_account_id=a.ctid_trader_account_id,
            ctid=ctid,
            login=a.trader_login,
            is_live=a.is_live,
            broker_title=a.broker_title_short,
        )
        for a in sim_accounts
    )
    return ctid, tokens


class GatewayRunner:
    """The gateway's asyncio loop in a thread, the way the management command runs it."""

    def __init__(self, urls: dict[str, str], config: GatewayConfig, store: Any = None) -> None:
        self.gateway = Gateway(store or DjangoGatewayStore(), config, urls)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.gateway.run())
        except BaseException as exc:
            self.error = exc
        finally:
            self.loop.close()

    def start(self) -> GatewayRunner:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.gateway.stop)
            self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the gateway did not stop"
        if self.error is not None:
            raise self.error

    def call(self, func: Callable[[], Any]) -> Any:
        """Read gateway state on its own loop."""

        async def read() -> Any:
            return func()

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(timeout=5)


def gateway_config_for_tests(**overrides: Any) -> GatewayConfig:
    config = GatewayConfig(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        request_timeout=5.0,
        heartbeat_interval=30.0,
        max_requests_per_second=200,
        reconnect_base=0.05,
        reconnect_max=1.0,
        account_retry_base=0.05,
        account_retry_max=1.0,
        db_poll_seconds=0.1,
        status_interval=0.05,
        reconnect_floor=0.05,
        reconnect_spread=0.1,
    )
    return replace(config, **overrides)


@pytest.fixture
def start_gateway(
    live_sim: OpenApiSimulator, demo_sim: OpenApiSimulator, ctrader_id: CtraderIdSimulator
) -> Iterator[Callable[..., GatewayRunner]]:
    runners: list[GatewayRunner] = []

    def start(urls: dict[str, str] | None = None, store: Any = None, **overrides: Any) -> GatewayRunner:
        runner = GatewayRunner(
            urls or {"live": live_sim.url, "demo": demo_sim.url}, gateway_config_for_tests(**overrides), store
        ).start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()
