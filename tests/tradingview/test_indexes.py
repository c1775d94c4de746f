"""The indexes every link and refresh updates: each one serves a query, none is a second copy of another."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import AuditEvent
from tests.helpers.plans import generic_plan, scans_of
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
            "(refresh_token_hash)",
            "(consent_key)",
            # Partial: the grants the sweeps look for, never the active ones a link or a refresh writes.
            "(state) WHERE (NOT ((state)::text = 'active'::text))",
            "(id) WHERE ((refresh_token_hash IS NULL) AND ((state)::text = 'active'::text))",
            # Partial: the grants waiting for their /logout, never those a link or a refresh writes.
            "(revoke_after) WHERE ((state)::text = 'revoking'::text)",
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


def test_the_code_exchange_reads_its_grant_by_primary_key_whatever_the_tables_hold():
    # A connection keeps the plan it made while the grant table was small: reaching the grant through an index
    # on its state would then read every active grant on each exchange as the table grows.
    from tradingview.services.statements import _code_take_statement

    statement, _audit_values = _code_take_statement()
    plan = generic_plan(statement)
    grant_reads = scans_of(plan, "tradingview_grant")
    assert grant_reads
    assert all("tradingview_grant_pkey" in line for line in grant_reads), plan
    assert all("Index Scan" in line for line in scans_of(plan, "tradingview_authorizationcode")), plan
    # The address's failed client authentications: every link and sign-in adds audit records, so a scan of
    # the audit table would grow with them; only the throttle's partial index is read.
    audit_reads = scans_of(plan, "accounts_auditevent")
    assert audit_reads, plan
    assert all("audit_token_failures" in line for line in audit_reads), plan


@pytest.mark.parametrize("claiming", [False, True], ids=["read", "read-and-claim"])
def test_the_consent_recheck_reads_by_keys_whatever_the_tables_hold(claiming):
    # The consent's one narrow query: the chosen accounts, the client and an earlier submission's grant; and,
    # as the consent runs it, the form's claim in the same statement.
    from datetime import UTC, datetime
    from unittest import mock

    from tradingview import selectors

    captured: dict[str, str] = {}

    class Capture:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, statement, params):
            captured["statement"] = statement

        def fetchall(self):
            return []

    with (
        mock.patch.object(selectors.prepared, "cursor", Capture),
        mock.patch.object(selectors.prepared, "enabled", return_value=True),
    ):
        selectors.consent_recheck(
            trader=mock.Mock(pk=1),
            ctid_id=1,
            account_ids=[1, 2],
            client_pk=1,
            redirect_uri="u",
            consent_key="k",
            claim_until=datetime(2030, 1, 1, tzinfo=UTC) if claiming else None,
        )
    plan = generic_plan(captured["statement"])
    assert ("Insert on tradingview_consentclaim" in plan) is claiming, plan
    for table in ("tradingview_grant", "accounts_tradingaccount", "accounts_ctid", "accounts_jurisdiction"):
        reads = scans_of(plan, table)
        assert reads, (table, plan)
        assert all("Index Scan" in line or "Index Only Scan" in line for line in reads), plan


def test_the_grant_account_table_keeps_only_the_indexes_its_queries_read():
    # One row per account on every link and refresh: the unique pair (which serves the lookups by grant) and
    # the account, no third index on the grant alone.
    columns = sorted(
        definition.split(" USING btree ", 1)[1]
        for definition in _indexes(Grant.accounts.through._meta.db_table).values()
    )
    assert columns == ["(grant_id, tradingaccount_id)", "(id)", "(tradingaccount_id)"]


def test_the_logout_sweep_reads_the_revoking_grants_in_order_from_their_index():
    # The partial index holds only the revoking grants, by revocation time: the sweep reads the first ones due
    # from it, without sorting.
    from django.test.utils import CaptureQueriesContext

    from tradingview.selectors import grants_due_for_logout

    with CaptureQueriesContext(connection) as queries:
        grants_due_for_logout()
    (query,) = queries.captured_queries
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {query['sql']}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "tv_grant_logout_due" in plan, plan
    assert "Sort" not in plan, plan
