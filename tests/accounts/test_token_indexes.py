"""The Open API token table carries only the indexes its queries use: every refresh rewrites the row (new
pair, new expiry), and each index on it is one more write in the refresh's durable round trip."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import CtidToken

pytestmark = pytest.mark.django_db


def _index_definitions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [CtidToken._meta.db_table])
        return sorted(definition.split(" USING btree ", 1)[1] for (definition,) in cursor.fetchall())


def test_the_token_table_indexes_are_the_ones_its_queries_use():
    assert _index_definitions() == sorted(
        [
            "(id)",  # the primary key
            "(ctid_id)",  # one token per cTID (and the claim's and the write's WHERE)
            # The sweep's "due" query: active tokens by expiry. Tokens that need a reconnect or were revoked
            # are few and listed by staff by state.
            "(expires_at) WHERE ((state)::text = 'active'::text)",
            "(state) WHERE (NOT ((state)::text = 'active'::text))",
        ]
    )


def test_the_sweep_finds_due_tokens_through_the_partial_index():
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            f"EXPLAIN SELECT ctid_id FROM {CtidToken._meta.db_table} "
            "WHERE state = 'active' AND expires_at <= now()"
        )
        plan = "\n".join(row for (row,) in cursor.fetchall())
    assert "ctidtoken_active_expiry" in plan


@pytest.mark.parametrize("any_version", [False, True])
@pytest.mark.parametrize(("by_version", "by_due", "not_recent"), [(True, False, False), (False, True, True)])
def test_the_refresh_statements_find_the_token_by_its_keys_whatever_the_table_holds(
    by_version, by_due, not_recent, any_version
):
    # Prepared once per connection, their plans are kept: made on an almost empty table, they must still
    # reach the one token by its cTID or its primary key, never by scanning.
    from accounts.services.tokens import _claim_sql, _store_sql
    from tests.helpers.plans import generic_plan, scans_of

    for statement, index in (
        (_claim_sql("postgresql", by_version, by_due, not_recent), "accounts_ctidtoken_ctid_id_key"),
        (_store_sql("postgresql", any_version), "accounts_ctidtoken_pkey"),
    ):
        reads = scans_of(generic_plan(statement), CtidToken._meta.db_table)
        assert reads
        assert all(f"Index Scan using {index}" in line for line in reads), reads
