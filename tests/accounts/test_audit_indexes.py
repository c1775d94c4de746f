"""The audit table's indexes: the token throttle's partial index is built without blocking the table's writes."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_token_failure_index_is_built_without_blocking_writes():
    # Every sign-in and link writes audit records: a plain CREATE INDEX would hold them for the whole build.
    out = StringIO()
    call_command("sqlmigrate", "accounts", "0011", stdout=out)
    sql = out.getvalue()
    assert 'CREATE INDEX CONCURRENTLY "audit_token_failures"' in sql
    assert "BEGIN;" not in sql  # CONCURRENTLY cannot run inside a transaction
