"""The WebServices client against the simulator on a real loopback HTTP server: paths, query token, JSON
bodies and types, md5 values, the error family, and no secret in any message."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from accounts.ctrader.webservices import (
    WebServicesAmbiguous,
    WebServicesClient,
    WebServicesPermanent,
    WebServicesTransient,
    md5_hex,
)
from clientarea import http
from sandbox.httpd import RunningServer, serve
from sandbox.webservices_server import WebServicesSim
from sandbox.world import Grant, World, demo_world
from tests.helpers.peers import recording_peer, tls_peer

MANAGER_LOGIN, MANAGER_PASSWORD = 30001, "manager-pass-Ω-2026"
TRADING_PASSWORD = "Trad1ng-Secret!"


@pytest.fixture
def world() -> World:
    return demo_world()


@pytest.fixture
def sim(world: World) -> Iterator[tuple[WebServicesSim, RunningServer]]:
    state = WebServicesSim(world, "live", {MANAGER_LOGIN: md5_hex(MANAGER_PASSWORD)}, hang_seconds=3)
    server = serve(state.routes("/ws"))
    yield state, server
    state.release_hangs()
    server.stop()


def client_for(
    server: RunningServer, *, password: str = MANAGER_PASSWORD, read: float = 1.0
) -> WebServicesClient:
    return WebServicesClient(
        base_url=f"{server.url}/ws",
        manager_login=MANAGER_LOGIN,
        manager_password=password,
        session=requests.Session(),
        timeout=(1.0, read),
        sleep=lambda _: None,
    )


def create(client: WebServicesClient, **overrides: object):
    options: dict = {
        "password_hash": md5_hex(TRADING_PASSWORD),
        "broker_name": "SANDBOX-EU",
        "group_name": "SANDBOX-TV",
        "deposit_currency": "EUR",
        "leverage_in_cents": 10000,
        "balance": 1_000_000,
        "email": "new@example.com",
        "description": "opening-tag-1",
    }
    options.update(overrides)
    return client.trader_create(**options)


def test_manager_token_sends_login_and_md5_and_every_call_carries_it(sim) -> None:
    state, server = sim
    client = client_for(server)
    groups = client.trader_groups()
    assert [g.name for g in groups] == ["SANDBOX-TV", "SANDBOX-STANDARD"]
    token_call, groups_call = state.calls_to("manager_token")[0], state.calls_to("trader_groups")[0]
    assert token_call.path == "/ws/v2/webserv/managers/token"
    assert token_call.json == {
        "login": MANAGER_LOGIN,
        "hashedPassword": hashlib.md5(MANAGER_PASSWORD.encode()).hexdigest(),
    }
    assert groups_call.path == "/ws/v2/webserv/tradergroups"
    assert groups_call.query["token"].startswith("wsim_live_")
    client.trader_groups()
    assert len(state.calls_to("manager_token")) == 1  # the token does not expire: fetched once


def test_full_opening_sequence_and_the_world_sees_the_account(sim, world: World) -> None:
    state, server = sim
    client = client_for(server)
    ctid = client.ctid_create(
        email="New.Trader@example.com", broker_name="SANDBOX-EU", preferred_language="EN"
    )
    assert ctid.created
    assert ctid.user_id > 0
    assert client.ctid_create(email="new.trader@example.com", broker_name="SANDBOX-EU").created is False

    trader = create(client)
    body = state.calls_to("trader_create")[0]
    assert body.path == "/ws/v2/webserv/traders"
    assert body.json["hashedPassword"] == hashlib.md5(TRADING_PASSWORD.encode()).hexdigest()
    assert body.json["balance"] == 1_000_000
    assert isinstance(body.json["leverageInCents"], int)
    assert body.json["contactDetails"] == {"email": "new@example.com"}
    assert body.json["totalMarginCalculationType"] == "MAX"
    assert body.json["accessRights"] == "FULL_ACCESS"
    assert trader.login > 0
    assert trader.balance == 1_000_000
    assert trader.money_digits == 2
    assert trader.description == "opening-tag-1"

    linked = client.ctid_link(
        trader_login=trader.login,
        password_hash=md5_hex(TRADING_PASSWORD),
        user_id=ctid.user_id,
        broker_name="SANDBOX-EU",
        environment="live",
    )
    link_call = state.calls_to("ctid_link")[0]
    assert link_call.path == "/ws/cid/ctid/link"
    assert link_call.json == {
        "traderLogin": trader.login,
        "traderPasswordHash": md5_hex(TRADING_PASSWORD),
        "userId": ctid.user_id,
        "brokerName": "SANDBOX-EU",
        "environmentName": "live",
        "returnAccountDetails": True,
    }
    account = world.account(linked.ctid_trader_account_id)
    assert account is not None
    assert account.trader_login == trader.login
    assert account.is_live

    again = client.trader_get(trader.login)
    assert again.login == trader.login
    assert again.group_name == "SANDBOX-TV"
    now = datetime.now(UTC)
    listed = client.traders_list(now - timedelta(minutes=5), now + timedelta(minutes=1), group_id=1)
    assert [t.login for t in listed] == [trader.login]
    assert state.calls_to("traders_list")[0].path == "/ws/v2/webserv/traders/"
    everyone = client.traders_list(now - timedelta(minutes=5), now + timedelta(minutes=1))
    assert {5100101, 5100103, trader.login} <= {t.login for t in everyone}
    assert all(isinstance(t.equity, int) and isinstance(t.free_margin, int) for t in everyone)


def test_linked_account_joins_an_existing_grant(sim, world: World) -> None:
    _, server = sim
    grant = Grant(7001001, (40000101,), "accounts")
    world.issue_tokens(grant)
    client = client_for(server)
    trader = create(client)
    linked = client.ctid_link(
        trader_login=trader.login, password_hash=md5_hex(TRADING_PASSWORD), user_id=7001001,
        broker_name="SANDBOX-EU", environment="live",
    )  # fmt: skip
    assert linked.ctid_trader_account_id in grant.account_ids


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("INVALID_REQUEST", WebServicesPermanent),
        ("CH_BROKER_NOT_FOUND", WebServicesPermanent),
        ("TRADER_GROUP_NOT_FOUND", WebServicesPermanent),
        ("WRONG_PASSWORD", WebServicesPermanent),
        ("TRADER_NOT_FOUND", WebServicesPermanent),
        ("REQUEST_FREQUENCY_EXCEEDED", WebServicesTransient),
        ("UNKNOWN_ERROR", WebServicesAmbiguous),
    ],
)
def test_error_names_map_to_the_family(sim, name: str, kind: type) -> None:
    state, server = sim
    client = client_for(server)
    client.manager_token()
    state.fail_next("trader_create", name)
    with pytest.raises(kind) as caught:
        create(client)
    assert caught.value.error_code == name
    assert caught.value.call == "trader_create"
    assert name in str(caught.value)
    assert len(state.traders) == 0


def test_unknown_error_on_a_read_is_transient(sim) -> None:
    state, server = sim
    client = client_for(server)
    state.fail_next("trader_groups", "UNKNOWN_ERROR")
    with pytest.raises(WebServicesTransient):
        client.trader_groups()


def test_refused_for_rights_fetches_a_new_token_once(sim) -> None:
    state, server = sim
    client = client_for(server)
    client.trader_groups()
    state.revoke_tokens()
    assert client.trader_groups()
    assert len(state.calls_to("manager_token")) == 2
    state.fail_next("trader_groups", "NOT_ENOUGH_RIGHTS", times=2)
    with pytest.raises(WebServicesPermanent) as caught:
        client.trader_groups()
    assert caught.value.error_code == "NOT_ENOUGH_RIGHTS"
    assert len(state.calls_to("manager_token")) == 3  # once, not in a loop


def test_wrong_manager_password_is_permanent(sim) -> None:
    _, server = sim
    with pytest.raises(WebServicesPermanent) as caught:
        client_for(server, password="wrong").trader_groups()
    assert caught.value.error_code == "NOT_ENOUGH_RIGHTS"


def test_lost_response_after_creation_is_ambiguous_and_the_tag_finds_it(sim) -> None:
    state, server = sim
    client = client_for(server)
    client.manager_token()
    state.fail_next("trader_create", "lost")
    with pytest.raises(WebServicesAmbiguous):
        create(client, description="opening-tag-lost")
    assert len(state.traders) == 1  # it was created
    now = datetime.now(UTC)
    found = [
        t for t in client.traders_list(now - timedelta(minutes=5), now) if t.description == "opening-tag-lost"
    ]
    assert len(found) == 1


def test_timeout_on_a_write_is_ambiguous_on_a_read_transient(sim) -> None:
    state, server = sim
    client = client_for(server, read=0.3)
    client.manager_token()
    state.fail_next("ctid_link", "timeout")
    with pytest.raises(WebServicesAmbiguous) as caught:
        client.ctid_link(
            trader_login=1, password_hash="0" * 32, user_id=1, broker_name="X", environment="live"
        )
    assert caught.value.error_code == "TIMEOUT"
    state.fail_next("trader_get", "timeout")
    with pytest.raises(WebServicesTransient):
        client.trader_get(5100101)


def test_unreachable_host_is_transient() -> None:
    server = serve([])
    url = server.url
    server.stop()
    client = WebServicesClient(
        base_url=url, manager_login=1, manager_password="x", session=requests.Session(), timeout=(0.5, 0.5),
        sleep=lambda _: None,
    )  # fmt: skip
    with pytest.raises(WebServicesTransient) as caught:
        client.trader_groups()
    assert caught.value.error_code == "UNREACHABLE"


def test_no_secret_or_hash_in_messages_logs_or_repr(sim, caplog: pytest.LogCaptureFixture) -> None:
    state, server = sim
    caplog.set_level(logging.DEBUG)
    client = client_for(server)
    token = client.manager_token()
    failures = []
    for how in ("WRONG_PASSWORD", "UNKNOWN_ERROR", "lost", "timeout"):
        state.fail_next("trader_create", how)
        try:
            create(client)
        except Exception as exc:
            failures.append(f"{exc!s} {exc!r} {exc.__cause__!r} {exc.__context__!r}")
    assert len(failures) == 4
    text = "\n".join([*failures, caplog.text, repr(client)])
    for secret in (
        token,
        MANAGER_PASSWORD,
        md5_hex(MANAGER_PASSWORD),
        TRADING_PASSWORD,
        md5_hex(TRADING_PASSWORD),
    ):
        assert secret not in text


def test_money_fields_are_integers_with_money_digits(sim) -> None:
    _, server = sim
    trader = client_for(server).trader_get(5100103)
    assert trader.money_digits == 8
    assert trader.balance == 52_015_000_000
    assert trader.amount(trader.balance) == pytest.approx(520.15)


def test_an_untrusted_certificate_is_transient_and_leaves_no_secret() -> None:
    # The manager token request to a host whose TLS certificate is refused: nothing of it left the machine.
    context, _ = tls_peer()
    with recording_peer(tls=context) as (url, received):
        client = WebServicesClient(
            base_url=url, manager_login=MANAGER_LOGIN, manager_password=MANAGER_PASSWORD,
            session=http.session(), timeout=(0.5, 0.5), sleep=lambda _: None,
        )  # fmt: skip
        with pytest.raises(WebServicesTransient) as caught:
            client.trader_groups()
    assert caught.value.error_code == "UNREACHABLE"
    assert received == []
    text = f"{caught.value!s} {caught.value!r} {caught.value.__cause__!r} {caught.value.__context__!r}"
    assert md5_hex(MANAGER_PASSWORD) not in text
    assert MANAGER_PASSWORD not in text
