"""No index of the project's tables repeats the leading columns of another: each would only add to every write."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection

pytestmark = pytest.mark.django_db

# The project's own apps (Django's and third parties' tables are theirs to index).
OWN_APPS = ("accounts", "tradingview", "branding", "preferences", "twofactor", "notifications", "clientarea")


def _own_tables() -> set[str]:
    return {
        model._meta.db_table
        for label in OWN_APPS
        if apps.is_installed(label)
        for model in apps.get_app_config(label).get_models(include_auto_created=True)
        if model._meta.managed
    }


def _btree_indexes() -> list[tuple[str, str, bool, bool, list[tuple[int, int, int]]]]:
    """(table, index, unique, plain, [(column, operator class, collation)]) of every btree index; ``plain``:
    neither partial nor on expressions."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.relname, c.relname, i.indisunique, i.indpred IS NULL AND i.indexprs IS NULL,"
            " i.indkey::int[], i.indclass::oid[]::int[], i.indcollation::oid[]::int[]"
            " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
            " JOIN pg_am am ON am.oid = c.relam JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = current_schema() AND am.amname = 'btree'"
        )
        return [
            (table, index, unique, plain, list(zip(keys, classes, collations, strict=True)))
            for table, index, unique, plain, keys, classes, collations in cursor.fetchall()
        ]


def test_no_index_repeats_the_leading_columns_of_another():
    if connection.vendor != "postgresql":
        pytest.skip("reads PostgreSQL's catalog")
    own = _own_tables()
    indexes = [entry for entry in _btree_indexes() if entry[0] in own]
    assert len(indexes) > 20
    redundant = sorted(
        (table, index, f"covered by {other}")
        for table, index, unique, plain, columns in indexes
        if plain and not unique
        for other_table, other, _other_unique, other_plain, other_columns in indexes
        if other_table == table
        and other != index
        and other_plain
        and other_columns[: len(columns)] == columns
    )
    assert redundant == []
