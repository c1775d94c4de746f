"""The refresh grant's read of a grant (one prepared statement) loads what the ORM's query loads."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Ctid, TradingAccount
from tests.helpers.tradingview import exchange, link
from tradingview.models import Grant, token_hash
from tradingview.services import refresh, statements

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the statement is PostgreSQL's")


def _loaded(obj: Any) -> tuple[Any, ...]:
    """What an instance holds as loaded: its model, pk, loaded attribute values and deferred fields."""
    deferred = obj.get_deferred_fields()
    values = tuple(
        (f.attname, getattr(obj, f.attname)) for f in obj._meta.concrete_fields if f.attname not in deferred
    )
    return type(obj), obj.pk, values, frozenset(deferred)


def _described(read: tuple[Grant | None, list[TradingAccount]]) -> Any:
    grant, accounts = read
    if grant is None:
        return None, accounts
    return (
        _loaded(grant),
        _loaded(grant.client),
        _loaded(grant.trader),
        _loaded(grant.ctid),
        sorted(
            (
                _loaded(a),
                a.ctid is grant.ctid,
                None if a.jurisdiction is None else _loaded(a.jurisdiction),
            )
            for a in accounts
        ),
    )


def _both(monkeypatch, presented: str) -> tuple[Any, Any, int]:
    """The read through the prepared statement (and its statement count) and through the ORM."""
    with CaptureQueriesContext(connection) as ctx:
        prepared = refresh._grant_read(presented=presented)
    with monkeypatch.context() as m:
        m.setattr(statements, "available", lambda: False)
        orm = refresh._grant_read(presented=presented)
    return _described(prepared), _described(orm), len(ctx.captured_queries)


@pytest.fixture
def presented(adapter, tv_client, browser_client, accounts) -> str:
    code = link(browser_client, tv_client, [a.pk for a in accounts])
    body = exchange(tv_client, code).json()
    return token_hash(body["refresh_token"])


def test_a_grant_with_its_accounts_loads_as_the_orm_loads_it(monkeypatch, presented, accounts):
    prepared, orm, statements_made = _both(monkeypatch, presented)
    assert prepared == orm
    assert len(prepared[4]) == len(accounts)
    assert statements_made == 1


def test_an_account_moved_to_another_ctid_or_without_a_broker_entity_loads_as_the_orm_loads_it(
    monkeypatch, presented, accounts, trader
):
    moved, without_entity = accounts
    moved.ctid = Ctid.objects.create(user_id=424242, trader=trader)
    moved.save(update_fields=["ctid"])
    without_entity.jurisdiction = None
    without_entity.save(update_fields=["jurisdiction"])
    prepared, orm, statements_made = _both(monkeypatch, presented)
    assert prepared == orm
    # The moved account is not the grant's any more; the other one comes without a broker entity.
    assert [(entry[0][1], entry[2]) for entry in prepared[4]] == [(without_entity.pk, None)]
    assert statements_made == 1


def test_a_grant_left_without_accounts_loads_in_one_statement_as_the_orm_loads_it_in_two(
    monkeypatch, presented
):
    Grant.accounts.through.objects.filter(grant__refresh_token_hash=presented).delete()
    prepared, orm, statements_made = _both(monkeypatch, presented)
    assert prepared == orm
    assert prepared[4] == []
    assert statements_made == 1


def test_an_unknown_refresh_token_finds_nothing(monkeypatch, presented):
    prepared, orm, _ = _both(monkeypatch, token_hash("not a refresh token"))
    assert prepared == orm == (None, [])


@pytest.mark.parametrize("adapter_mode", ["", "500"])
def test_a_refresh_through_the_orm_stores_what_the_statements_store(
    monkeypatch, adapter, tv_client, presented, accounts, adapter_mode
):
    """Databases other than PostgreSQL read and write the refresh through the ORM: the same grants, accounts and
    audit records, and the refresh token handed back works on either path."""
    from accounts.models import AuditEvent
    from tests.helpers.tradingview import token_post

    old = Grant.objects.get(refresh_token_hash=presented)
    adapter.sim.mode = adapter_mode
    data = {"grant_type": "refresh_token", "client_secret": tv_client.secret}
    with monkeypatch.context() as m:
        m.setattr(statements, "available", lambda: False)
        # The fixture keeps only the refresh token's hash: give the grant one whose token this test knows.
        old.refresh_token_hash = token_hash("refresh-through-the-orm")
        old.save(update_fields=["refresh_token_hash"])
        response = token_post({**data, "refresh_token": "refresh-through-the-orm"})
    assert response.status_code == 200, response.content
    new = Grant.objects.get(state=Grant.State.ACTIVE)
    old.refresh_from_db()
    assert old.superseded_by_id == new.pk
    assert sorted(new.accounts.values_list("pk", flat=True)) == sorted(a.pk for a in accounts)
    assert new.degraded == (adapter_mode == "500")
    record = AuditEvent.objects.get(action="refreshed")
    assert record.detail["grant"] == new.pk
    assert record.outcome == ("degraded" if adapter_mode else "ok")
    adapter.sim.mode = ""
    again = token_post({**data, "refresh_token": response.json()["refresh_token"]})
    assert again.status_code == 200, again.content
