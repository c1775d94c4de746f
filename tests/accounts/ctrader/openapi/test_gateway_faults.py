"""Gateway faults found against a faithful simulator: maintenance overrun, refused application, the pacer
margin, a silent connection, balanceVersion ordering and a blocked channel."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from accounts.ctrader.openapi.messages import PayloadType
from accounts.models import AuditEvent, Ctid, GatewayStatus, TradingAccount
from sandbox.openapi_server import OpenApiSimulator
from sandbox.world import SimAccount, World
from tests.helpers.ctrader import CLIENT_ID, CLIENT_SECRET, link_ctid
from tests.helpers.gateway import GatewayRunner

from .test_client import max_in_any_window
from .test_gateway import DEMO, LIVE, settled, wait_db

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parents[4]


@pytest.fixture
def linked(world: World) -> tuple[Ctid, dict[str, object]]:
    return link_ctid(world, 9100001)


def test_maintenance_with_an_end_in_the_past_goes_through_the_backoff_floor(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    # The server keeps answering maintenance with an end that has already passed.
    live_sim.fail_next(
        PayloadType.APPLICATION_AUTH_REQ,
        "SERVER_IS_UNDER_MAINTENANCE",
        maintenance_end=time.time() - 30,
        times=1000,
    )
    start_gateway(urls={"live": live_sim.url}, reconnect_floor=1.0, reconnect_base=0.05)
    time.sleep(3.5)

    attempts = [f.at for f in live_sim.received(PayloadType.APPLICATION_AUTH_REQ)]
    assert 2 <= len(attempts) <= 4, f"{len(attempts)} connection attempts in 3.5 s"
    assert max_in_any_window(attempts, 1.0) == 1
    assert min(b - a for a, b in itertools.pairwise(attempts)) >= 0.99


def test_a_maintenance_window_that_passes_while_maintenance_goes_on_does_not_loop(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    end = time.time() + 0.5
    for sim in (live_sim, demo_sim):
        sim.fail_next(
            PayloadType.APPLICATION_AUTH_REQ, "SERVER_IS_UNDER_MAINTENANCE", maintenance_end=end, times=3
        )
    start_gateway(reconnect_floor=1.0, reconnect_base=0.05, reconnect_spread=2.0)
    live_sim.wait_until(settled(live_sim, LIVE), timeout=20)
    demo_sim.wait_until(settled(demo_sim, DEMO), timeout=20)

    for sim in (live_sim, demo_sim):
        attempts = [f.at for f in sim.received(PayloadType.APPLICATION_AUTH_REQ)]
        assert len(attempts) == 4  # three refusals, then the connection that serves
        assert min(b - a for a, b in itertools.pairwise(attempts)) >= 0.99


def test_refused_application_retries_slowly_alerts_once_and_recovers(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    live_sim.refuse_app_auth()
    start_gateway(urls={"live": live_sim.url}, refused_retry_base=0.6, refused_retry_max=1.2)
    wait_db(lambda: GatewayStatus.objects.filter(environment="live", state="app_auth_refused").exists())
    time.sleep(2.5)

    attempts = [f.at for f in live_sim.received(PayloadType.APPLICATION_AUTH_REQ)]
    assert 2 <= len(attempts) <= 5
    assert min(b - a for a, b in itertools.pairwise(attempts)) >= 0.3  # half of the first delay
    assert AuditEvent.objects.filter(category="gateway", action="app_auth_refused").count() == 1

    live_sim.refuse_app_auth(False)  # the application is reinstated: the gateway comes back by itself
    live_sim.wait_until(settled(live_sim, LIVE), timeout=10)
    wait_db(lambda: GatewayStatus.objects.get(environment="live").state == GatewayStatus.State.CONNECTED)


def test_the_command_exits_non_zero_on_refusal_only_when_told(
    world: World, live_sim: OpenApiSimulator
) -> None:
    link_ctid(world, 9100001)
    live_sim.refuse_app_auth()
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TOKEN_ENCRYPTION_KEYS": ",".join(settings.TOKEN_ENCRYPTION_KEYS),
        "CTRADER_CLIENT_ID": CLIENT_ID,
        "CTRADER_CLIENT_SECRET": CLIENT_SECRET,
        "CTRADER_OPENAPI_LIVE_URL": live_sim.url,
    }
    env.pop("REDIS_URL", None)
    command = [sys.executable, "manage.py", "openapi_gateway", "--environment", "live"]
    told = subprocess.run(
        [*command, "--exit-on-refusal"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert told.returncode == 3, told.stderr
    assert "CH_CLIENT_AUTH_FAILURE" in told.stderr

    not_told = subprocess.Popen(
        command, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        live_sim.wait_until(lambda: live_sim.connections_opened >= 2, timeout=30)
        time.sleep(1.0)
        assert not_told.poll() is None  # still running, retrying slowly
    finally:
        not_told.terminate()
        not_told.communicate(timeout=30)


@pytest.fixture
def many_accounts(world: World) -> set[int]:
    accounts = [
        SimAccount(62000000 + n, 8200000 + n, True, "BROKER-EU", "Broker EU", 100_000 + n, 2, "EUR")
        for n in range(150)
    ]
    world.add_ctid(9100777, "Many", accounts)
    link_ctid(world, 9100777, username="many")
    return {a.ctid_trader_account_id for a in accounts}


def test_the_pacer_stays_a_margin_below_the_limit(
    many_accounts: set[int], live_sim: OpenApiSimulator, start_gateway: Callable[..., GatewayRunner]
) -> None:
    start_gateway(urls={"live": live_sim.url}, max_requests_per_second=50)
    live_sim.wait_until(lambda: many_accounts <= live_sim.authorized_accounts(), timeout=30)

    sent = [f.at for f in live_sim.received() if f.payload_type != PayloadType.HEARTBEAT_EVENT]
    assert len(sent) > 150
    assert max_in_any_window(sent, 1.0) <= 45  # 10% below 50 per second


@pytest.fixture
def chatty_live_sim(world: World) -> Iterator[OpenApiSimulator]:
    """A live host that sends heartbeats every 0.2 s, as Spotware's does every 10 s."""
    sim = OpenApiSimulator(
        world, "live", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, heartbeat_interval=0.2
    )
    sim.start_in_thread()
    yield sim
    sim.stop()


