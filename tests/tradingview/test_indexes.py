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
        definition.split("(", 1)[1].rstrip(")") for definition in _indexes(Grant._meta.db_table).values()
    )
    assert columns == sorted(
        [
            "id",
            "client_id",
            "trader_id",
            "ctid_id",
            "superseded_by_id",
            "state",
            "revoke_after",
            "refresh_token_hash",
            "consent_key",
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
