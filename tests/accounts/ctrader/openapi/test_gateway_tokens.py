"""The gateway and the single-flight token refresh: token events and errors, end to end.

Everything is real: the gateway's loop, the Open API simulators, the cTrader ID token endpoint on loopback (one
World behind all three, so a refresh ends the old token's sessions with ProtoOAAccountsTokenInvalidatedEvent),
PostgreSQL, and for the Celery test the session's worker on Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts import tasks
from accounts.ctrader.openapi.messages import PayloadType
from accounts.models import Ctid, CtidToken, TradingAccount
from accounts.services.tokens import RefreshOutcome, ctid_token_refresh
from accounts.signals import ctid_needs_reconnect
from sandbox.adapter import AdapterSim, IssuedToken
from sandbox.adapter import routes as adapter_routes
from sandbox.ctrader_id import CtraderIdSimulator
from sandbox.httpd import serve
from sandbox.openapi_server import OpenApiSimulator, Received
from sandbox.world import World
from tests.helpers.ctrader import CLIENT_SECRET, link_ctid
from tests.helpers.gateway import GatewayRunner
from tradingview.models import Grant
from tradingview.services.clients import oauth_client_create

from .test_gateway import DEMO, LIVE, requests_only, settled, steps, wait_db

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def linked(world: World) -> tuple[Ctid, dict[str, object]]:
    return link_ctid(world, 9100001)


@pytest.fixture
def reconnect_signals() -> Iterator[list[tuple[int, str]]]:
    """Every ctid_needs_reconnect sent, as (cTID pk, reason)."""
    sent: list[tuple[int, str]] = []

    def receiver(sender: Any, *, ctid: Ctid, reason: str = "", **kwargs: Any) -> None:
        sent.append((ctid.pk, reason))

    ctid_needs_reconnect.connect(receiver, weak=False, dispatch_uid="openapi-test-recorder")
    yield sent
    ctid_needs_reconnect.disconnect(dispatch_uid="openapi-test-recorder")


def token_of(ctid: Ctid) -> CtidToken:
    return CtidToken.objects.get(ctid=ctid)


def of_account(frames: list[Received], account_id: int) -> list[Received]:
    return [f for f in requests_only(frames) if f.payload.get("ctidTraderAccountId") == account_id]


def auth_tokens(*sims: OpenApiSimulator) -> list[str]:
    return [str(a.payload["accessToken"]) for s in sims for a in s.received(PayloadType.ACCOUNT_AUTH_REQ)]


def settle_both(live_sim: OpenApiSimulator, demo_sim: OpenApiSimulator, timeout: float = 20.0) -> None:
    live_sim.wait_until(settled(live_sim, LIVE), timeout=timeout)
    demo_sim.wait_until(settled(demo_sim, DEMO), timeout=timeout)


def quiet_period() -> None:
    # Several poll, retry and status periods of the test configuration: a stray frame would show up.
    time.sleep(0.5)


def assert_one_reauth_each_with(token: str, live_sim: OpenApiSimulator, demo_sim: OpenApiSimulator) -> None:
    for sim, accounts in ((live_sim, LIVE), (demo_sim, DEMO)):
        for account_id in accounts:
            frames = of_account(sim.received(), account_id)
            assert [(f.payload_type, f.payload.get("accessToken")) for f in frames] == [
                (PayloadType.ACCOUNT_AUTH_REQ, token),
                (PayloadType.TRADER_REQ, None),
            ], account_id


@pytest.mark.parametrize("poll", [60.0, 0.05], ids=["event-only", "poll-sees-the-token-first"])
def test_invalidation_with_a_newer_token_stored_reauthorizes_with_it_at_once(
    poll: float,
    world: World,
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    ctrader_id: CtraderIdSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    ctid, _ = linked
    start_gateway(db_poll_seconds=poll)
    settle_both(live_sim, demo_sim)

    # A refresh elsewhere whose invalidation event has not reached the gateway yet: the simulators do not hear
    # this rotation; the event is sent below, once the new pair is stored.
    listeners = list(world.rotation_listeners)
    world.rotation_listeners.clear()
    live_sim.clear_received()
    demo_sim.clear_received()
    assert ctid_token_refresh(ctid_id=ctid.pk, reason="elsewhere").outcome is RefreshOutcome.REFRESHED
    world.rotation_listeners.extend(listeners)
    new = token_of(ctid)
    # The new token in the database alone sends nothing, however fast the poll: live sessions stay as they are
    # (authorizing them again would only earn ALREADY_LOGGED_IN) until the event ends them.
    quiet_period()
    assert requests_only(live_sim.received()) == requests_only(demo_sim.received()) == []

    live_sim.tokens_invalidated([61000001], "Access token was refreshed")
    live_sim.wait_until(
        lambda: live_sim.authorized_accounts() == LIVE and bool(live_sim.received(PayloadType.TRADER_REQ))
    )
    quiet_period()

    assert steps(live_sim.received()) == [(2102, 61000001), (2121, 61000001)]
    assert auth_tokens(live_sim) == [new.access_token]
    assert requests_only(demo_sim.received()) == []
    # The only token call is the refresh above: the gateway adopted the stored token.
    assert ctrader_id.calls == ["refresh_token"]
    assert token_of(ctid).version == new.version == 2


def test_invalidation_with_no_newer_token_refreshes_once_and_reauthorizes_every_session(
    world: World,
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    ctrader_id: CtraderIdSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    ctid, old = linked
    start_gateway(db_poll_seconds=60.0)
    settle_both(live_sim, demo_sim)
    live_sim.clear_received()
    demo_sim.clear_received()

    live_sim.tokens_invalidated([61000001], "Access token was recalled")
    # The gateway's refresh rotates the World, which ends the other sessions of the old token on both hosts.
    settle_both(live_sim, demo_sim)
    quiet_period()

    token = token_of(ctid)
    assert (token.version, token.state, token.last_refresh_outcome) == (2, "active", "ok")
    assert token.access_token != old["accessToken"]
    assert ctrader_id.calls == ["refresh_token"]
    assert world.used_refresh_tokens == {old["refreshToken"]}
    assert_one_reauth_each_with(token.access_token, live_sim, demo_sim)
    assert Ctid.objects.get(pk=ctid.pk).state == Ctid.State.CONNECTED


@pytest.fixture
def adapter(settings: Any) -> Iterator[AdapterSim]:
    sim = AdapterSim(bearer="broker-bearer-for-tests")
    server = serve(adapter_routes(bearer=sim.bearer, sim=sim))
    settings.TRADINGVIEW_ADAPTER_URL = f"{server.url}/adapter"
    settings.TRADINGVIEW_ADAPTER_TOKEN = sim.bearer
    yield sim
    server.stop()


def test_invalidation_with_a_dead_chain_marks_the_ctid_and_revokes_its_tradingview_grants(
    world: World,
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    ctrader_id: CtraderIdSimulator,
    adapter: AdapterSim,
    reconnect_signals: list[tuple[int, str]],
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    ctid, old = linked
    client, _ = oauth_client_create(name="TradingView", redirect_uris=["https://www.tradingview.com/cb"])
    adapter.tokens["tvsim_linked"] = IssuedToken(ctid.user_id, ["BROKER-EU"], [61000001], False, 2e9)
    grant = Grant.objects.create(
        client=client,
        trader=ctid.trader,
        ctid=ctid,
        state=Grant.State.ACTIVE,
        adapter_token="tvsim_linked",
        adapter_token_issued_at=timezone.now(),
        adapter_token_expires_at=timezone.now() + timedelta(days=30),
    )
    start_gateway()
    settle_both(live_sim, demo_sim)
    live_sim.clear_received()
    demo_sim.clear_received()

    # The consent was withdrawn at Spotware: the refresh token is dead too.
    world.refresh_tokens.clear()
    live_sim.tokens_invalidated([61000001], "Access token was recalled")

    wait_db(lambda: Ctid.objects.get(pk=ctid.pk).state == Ctid.State.NEEDS_RECONNECT, timeout=20)
    assert token_of(ctid).state == CtidToken.State.NEEDS_RECONNECT
    assert token_of(ctid).access_token == old["accessToken"]  # a refused refresh keeps the stored values
    assert ctrader_id.calls == ["refresh_token"]
    # The cTID's other sessions are logged out, and nothing is authorized again.
    live_sim.wait_until(lambda: live_sim.authorized_accounts() == set())
    demo_sim.wait_until(lambda: demo_sim.authorized_accounts() == set())
    quiet_period()
    assert live_sim.received(PayloadType.ACCOUNT_AUTH_REQ) == []
    assert demo_sim.received(PayloadType.ACCOUNT_AUTH_REQ) == []
    assert [r.payload["ctidTraderAccountId"] for r in live_sim.received(PayloadType.ACCOUNT_LOGOUT_REQ)] == [
        61000003
    ]
    assert [r.payload["ctidTraderAccountId"] for r in demo_sim.received(PayloadType.ACCOUNT_LOGOUT_REQ)] == [
        61000002
    ]
    # The trader's TradingView link goes with it, through the signal, exactly once.
    assert [pk for pk, _ in reconnect_signals] == [ctid.pk]
    wait_db(lambda: Grant.objects.get(pk=grant.pk).state == Grant.State.REVOKED)
    assert "cTID needs reconnect" in Grant.objects.get(pk=grant.pk).revoke_reason
    assert adapter.is_revoked("tvsim_linked")
    assert [c.headers["authorization"] for c in adapter.calls_to("/logout")] == ["Bearer tvsim_linked"]


@pytest.mark.parametrize("error_code", ["OA_AUTH_TOKEN_EXPIRED", "CH_ACCESS_TOKEN_INVALID"])
def test_token_error_on_account_auth_refreshes_then_retries_once(
    error_code: str,
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    ctrader_id: CtraderIdSimulator,
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    ctid, old = linked
    start_gateway()
    settle_both(live_sim, demo_sim)
    live_sim.clear_received()
    demo_sim.clear_received()

    live_sim.fail_next(PayloadType.ACCOUNT_AUTH_REQ, error_code)
    live_sim.account_disconnect(61000001)
    settle_both(live_sim, demo_sim)
    quiet_period()

    new = token_of(ctid)
    assert new.version == 2
    assert ctrader_id.calls == ["refresh_token"]
    assert [
        (f.payload_type, f.payload.get("accessToken")) for f in of_account(live_sim.received(), 61000001)
    ] == [
        (PayloadType.ACCOUNT_AUTH_REQ, old["accessToken"]),
        (PayloadType.ACCOUNT_AUTH_REQ, new.access_token),
        (PayloadType.TRADER_REQ, None),
    ]
    # The refresh ended the other sessions of the old token; they come back on the new one.
    for sim, account_id in ((live_sim, 61000003), (demo_sim, 61000002)):
        assert [
            (f.payload_type, f.payload.get("accessToken")) for f in of_account(sim.received(), account_id)
        ] == [(PayloadType.ACCOUNT_AUTH_REQ, new.access_token), (PayloadType.TRADER_REQ, None)]


def test_token_error_again_after_the_refresh_stops_and_marks_the_ctid(
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    ctrader_id: CtraderIdSimulator,
    reconnect_signals: list[tuple[int, str]],
    start_gateway: Callable[..., GatewayRunner],
) -> None:
    ctid, old = linked
    # One account on one host, so both refusals go to its flow (the refresh's rotation would otherwise send
    # the other sessions back to authorize, and either could meet the second refusal).
    TradingAccount.objects.exclude(ctid_trader_account_id=61000001).update(
        status=TradingAccount.Status.DISABLED
    )
    start_gateway(urls={"live": live_sim.url})
    live_sim.wait_until(settled(live_sim, {61000001}))
    live_sim.clear_received()

    live_sim.fail_next(PayloadType.ACCOUNT_AUTH_REQ, "CH_ACCESS_TOKEN_INVALID", times=2)
    live_sim.account_disconnect(61000001)

    wait_db(lambda: Ctid.objects.get(pk=ctid.pk).state == Ctid.State.NEEDS_RECONNECT)
    live_sim.wait_until(lambda: live_sim.authorized_accounts() == set())
    quiet_period()
    assert [a.payload["accessToken"] for a in live_sim.received(PayloadType.ACCOUNT_AUTH_REQ)] == [
        old["accessToken"],
        token_of(ctid).access_token,
    ]
    assert ctrader_id.calls == ["refresh_token"]
    assert [pk for pk, _ in reconnect_signals] == [ctid.pk]
    assert "CH_ACCESS_TOKEN_INVALID" in Ctid.objects.get(pk=ctid.pk).state_reason


@pytest.mark.celery
def test_a_token_refreshed_by_the_celery_task_is_picked_up_by_the_running_gateway(
    world: World,
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    ctrader_id: CtraderIdSimulator,
    start_gateway: Callable[..., GatewayRunner],
    celery_worker: Any,
) -> None:
    ctid, old = linked
    runner = start_gateway()  # the database poll runs too: it and the events both see the new token
    settle_both(live_sim, demo_sim)
    live_sim.clear_received()
    demo_sim.clear_received()

    tasks.refresh_ctid_token.delay(ctid.pk, reason="test")
    wait_db(lambda: token_of(ctid).version == 2, timeout=20)
    settle_both(live_sim, demo_sim)
    quiet_period()

    new = token_of(ctid)
    assert new.last_refresh_outcome == CtidToken.Outcome.OK
    assert ctrader_id.calls == ["refresh_token"]  # the worker's; the gateway waited for it or adopted it
    # Every session re-authorized exactly once, on the new token; the dead one was never sent again.
    assert_one_reauth_each_with(new.access_token, live_sim, demo_sim)
    assert old["accessToken"] not in auth_tokens(live_sim, demo_sim)
    versions = runner.call(
        lambda: {
            a: acc.version_used
            for env in runner.gateway.environments.values()
            for a, acc in env.accounts.items()
        }
    )
    assert versions == dict.fromkeys(LIVE | DEMO, 2)


def test_no_token_or_secret_reaches_the_logs(
    world: World,
    linked: tuple[Ctid, dict[str, object]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    ctrader_id: CtraderIdSimulator,
    start_gateway: Callable[..., GatewayRunner],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctid, old = linked
    caplog.set_level(logging.DEBUG)
    start_gateway()
    settle_both(live_sim, demo_sim)
    # A refresh, the events it causes, a refused account auth and a second (dead) refresh: every token path.
    live_sim.tokens_invalidated([61000001], "Access token was recalled")
    settle_both(live_sim, demo_sim)
    live_sim.fail_next(PayloadType.ACCOUNT_AUTH_REQ, "OA_AUTH_TOKEN_EXPIRED")
    world.refresh_tokens.clear()
    live_sim.account_disconnect(61000001)
    wait_db(lambda: Ctid.objects.get(pk=ctid.pk).state == Ctid.State.NEEDS_RECONNECT)
    live_sim.wait_until(lambda: live_sim.authorized_accounts() == set())

    token = token_of(ctid)
    secrets = {
        str(old["accessToken"]),
        str(old["refreshToken"]),
        token.access_token,
        token.refresh_token,
        CLIENT_SECRET,
    }
    assert ctrader_id.calls == ["refresh_token", "refresh_token"]
    formatter = logging.Formatter()
    assert len(caplog.records) > 20
    for record in caplog.records:
        text = formatter.format(record) + repr(vars(record))
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{record.name}: {record.msg}"