def test_a_silent_connection_is_closed_and_reconnected_by_the_watchdog(
    linked: tuple[Ctid, dict[str, object]],
    chatty_live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    sim = chatty_live_sim
    start_gateway(urls={"live": sim.url}, heartbeat_interval=0.2)
    sim.wait_until(settled(sim, LIVE))
    first = sim.connection_ids()
    assert len(first) == 1

    sim.go_silent()  # the socket stays open and answers WebSocket pings, but no frame comes any more
    sim.wait_until(lambda: sim.connections_opened >= 2, timeout=5)
    second = [c for c in sim.connection_ids() if c not in first]
    assert second
    sim.wait_until(lambda: sim.authorized_accounts(second[0]) == LIVE, timeout=5)
    assert "no frame" in GatewayStatus.objects.get(environment="live").last_error


def test_an_older_trader_res_never_overwrites_a_newer_balance(
    world: World,
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    account = world.account(61000001)
    assert account is not None
    account.balance_version = 4
    start_gateway(urls={"live": live_sim.url})
    live_sim.wait_until(settled(live_sim, LIVE))
    stored = TradingAccount.objects.get(ctid_trader_account_id=61000001)
    assert (stored.balance, stored.balance_version) == (Decimal("12500.50"), 4)

    # A deposit: the execution event carries the new balance and its version.
    account.balance, account.balance_version = 2_000_000, 7
    live_sim.execution_event(61000001)
    wait_db(lambda: TradingAccount.objects.get(ctid_trader_account_id=61000001).balance_version == 7)
    assert TradingAccount.objects.get(ctid_trader_account_id=61000001).balance == Decimal("20000.00")

    # A trader read answered from an older state (version 5) arrives after it: it must not win.
    account.balance, account.balance_version = 1_500_000, 5
    live_sim.clear_received()
    live_sim.account_disconnect(61000001)  # the gateway re-authorizes, then reads the trader again
    live_sim.wait_until(lambda: bool(live_sim.received(PayloadType.TRADER_REQ)))
    time.sleep(0.5)
    stored = TradingAccount.objects.get(ctid_trader_account_id=61000001)
    assert (stored.balance, stored.balance_version) == (Decimal("20000.00"), 7)


def test_a_blocked_channel_marks_the_account_disabled_like_ret_account_disabled(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    live_sim.fail_next(PayloadType.ACCOUNT_AUTH_REQ, "CHANNEL_IS_BLOCKED")
    start_gateway(urls={"live": live_sim.url})
    wait_db(lambda: TradingAccount.objects.filter(status=TradingAccount.Status.DISABLED).count() == 1)
    blocked = TradingAccount.objects.get(status=TradingAccount.Status.DISABLED)
    assert "CHANNEL_IS_BLOCKED" in blocked.status_reason
