"""The Open API gateway against the live and demo simulators, with the real database."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.ctrader.openapi.messages import PayloadType
from accounts.models import AuditEvent, Ctid, GatewayStatus, TradingAccount
from sandbox.openapi_server import OpenApiSimulator, Received
from sandbox.world import SimAccount, World
from tests.helpers.ctrader import link_ctid
from tests.helpers.gateway import GatewayRunner

from .test_client import SERVER_WINDOW, max_in_any_window

pytestmark = pytest.mark.django_db(transaction=True)

LIVE = {61000001, 61000003}
DEMO = {61000002}


def wait_db(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the database did not reach the expected state")
        time.sleep(0.02)


def requests_only(frames: list[Received]) -> list[Received]:
    return [f for f in frames if f.payload_type != PayloadType.HEARTBEAT_EVENT]


def steps(frames: list[Received]) -> list[tuple[int, int | None]]:
    return [(f.payload_type, f.payload.get("ctidTraderAccountId")) for f in requests_only(frames)]


def settled(sim: OpenApiSimulator, expected: set[int]) -> Callable[[], bool]:
    """All expected accounts authorized, their trader info read (since the last clear) and a balance stored."""

    def check() -> bool:
        traders = {r.payload["ctidTraderAccountId"] for r in sim.received(PayloadType.TRADER_REQ)}
        return (
            sim.authorized_accounts() == expected
            and expected <= traders
            and TradingAccount.objects.filter(
                ctid_trader_account_id__in=expected, balance__isnull=False
            ).count()
            == len(expected)
        )

    return check


@pytest.fixture
def linked(world: World) -> tuple[Ctid, dict[str, object]]:
    return link_ctid(world, 9100001)


def test_accounts_are_authorized_on_their_own_environment_and_balances_stored(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    _, tokens = linked
    start_gateway()
    live_sim.wait_until(settled(live_sim, LIVE))
    demo_sim.wait_until(settled(demo_sim, DEMO))

    live = requests_only(live_sim.received())
    assert live[0].payload_type == PayloadType.APPLICATION_AUTH_REQ
    assert live[0].payload == {"clientId": "test-client", "clientSecret": "test-secret-value"}
    auths = live_sim.received(PayloadType.ACCOUNT_AUTH_REQ)
    assert {a.payload["ctidTraderAccountId"] for a in auths} == LIVE
    assert {a.payload["accessToken"] for a in auths} == {tokens["accessToken"]}
    assert {a.payload["ctidTraderAccountId"] for a in demo_sim.received(PayloadType.ACCOUNT_AUTH_REQ)} == DEMO

    wait_db(lambda: TradingAccount.objects.filter(balance__isnull=False).count() == 3)
    eu = TradingAccount.objects.get(ctid_trader_account_id=61000001)
    assert (eu.balance, eu.currency, eu.broker_name) == (Decimal("12500.50"), "EUR", "BROKER-EU")
    intl = TradingAccount.objects.get(ctid_trader_account_id=61000003)
    assert (intl.balance, intl.currency) == (Decimal("520.15"), "USD")
    assert eu.balance_updated_at is not None

    wait_db(lambda: GatewayStatus.objects.filter(environment="live", authorized_accounts=2).exists())
    status = GatewayStatus.objects.get(environment="live")
    assert status.state == GatewayStatus.State.CONNECTED
    assert status.connected_since is not None
    assert status.heartbeat_at is not None


def test_account_disconnect_reauthorizes_that_account_only(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    _, tokens = linked
    start_gateway()
    live_sim.wait_until(settled(live_sim, LIVE))
    live_sim.clear_received()

    live_sim.account_disconnect(61000001)
    live_sim.wait_until(lambda: len(live_sim.received(PayloadType.TRADER_REQ)) == 1)

    assert steps(live_sim.received()) == [(2102, 61000001), (2121, 61000001)]
    assert live_sim.received(PayloadType.ACCOUNT_AUTH_REQ)[0].payload["accessToken"] == tokens["accessToken"]
    assert live_sim.authorized_accounts() == LIVE
    wait_db(lambda: GatewayStatus.objects.filter(environment="live", last_event="AccountDisconnect").exists())


def test_client_disconnect_reconnects_then_app_auth_then_every_account(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    start_gateway()
    live_sim.wait_until(settled(live_sim, LIVE))
    first_connection = live_sim.connection_ids()
    live_sim.clear_received()
    demo_before = len(demo_sim.received())

    live_sim.client_disconnect("Blocked by a cTrader administrator")
    live_sim.wait_until(settled(live_sim, LIVE))

    frames = requests_only(live_sim.received())
    assert {f.connection_id for f in frames}.isdisjoint(first_connection)
    sequence = steps(frames)
    assert sequence[0] == (2100, None)
    assert sorted(sequence[1:3]) == [(2102, 61000001), (2102, 61000003)]
    assert {s for s in sequence[3:] if s[0] == 2121} == {(2121, 61000001), (2121, 61000003)}
    # The demo connection is not touched.
    assert len(demo_sim.received()) == demo_before
    status = GatewayStatus.objects.get(environment="live")
    assert status.last_event == "ClientDisconnect"
    assert "Blocked by a cTrader administrator" in status.last_error


def test_a_dropped_socket_is_reconnected(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    start_gateway()
    live_sim.wait_until(settled(live_sim, LIVE))
    live_sim.clear_received()

    live_sim.drop()
    live_sim.wait_until(settled(live_sim, LIVE))

    assert steps(live_sim.received())[0] == (2100, None)
    assert live_sim.connections_opened == 2


def test_account_gone_errors_mark_the_account_and_stop_retrying(
    world: World,
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    account = world.account(61000003)
    assert isinstance(account, SimAccount)
    account.enabled = False
    live_sim.fail_next(PayloadType.ACCOUNT_AUTH_REQ, "RET_NO_SUCH_LOGIN")  # the first account auth, whichever
    start_gateway()

    wait_db(lambda: TradingAccount.objects.exclude(status=TradingAccount.Status.ACTIVE).count() == 2)
    statuses = dict(
        TradingAccount.objects.filter(is_live=True).values_list("ctid_trader_account_id", "status")
    )
    assert set(statuses.values()) == {"gone", "disabled"}
    assert statuses[61000003] == "disabled"
    time.sleep(0.5)  # several poll and retry periods: nothing more may be sent for them
    assert len(live_sim.received(PayloadType.ACCOUNT_AUTH_REQ)) == 2
    assert live_sim.authorized_accounts() == set()


def test_rate_limit_error_waits_for_retry_after(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    live_sim.fail_next(PayloadType.ACCOUNT_AUTH_REQ, "BLOCKED_PAYLOAD_TYPE", retry_after=1)
    start_gateway(urls={"live": live_sim.url})
    live_sim.wait_until(settled(live_sim, LIVE))

    auths = live_sim.received(PayloadType.ACCOUNT_AUTH_REQ)
    assert len(auths) == 3
    refused = auths[0]
    retry = next(a for a in auths[1:] if a.payload == refused.payload)
    assert retry.at - refused.at >= 1.0


def test_maintenance_waits_until_its_end(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    end, end_monotonic = time.time() + 1.5, time.monotonic() + 1.5
    live_sim.fail_next(
        PayloadType.APPLICATION_AUTH_REQ, "SERVER_IS_UNDER_MAINTENANCE", maintenance_end=end, common=True
    )
    start_gateway(urls={"live": live_sim.url})
    live_sim.wait_until(settled(live_sim, LIVE))

    app_auths = live_sim.received(PayloadType.APPLICATION_AUTH_REQ)
    assert len(app_auths) == 2
    # maintenanceEndTimestamp is whole milliseconds: allow for its truncation.
    assert app_auths[1].at >= end_monotonic - 0.01


def test_refused_application_auth_alerts_and_leaves_the_other_environment_running(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    live_sim.refuse_app_auth()
    start_gateway(refused_retry_base=60.0)
    demo_sim.wait_until(settled(demo_sim, DEMO))
    wait_db(lambda: GatewayStatus.objects.filter(environment="live", state="app_auth_refused").exists())

    time.sleep(0.3)  # several ordinary reconnect periods: the slow retry is a minute away
    assert [f.payload_type for f in live_sim.received()] == [PayloadType.APPLICATION_AUTH_REQ]
    assert live_sim.connections_opened == 1
    alert = AuditEvent.objects.get(category="gateway", action="app_auth_refused")
    assert "CH_CLIENT_AUTH_FAILURE" in alert.message
    assert "CH_CLIENT_AUTH_FAILURE" in GatewayStatus.objects.get(environment="live").last_error
    # The demo environment keeps running.
    assert GatewayStatus.objects.get(environment="demo").state == GatewayStatus.State.CONNECTED


def test_reconnect_backs_off_exponentially(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    live_sim.fail_next(PayloadType.APPLICATION_AUTH_REQ, "CH_SERVER_NOT_REACHABLE", times=4)
    start_gateway(urls={"live": live_sim.url}, reconnect_base=0.1, reconnect_max=5.0)
    live_sim.wait_until(settled(live_sim, LIVE))

    attempts = [f.at for f in live_sim.received(PayloadType.APPLICATION_AUTH_REQ)]
    assert len(attempts) == 5
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    # Equal jitter: each wait is between half and all of base * 2**n.
    for n, gap in enumerate(gaps):
        assert gap >= 0.1 * 2**n / 2
    assert live_sim.connections_opened == 5


def test_heartbeat_cadence(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    start_gateway(urls={"live": live_sim.url}, heartbeat_interval=0.2)
    live_sim.wait_until(lambda: len(live_sim.received(PayloadType.HEARTBEAT_EVENT)) >= 4)

    beats = [f.at for f in live_sim.received(PayloadType.HEARTBEAT_EVENT)]
    assert all(b - a >= 0.18 for a, b in itertools.pairwise(beats))
    first_app_auth = live_sim.received(PayloadType.APPLICATION_AUTH_REQ)[0].at
    assert beats[0] > first_app_auth


def test_new_accounts_suspensions_and_disconnected_ctids_are_picked_up(
    world: World,
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    ctid, _ = linked
    start_gateway(urls={"live": live_sim.url})
    live_sim.wait_until(settled(live_sim, LIVE))

    # A second trader connects a cTID while the gateway runs.
    world.add_ctid(
        9100002, "Ben", [SimAccount(62000001, 7200001, True, "BROKER-EU", "Broker EU", 99_00, 2, "EUR")]
    )
    other, _ = link_ctid(world, 9100002)
    live_sim.wait_until(settled(live_sim, LIVE | {62000001}))

    # Staff suspend the first trader: their accounts are logged out.
    trader = ctid.trader
    trader.suspended, trader.suspended_at = True, timezone.now()
    trader.save()
    live_sim.wait_until(lambda: live_sim.authorized_accounts() == {62000001})
    assert {
        r.payload["ctidTraderAccountId"] for r in live_sim.received(PayloadType.ACCOUNT_LOGOUT_REQ)
    } == LIVE

    # The second trader disconnects their cTID.
    Ctid.objects.filter(pk=other.pk).update(state=Ctid.State.DISCONNECTED)
    live_sim.wait_until(lambda: live_sim.authorized_accounts() == set())
    wait_db(lambda: GatewayStatus.objects.filter(environment="live", authorized_accounts=0).exists())


def test_a_change_made_before_the_first_database_poll_is_not_lost(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    ctid, _ = linked
    # The first poll comes long after the connection's own load of the accounts.
    start_gateway(urls={"live": live_sim.url}, db_poll_seconds=1.0)
    live_sim.wait_until(settled(live_sim, LIVE))

    trader = ctid.trader
    trader.suspended, trader.suspended_at = True, timezone.now()
    trader.save()

    live_sim.wait_until(lambda: live_sim.authorized_accounts() == set(), timeout=10)
    assert {
        r.payload["ctidTraderAccountId"] for r in live_sim.received(PayloadType.ACCOUNT_LOGOUT_REQ)
    } == LIVE


def test_trader_updated_event_updates_the_stored_balance(
    world: World,
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    start_gateway(urls={"live": live_sim.url})
    live_sim.wait_until(settled(live_sim, LIVE))
    wait_db(lambda: TradingAccount.objects.filter(balance__isnull=False).count() == 2)

    account = world.account(61000001)
    assert account is not None
    account.balance = 1_300_000
    live_sim.trader_updated(61000001)

    wait_db(
        lambda: TradingAccount.objects.get(ctid_trader_account_id=61000001).balance == Decimal("13000.00")
    )
    assert TradingAccount.objects.get(ctid_trader_account_id=61000001).currency == "EUR"


def test_reauthorizing_300_accounts_keeps_every_second_under_the_limit(
    world: World, live_sim: OpenApiSimulator, start_gateway: Callable[..., GatewayRunner]
) -> None:
    accounts = [
        SimAccount(63000000 + i, 7300000 + i, True, "BROKER-EU", "Broker EU", 100_00 + i, 2, "EUR")
        for i in range(300)
    ]
    world.add_ctid(9100003, "Big", accounts)
    link_ctid(world, 9100003)
    ids = {a.ctid_trader_account_id for a in accounts}
    start_gateway(urls={"live": live_sim.url}, max_requests_per_second=100, request_timeout=10.0)
    live_sim.wait_until(settled(live_sim, ids), timeout=60)
    live_sim.clear_received()

    live_sim.client_disconnect("maintenance restart")
    live_sim.wait_until(settled(live_sim, ids), timeout=60)

    frames = live_sim.received()
    assert len(live_sim.received(PayloadType.ACCOUNT_AUTH_REQ)) == 300
    assert max_in_any_window([f.at for f in frames], SERVER_WINDOW) <= 100
    # Every account auth goes out before the trader reads that follow them.
    kinds = [f.payload_type for f in requests_only(frames)]
    assert kinds[0] == PayloadType.APPLICATION_AUTH_REQ
    assert kinds.index(PayloadType.TRADER_REQ) > max(
        i for i, k in enumerate(kinds) if k == PayloadType.ACCOUNT_AUTH_REQ
    )
