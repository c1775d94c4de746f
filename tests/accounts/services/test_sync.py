"""Account sync over the Open API simulators (one WebSocket host per environment)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.ctrader.openapi.messages import PayloadType
from accounts.models import Ctid, CtidToken, Jurisdiction, TradingAccount
from accounts.services.sync import SyncNeedsReconnect, ctid_sync_accounts
from sandbox.world import Grant
from tests.helpers.ctrader import connect_in_world, make_trader, stored

pytestmark = pytest.mark.django_db


@pytest.fixture
def eu() -> Jurisdiction:
    return Jurisdiction.objects.create(broker_name="TEST-EU", display_name="Test EU")


def test_sync_upserts_accounts_with_balance_currency_and_jurisdiction(world, openapi, eu):
    ctid, _ = connect_in_world(world, trader=make_trader())
    result = ctid_sync_accounts(ctid_id=ctid.pk)
    assert (result.active, result.without_jurisdiction) == (3, 1)
    accounts = {a.ctid_trader_account_id: a for a in TradingAccount.objects.filter(ctid=ctid)}
    assert set(accounts) == {61000001, 61000002, 61000003}
    live_eur = accounts[61000001]
    assert (live_eur.is_live, live_eur.login, live_eur.balance, live_eur.currency) == (
        True,
        710001,
        Decimal("12500.50"),
        "EUR",
    )
    assert live_eur.jurisdiction == eu
    assert live_eur.broker_name == "TEST-EU"
    assert live_eur.broker_title == "Test EU"
    assert accounts[61000003].balance == Decimal("520.15000000")
    assert accounts[61000003].currency == "USD"
    # An unknown broker name stays without a jurisdiction, for staff to see.
    assert accounts[61000003].jurisdiction is None
    assert accounts[61000003].broker_name == "TEST-UNKNOWN"
    assert accounts[61000002].is_live is False
    assert accounts[61000002].jurisdiction == eu
    ctid.refresh_from_db()
    assert ctid.last_synced_at is not None
    assert ctid.last_sync_error == ""


def test_live_accounts_are_authorized_only_on_live_and_demo_only_on_demo(world, openapi, eu):
    ctid, _ = connect_in_world(world, trader=make_trader())
    ctid_sync_accounts(ctid_id=ctid.pk)
    ctid_sync_accounts(ctid_id=ctid.pk)

    def authorized(env: str) -> list[int]:
        return [
            int(r.payload["ctidTraderAccountId"]) for r in openapi[env].received(PayloadType.ACCOUNT_AUTH_REQ)
        ]

    assert sorted(authorized("live")) == [61000001, 61000001, 61000003, 61000003]
    assert authorized("demo") == [61000002, 61000002]
    for env, expected in (("live", {61000001, 61000003}), ("demo", {61000002})):
        for kind in (PayloadType.TRADER_REQ, PayloadType.ASSET_LIST_REQ):
            assert {int(r.payload["ctidTraderAccountId"]) for r in openapi[env].received(kind)} == expected
        # Application auth came first on every connection.
        for conn_id in {r.connection_id for r in openapi[env].received()}:
            assert (
                openapi[env].received(connection_id=conn_id)[0].payload_type
                == PayloadType.APPLICATION_AUTH_REQ
            )


def test_an_account_that_disappeared_is_marked_gone_not_deleted(world, openapi, eu):
    ctid, _ = connect_in_world(world, trader=make_trader())
    ctid_sync_accounts(ctid_id=ctid.pk)
    # A new consent that ticks only two of the three accounts.
    issued = world.issue_tokens(Grant(9100001, (61000001, 61000002), "accounts"))
    CtidToken.objects.filter(ctid=ctid).update(access_token=issued["accessToken"])
    result = ctid_sync_accounts(ctid_id=ctid.pk)
    assert (result.active, result.gone) == (2, 1)
    gone = TradingAccount.objects.get(ctid_trader_account_id=61000003)
    assert gone.status == TradingAccount.Status.GONE
    assert gone.balance == Decimal("520.15")
    assert TradingAccount.objects.filter(ctid=ctid, status=TradingAccount.Status.ACTIVE).count() == 2
    # Granted again later: active again.
    issued = world.issue_tokens(Grant(9100001, (61000001, 61000002, 61000003), "accounts"))
    CtidToken.objects.filter(ctid=ctid).update(access_token=issued["accessToken"])
    ctid_sync_accounts(ctid_id=ctid.pk)
    assert TradingAccount.objects.get(ctid_trader_account_id=61000003).status == TradingAccount.Status.ACTIVE


def test_a_disabled_account_is_marked_and_the_rest_synced(world, openapi, eu):
    ctid, _ = connect_in_world(world, trader=make_trader())
    world.account(61000002).enabled = False
    result = ctid_sync_accounts(ctid_id=ctid.pk)
    assert result.active == 2
    assert (
        TradingAccount.objects.get(ctid_trader_account_id=61000002).status == TradingAccount.Status.DISABLED
    )


def test_a_refused_access_token_is_refreshed_once_then_the_sync_succeeds(world, openapi, ctrader_id, eu):
    ctid, issued = connect_in_world(world, trader=make_trader())
    world.access_tokens[issued["accessToken"]].revoked = True
    result = ctid_sync_accounts(ctid_id=ctid.pk)
    assert result.active == 3
    assert ctrader_id.calls == ["refresh_token"]
    token = stored(ctid)
    assert token.version == 2
    assert token.access_token != issued["accessToken"]
    # The retry used the new token on both hosts.
    auths = openapi["live"].received(PayloadType.ACCOUNT_AUTH_REQ) + openapi["demo"].received(
        PayloadType.ACCOUNT_AUTH_REQ
    )
    assert auths
    assert all(r.payload["accessToken"] == token.access_token for r in auths)


def test_a_dead_chain_during_sync_ends_in_needs_reconnect(world, openapi, ctrader_id, eu):
    ctid, issued = connect_in_world(world, trader=make_trader())
    world.access_tokens[issued["accessToken"]].revoked = True
    world.next_refresh_failure = "error"
    with pytest.raises(SyncNeedsReconnect):
        ctid_sync_accounts(ctid_id=ctid.pk)
    ctid.refresh_from_db()
    assert ctid.state == Ctid.State.NEEDS_RECONNECT
    assert ctid.last_sync_error
    assert not TradingAccount.objects.filter(ctid=ctid).exists()
    with pytest.raises(SyncNeedsReconnect):
        ctid_sync_accounts(ctid_id=ctid.pk)
    assert ctrader_id.calls == ["refresh_token"]


def test_a_large_ctid_is_read_on_one_connection_per_environment_with_pipelined_requests(world, openapi, eu):
    from sandbox.world import SimAccount

    many = [
        SimAccount(64000000 + n, 8400000 + n, n % 4 != 0, "TEST-EU", "Test EU", 10_000 + n, 2, "EUR")
        for n in range(40)
    ]
    world.add_ctid(9100900, "Large", many)
    ctid, _ = connect_in_world(world, trader=make_trader(), user_id=9100900)
    result = ctid_sync_accounts(ctid_id=ctid.pk)

    assert result.active == 40
    for env, count in (("live", 30), ("demo", 10)):
        frames = [f for f in openapi[env].received() if f.payload_type != PayloadType.HEARTBEAT_EVENT]
        assert len({f.connection_id for f in frames}) == 1  # one connection, not one per account
        kinds = [f.payload_type for f in frames]
        # Pipelined: every account auth is sent before the first trader read comes back and is followed.
        first_trader = kinds.index(PayloadType.TRADER_REQ)
        assert kinds[:first_trader].count(PayloadType.ACCOUNT_AUTH_REQ) == count
        assert kinds.count(PayloadType.ASSET_LIST_REQ) == 1  # one broker: its asset names are read once
