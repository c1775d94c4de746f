"""The Open API client against the simulator, over real WebSockets on loopback."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from accounts.ctrader.openapi.client import (
    AccountInfo,
    OpenApiConnection,
    OpenApiErrorResponse,
    OpenApiRequestTimeout,
    OpenApiTransportError,
    RatePacer,
)
from accounts.ctrader.openapi.messages import Envelope, PayloadType, decode, encode, maintenance_end
from sandbox.openapi_server import OpenApiSimulator
from sandbox.world import SimAccount, World
from tests.helpers.ctrader import CLIENT_ID, CLIENT_SECRET, issue


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def open_connection(sim: OpenApiSimulator, **kwargs: Any) -> OpenApiConnection:
    kwargs.setdefault("client_id", CLIENT_ID)
    kwargs.setdefault("client_secret", CLIENT_SECRET)
    return await OpenApiConnection.connect(sim.url, **kwargs)


# Receive times at the simulator carry the scheduling jitter of two event loops sharing one process (and,
# in CI, two cores): the pacer's 5% window margin exists to absorb up to 50 ms of it, so the server-side
# checks count over the one-second window less that jitter. The pacer itself is checked exactly, on a
# fake clock, in test_rate_pacer_never_exceeds_the_limit_in_a_window.
SERVER_WINDOW = 0.95


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_envelope_round_trip_keeps_int64_as_numbers() -> None:
    text = encode(PayloadType.ACCOUNT_AUTH_REQ, {"ctidTraderAccountId": 2**62 + 5, "accessToken": "t"}, "m-1")
    assert '"ctidTraderAccountId":4611686018427387909' in text
    envelope = decode(text)
    assert envelope == Envelope(2102, {"ctidTraderAccountId": 2**62 + 5, "accessToken": "t"}, "m-1")


def test_maintenance_end_normalises_seconds_and_milliseconds() -> None:
    expected = datetime(2030, 1, 5, 6, 0, tzinfo=UTC)
    seconds = int(expected.timestamp())
    assert maintenance_end({"maintenanceEndTimestamp": seconds}) == expected
    assert maintenance_end({"maintenanceEndTimestamp": seconds * 1000}) == expected
    assert maintenance_end({}) is None


def test_application_auth_is_the_first_frame_and_token_calls_work(
    world: World, live_sim: OpenApiSimulator
) -> None:
    tokens = issue(world, 9100001)

    async def main() -> tuple[int, tuple[str, list[AccountInfo]]]:
        async with await open_connection(live_sim) as conn:
            return await conn.get_ctid_user_id(str(tokens["accessToken"])), await conn.get_accounts(
                str(tokens["accessToken"])
            )

    user_id, (scope, accounts) = run(main())
    assert user_id == 9100001
    assert scope == "SCOPE_VIEW"
    assert accounts == [
        AccountInfo(61000001, True, 7100001, "Broker EU"),
        AccountInfo(61000002, False, 7100002, "Broker EU"),
        AccountInfo(61000003, True, 7100003, "Broker Intl"),
    ]
    frames = live_sim.received()
    assert [f.payload_type for f in frames] == [2100, 2151, 2149]
    assert frames[0].payload == {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}
    assert len({f.client_msg_id for f in frames}) == 3


def test_refused_application_auth_raises_and_sends_nothing_else(live_sim: OpenApiSimulator) -> None:
    with pytest.raises(OpenApiErrorResponse) as excinfo:
        run(open_connection(live_sim, client_secret="wrong"))
    assert excinfo.value.error_code == "CH_CLIENT_AUTH_FAILURE"
    assert [f.payload_type for f in live_sim.received()] == [2100]


def test_requests_before_application_auth_are_refused_by_the_simulator(
    world: World, live_sim: OpenApiSimulator
) -> None:
    from websockets.asyncio.client import connect

    async def main() -> Envelope:
        async with connect(live_sim.url) as ws:
            await ws.send(encode(PayloadType.GET_CTID_PROFILE_BY_TOKEN_REQ, {"accessToken": "x"}, "early"))
            return decode(await ws.recv())

    envelope = run(main())
    assert envelope.payload_type == PayloadType.OA_ERROR_RES
    assert envelope.client_msg_id == "early"
    assert envelope.payload["errorCode"] == "CH_CLIENT_NOT_AUTHENTICATED"


def test_account_auth_trader_and_assets(world: World, live_sim: OpenApiSimulator) -> None:
    access = str(issue(world, 9100001)["accessToken"])

    async def main() -> Any:
        async with await open_connection(live_sim) as conn:
            await conn.authorize_account(61000003, access)
            assert live_sim.authorized_accounts() == {61000003}
            return await conn.get_trader(61000003), await conn.get_asset_names(61000003)

    trader, assets = run(main())
    assert trader.ctid_trader_account_id == 61000003
    assert trader.balance == Decimal("520.15000000")
    assert trader.money_digits == 8
    assert trader.broker_name == "BROKER-INTL"
    assert trader.trader_login == 7100003
    assert assets[trader.deposit_asset_id] == "USD"
    auth = live_sim.received(PayloadType.ACCOUNT_AUTH_REQ)[0]
    assert auth.payload == {"ctidTraderAccountId": 61000003, "accessToken": access}


def test_account_errors_are_raised_by_name(world: World, live_sim: OpenApiSimulator) -> None:
    access = str(issue(world, 9100001)["accessToken"])

    async def main() -> list[OpenApiErrorResponse]:
        errors = []
        async with await open_connection(live_sim) as conn:
            for account_id, token in [(61000002, access), (61000001, "bogus"), (99999999, access)]:
                try:
                    await conn.authorize_account(account_id, token)
                except OpenApiErrorResponse as exc:
                    errors.append(exc)
            await conn.authorize_account(61000001, access)
            try:
                await conn.authorize_account(61000001, access)
            except OpenApiErrorResponse as exc:
                errors.append(exc)
        return errors

    errors = run(main())
    assert [(e.error_code, e.payload_type) for e in errors] == [
        ("CANT_ROUTE_REQUEST", 50),  # a demo account on the live host
        ("CH_ACCESS_TOKEN_INVALID", 2142),
        ("CH_CTID_TRADER_ACCOUNT_NOT_FOUND", 2142),
        ("ALREADY_LOGGED_IN", 2142),
    ]
    assert errors[3].ctid_trader_account_id == 61000001


def test_injected_errors_carry_retry_after_and_maintenance_end(
    world: World, live_sim: OpenApiSimulator
) -> None:
    access = str(issue(world, 9100001)["accessToken"])
    end = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
    live_sim.fail_next(PayloadType.ACCOUNT_AUTH_REQ, "BLOCKED_PAYLOAD_TYPE", retry_after=3, common=True)
    live_sim.fail_next(PayloadType.ACCOUNT_AUTH_REQ, "REQUEST_FREQUENCY_EXCEEDED", retry_after=2)
    live_sim.fail_next(PayloadType.TRADER_REQ, "SERVER_IS_UNDER_MAINTENANCE", maintenance_end=end.timestamp())
    live_sim.fail_next(
        PayloadType.TRADER_REQ, "SERVER_IS_UNDER_MAINTENANCE", maintenance_end=end.timestamp(), common=True
    )

    async def main() -> list[OpenApiErrorResponse]:
        errors = []
        async with await open_connection(live_sim) as conn:
            for _ in range(2):
                with pytest.raises(OpenApiErrorResponse) as excinfo:
                    await conn.authorize_account(61000001, access)
                errors.append(excinfo.value)
            await conn.authorize_account(61000001, access)
            for _ in range(2):
                with pytest.raises(OpenApiErrorResponse) as excinfo:
                    await conn.get_trader(61000001)
                errors.append(excinfo.value)
        return errors

    blocked, frequency, maintenance_oa, maintenance_common = run(main())
    assert blocked.error_code == "BLOCKED_PAYLOAD_TYPE"
    assert frequency.retry_after == 2.0
    assert frequency.ctid_trader_account_id == 61000001
    assert maintenance_oa.maintenance_end == end
    assert maintenance_common.maintenance_end == end
    assert maintenance_common.payload_type == 50


def test_concurrent_requests_are_matched_by_client_msg_id(world: World, live_sim: OpenApiSimulator) -> None:
    access = str(issue(world, 9100001)["accessToken"])

    async def main() -> list[Any]:
        async with await open_connection(live_sim) as conn:
            await asyncio.gather(
                conn.authorize_account(61000001, access), conn.authorize_account(61000003, access)
            )
            return await asyncio.gather(
                *(conn.get_trader(a) for a in [61000003, 61000001, 61000003, 61000001])
            )

    traders = run(main())
    assert [t.ctid_trader_account_id for t in traders] == [61000003, 61000001, 61000003, 61000001]
    assert [t.balance for t in traders[:2]] == [Decimal("520.15000000"), Decimal("12500.50")]


def test_a_request_without_answer_times_out(live_sim: OpenApiSimulator) -> None:
    async def main() -> None:
        async with await open_connection(live_sim) as conn:
            # The server never answers a heartbeat.
            await conn.request(PayloadType.HEARTBEAT_EVENT, {}, timeout=0.2)

    with pytest.raises(OpenApiRequestTimeout):
        run(main())


def test_events_go_to_on_event_in_order(world: World, live_sim: OpenApiSimulator) -> None:
    access = str(issue(world, 9100001)["accessToken"])
    seen: list[Envelope] = []

    async def on_event(envelope: Envelope) -> None:
        seen.append(envelope)

    async def main() -> None:
        async with await open_connection(live_sim, on_event=on_event) as conn:
            await conn.authorize_account(61000001, access)
            await conn.authorize_account(61000003, access)
            await asyncio.to_thread(live_sim.trader_updated, 61000001)
            await asyncio.to_thread(live_sim.account_disconnect, 61000001)
            await asyncio.to_thread(live_sim.tokens_invalidated, [61000003], "expired")
            await live_sim.wait_for(lambda: len(seen) >= 3)

    run(main())
    assert [e.payload_type for e in seen] == [2123, 2164, 2147]
    assert seen[0].payload["trader"]["balance"] == 1_250_050
    assert seen[1].payload == {"ctidTraderAccountId": 61000001}
    assert seen[2].payload == {"ctidTraderAccountIds": [61000003], "reason": "expired"}
    assert all(e.client_msg_id is None for e in seen)


def test_an_event_handler_may_send_requests(world: World, live_sim: OpenApiSimulator) -> None:
    access = str(issue(world, 9100001)["accessToken"])
    reauthorized: list[int] = []

    async def main() -> None:
        conn: OpenApiConnection

        async def on_event(envelope: Envelope) -> None:
            if envelope.payload_type == PayloadType.ACCOUNT_DISCONNECT_EVENT:
                account_id = envelope.payload["ctidTraderAccountId"]
                await conn.authorize_account(account_id, access)
                reauthorized.append(account_id)

        conn = await open_connection(live_sim, on_event=on_event)
        async with conn:
            await conn.authorize_account(61000001, access)
            await asyncio.to_thread(live_sim.account_disconnect, 61000001)
            await live_sim.wait_for(lambda: reauthorized == [61000001])
            assert live_sim.authorized_accounts() == {61000001}

    run(main())
    assert [f.payload_type for f in live_sim.received()] == [2100, 2102, 2102]


def test_client_disconnect_event_then_close_fails_pending_requests(
    world: World, live_sim: OpenApiSimulator
) -> None:
    seen: list[int] = []

    async def on_event(envelope: Envelope) -> None:
        seen.append(envelope.payload_type)

    async def main() -> tuple[BaseException | None, str]:
        conn = await open_connection(live_sim, on_event=on_event)
        pending = asyncio.create_task(conn.request(PayloadType.HEARTBEAT_EVENT, {}, timeout=30))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(live_sim.client_disconnect, "Blocked by administrator")
        await asyncio.wait_for(conn.wait_closed(), 5)
        error = await asyncio.gather(pending, return_exceptions=True)
        await conn.close()
        with pytest.raises(OpenApiTransportError):
            await conn.get_trader(61000001)
        return error[0], conn.close_reason

    error, reason = run(main())
    assert isinstance(error, OpenApiTransportError)
    assert not isinstance(error, OpenApiRequestTimeout)
    assert seen == [PayloadType.CLIENT_DISCONNECT_EVENT]
    assert "socket closed" in reason


def test_a_dropped_socket_closes_the_connection(live_sim: OpenApiSimulator) -> None:
    async def main() -> bool:
        conn = await open_connection(live_sim)
        await asyncio.to_thread(live_sim.drop)
        await asyncio.wait_for(conn.wait_closed(), 5)
        closed = conn.closed
        await conn.close()
        return closed

    assert run(main())


def test_refreshing_the_token_ends_the_old_sessions(world: World, live_sim: OpenApiSimulator) -> None:
    tokens = issue(world, 9100001)
    seen: list[Envelope] = []

    async def on_event(envelope: Envelope) -> None:
        seen.append(envelope)

    async def main() -> None:
        async with await open_connection(live_sim, on_event=on_event) as conn:
            await conn.authorize_account(61000001, str(tokens["accessToken"]))
            await conn.authorize_account(61000003, str(tokens["accessToken"]))
            assert await asyncio.to_thread(world.rotate, str(tokens["refreshToken"])) is not None
            await live_sim.wait_for(lambda: len(seen) == 1)
            with pytest.raises(OpenApiErrorResponse) as excinfo:
                await conn.get_trader(61000001)
            assert excinfo.value.error_code == "ACCOUNT_NOT_AUTHORIZED"

    run(main())
    assert seen[0].payload_type == PayloadType.ACCOUNTS_TOKEN_INVALIDATED_EVENT
    assert sorted(seen[0].payload["ctidTraderAccountIds"]) == [61000001, 61000003]
    assert live_sim.authorized_accounts() == set()


def test_server_heartbeats_reach_on_event_and_client_heartbeats_keep_their_interval(world: World) -> None:
    sim = OpenApiSimulator(
        world, "live", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, heartbeat_interval=0.05
    )
    sim.start_in_thread()
    server_heartbeats: list[int] = []

    async def on_event(envelope: Envelope) -> None:
        server_heartbeats.append(envelope.payload_type)

    async def main() -> None:
        async with await open_connection(sim, heartbeat_interval=0.1, on_event=on_event):
            await sim.wait_for(lambda: len(sim.received(PayloadType.HEARTBEAT_EVENT)) >= 4)

    try:
        run(main())
    finally:
        sim.stop()
    beats = [r.at for r in sim.received(PayloadType.HEARTBEAT_EVENT)]
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert min(gaps) >= 0.09
    assert set(server_heartbeats) == {PayloadType.HEARTBEAT_EVENT}
    assert server_heartbeats


def test_pacing_keeps_every_one_second_window_under_the_limit(
    world: World, live_sim: OpenApiSimulator
) -> None:
    access = str(issue(world, 9100001)["accessToken"])

    async def main() -> None:
        async with await open_connection(live_sim, max_requests_per_second=40) as conn:
            await conn.authorize_account(61000001, access)
            await asyncio.gather(*(conn.get_trader(61000001) for _ in range(100)))

    run(main())
    times = [r.at for r in live_sim.received()]
    assert len(times) == 102
    assert max_in_any_window(times, SERVER_WINDOW) <= 40


def test_rate_pacer_never_exceeds_the_limit_in_a_window() -> None:
    now = [0.0]
    pacer = RatePacer(10, margin=0.0, clock=lambda: now[0])
    sent: list[float] = []
    while len(sent) < 100:
        delay = pacer.delay()
        if delay:
            now[0] += delay
            continue
        pacer.record()
        sent.append(now[0])
    assert max_in_any_window(sent) <= 10
    # A steady stream, not a burst per window: the 100 sends take about 100 / 10 seconds.
    assert 9.0 <= sent[-1] <= 10.6


def test_rate_pacer_aims_its_margin_below_the_limit() -> None:
    now = [0.0]
    pacer = RatePacer(50, clock=lambda: now[0])  # the default margin: 10%
    sent: list[float] = []
    while len(sent) < 500:
        delay = pacer.delay()
        if delay:
            now[0] += delay
            continue
        pacer.record()
        sent.append(now[0])
    assert max_in_any_window(sent) <= 45


def test_secrets_are_not_logged(
    world: World, live_sim: OpenApiSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = issue(world, 9100001)
    access = str(tokens["accessToken"])

    async def main() -> None:
        async with await open_connection(live_sim) as conn:
            await conn.get_accounts(access)
            await conn.authorize_account(61000001, access)
            with pytest.raises(OpenApiErrorResponse):
                await conn.authorize_account(61000003, "not-" + access)

    with caplog.at_level(logging.DEBUG, logger="accounts.ctrader"):
        run(main())
    assert caplog.records
    dumped = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert access not in dumped
    assert CLIENT_SECRET not in dumped


def test_wss_requires_a_tls_peer(live_sim: OpenApiSimulator) -> None:
    url = live_sim.url.replace("ws://", "wss://")

    with pytest.raises(OpenApiTransportError):
        run(
            OpenApiConnection.connect(
                url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, request_timeout=3
            )
        )
    assert live_sim.received() == []


def test_demo_simulator_serves_demo_accounts_only(world: World, demo_sim: OpenApiSimulator) -> None:
    access = str(issue(world, 9100001)["accessToken"])

    async def main() -> str:
        async with await open_connection(demo_sim) as conn:
            await conn.authorize_account(61000002, access)
            with pytest.raises(OpenApiErrorResponse) as excinfo:
                await conn.authorize_account(61000001, access)
            assert demo_sim.authorized_accounts() == {61000002}
            return excinfo.value.error_code

    assert run(main()) == "CANT_ROUTE_REQUEST"


def test_disabled_account_is_refused(world: World, live_sim: OpenApiSimulator) -> None:
    access = str(issue(world, 9100001)["accessToken"])
    account = world.account(61000001)
    assert isinstance(account, SimAccount)
    account.enabled = False

    async def main() -> str:
        async with await open_connection(live_sim) as conn:
            with pytest.raises(OpenApiErrorResponse) as excinfo:
                await conn.authorize_account(61000001, access)
            return excinfo.value.error_code

    assert run(main()) == "RET_ACCOUNT_DISABLED"
