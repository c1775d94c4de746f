"""The indexes every link and refresh updates: each one serves a query, none is a second copy of another."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import AuditEvent
from tradingview.models import AuthorizationCode, Grant

pytestmark = pytest.mark.django_db


def _indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cursor.fetchall())


@pytest.mark.parametrize("model", [Grant, AuthorizationCode, AuditEvent])
def test_no_pattern_index_on_columns_compared_by_equality(model):
    # Token hashes, consent keys, states and audit categories are never matched with LIKE: an index with
    # varchar_pattern_ops would only add to every write.
    indexes = _indexes(model._meta.db_table)
    assert indexes
    assert [name for name, definition in indexes.items() if "pattern_ops" in definition] == []


def test_grant_indexes_are_the_ones_its_queries_use():
    columns = sorted(
        definition.split(" USING btree ", 1)[1] for definition in _indexes(Grant._meta.db_table).values()
    )
    assert columns == sorted(
        [
            "(id)",
            "(client_id)",
            "(trader_id)",
            "(ctid_id)",
            "(superseded_by_id)",
            "(revoke_after)",
            "(refresh_token_hash)",
            "(consent_key)",
            # Partial: the grants the sweeps look for, never the active ones a link or a refresh writes.
            "(state) WHERE (NOT ((state)::text = 'active'::text))",
            "(id) WHERE ((refresh_token_hash IS NULL) AND ((state)::text = 'active'::text))",
        ]
    )


def test_token_hashes_and_consent_keys_stay_unique():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'u' AND conrelid IN "
            "(%s::regclass, %s::regclass)",
            [Grant._meta.db_table, AuthorizationCode._meta.db_table],
        )
        unique = sorted(definition for (definition,) in cursor.fetchall())
    assert unique == sorted(
        [
            "UNIQUE (code_hash)",
            "UNIQUE (consent_key)",
            "UNIQUE (refresh_token_hash)",
            "UNIQUE (superseded_by_id)",
        ]
    )


def _generic_plan(statement: str) -> str:
    """The plan PostgreSQL keeps for ``statement`` once it plans it for any parameter (as a statement prepared
    once per connection is, after its first runs), on this test database's almost empty tables."""
    parts = statement.split("%s")
    numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE generic_plan_check AS {numbered}")
        try:
            cursor.execute(f"EXPLAIN EXECUTE generic_plan_check({', '.join(['NULL'] * (len(parts) - 1))})")
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE generic_plan_check")


def test_the_code_exchange_reads_its_grant_by_primary_key_whatever_the_tables_hold():
    # A connection keeps the plan it made while the grant table was small: reaching the grant through an index
    # on its state would then read every active grant on each exchange as the table grows.
    from tradingview.services.statements import _code_take_statement

    statement, _audit_values = _code_take_statement()
    plan = _generic_plan(statement)
    grant_reads = [
        line.strip() for line in plan.splitlines() if "Scan" in line and "on tradingview_grant " in line
    ]
    assert grant_reads
    assert all("tradingview_grant_pkey" in line for line in grant_reads), plan
