"""Operators behind a pooler that cannot keep prepared statements turn them off with one variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Runs one statement through the preparing cursor, then counts the statements the session holds prepared.
PROBE = """
import django
django.setup()
from django.db import connection
from clientarea import prepared
with prepared.cursor() as cursor:
    cursor.execute("SELECT 1 WHERE %s = %s", [1, 1])
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql")
    print(prepared.enabled(), cursor.fetchone()[0])
"""


def _probe(**env: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "clientarea.settings", "LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.split()[-2] + " " + run.stdout.split()[-1]


@pytest.mark.skipif("postgres" not in os.environ.get("DATABASE_URL", ""), reason="needs PostgreSQL")
def test_prepared_statements_are_on_by_default_and_off_with_the_variable():
    assert _probe() == "True 1"
    assert _probe(DATABASE_PREPARED_STATEMENTS="0") == "False 0"


PREPARED_COUNT = "SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql"
needs_postgres = pytest.mark.skipif(
    "postgres" not in os.environ.get("DATABASE_URL", ""), reason="needs PostgreSQL"
)


def _jurisdictions(jurisdiction_id: int):  # type: ignore[no-untyped-def]
    from accounts.models import Jurisdiction

    return (
        Jurisdiction.objects.filter(pk__gte=jurisdiction_id, broker_name__startswith="CQ-")
        .order_by("pk")
        .values_list("pk", "broker_name", "tradingview_enabled", "margin_call_level")
    )


@needs_postgres
@pytest.mark.django_db
def test_a_compiled_query_gives_the_rows_of_its_queryset_from_one_prepared_statement():
    from decimal import Decimal

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from clientarea import prepared
    from tests.factories import JurisdictionFactory

    first = JurisdictionFactory(broker_name="CQ-A", margin_call_level=Decimal("80.5"))
    second = JurisdictionFactory(broker_name="CQ-B", tradingview_enabled=False)
    query = prepared.CompiledQuery(_jurisdictions)
    with connection.cursor() as cursor:
        cursor.execute(PREPARED_COUNT)
        before = cursor.fetchone()[0]
    with CaptureQueriesContext(connection) as captured:
        for start in (first.pk, second.pk, first.pk):
            assert query.rows(start) == list(_jurisdictions(start))
    assert len(captured) == 6  # three through the compiled query, three through the queryset
    # The query log shows the prepared statement as written (psycopg keeps no text of it).
    assert all('FROM "accounts_jurisdiction"' in query["sql"] for query in captured)
    assert query.rows(second.pk) == [(second.pk, "CQ-B", False, None)]
    with connection.cursor() as cursor:
        cursor.execute(PREPARED_COUNT)
        assert cursor.fetchone()[0] == before + 1  # prepared on its first run, then only executed


@pytest.mark.django_db
def test_a_compiled_query_runs_its_queryset_when_statements_are_not_prepared(settings, monkeypatch):
    from django.db import connections

    from clientarea import prepared
    from tests.factories import JurisdictionFactory

    jurisdiction = JurisdictionFactory(broker_name="CQ-C")
    monkeypatch.setitem(connections["default"].settings_dict["OPTIONS"], "prepare_threshold", None)
    built: list[int] = []

    def build(value: int):  # type: ignore[no-untyped-def]
        built.append(value)
        return _jurisdictions(value)

    query = prepared.CompiledQuery(build)
    assert query.rows(jurisdiction.pk) == list(_jurisdictions(jurisdiction.pk))
    assert query.rows(jurisdiction.pk)[0][1] == "CQ-C"
    assert built == [jurisdiction.pk, jurisdiction.pk]  # the queryset itself, every time


@needs_postgres
@pytest.mark.django_db
def test_a_compiled_query_leaves_columns_that_need_a_converter_to_the_queryset():
    from django.db.models import F

    from accounts.models import CtidJob, Jurisdiction
    from clientarea import prepared
    from tests.factories import JurisdictionFactory

    jurisdiction = JurisdictionFactory(broker_name="CQ-D")
    built: list[int] = []

    def encrypted(value: int):  # type: ignore[no-untyped-def]
        built.append(value)
        return CtidJob.objects.filter(trader_id=value).values_list("access_token")  # decrypted by its field

    def computed(value: int):  # type: ignore[no-untyped-def]
        built.append(value)
        return Jurisdiction.objects.filter(pk=value).values_list(F("pk") + 1)  # made an int by Django

    query = prepared.CompiledQuery(encrypted)
    assert query.rows(1) == []
    assert query.rows(2) == []
    assert built[1:] == [1, 2]  # compiled once to see the converter, then the queryset each time
    assert prepared.CompiledQuery(computed).rows(jurisdiction.pk) == [(jurisdiction.pk + 1,)]


@needs_postgres
@pytest.mark.django_db
def test_a_compiled_query_must_take_its_value_as_a_parameter():
    from accounts.models import Jurisdiction
    from clientarea import prepared

    query = prepared.CompiledQuery(lambda value: Jurisdiction.objects.values_list("pk"))
    with pytest.raises(ValueError, match="varying value"):
        query.rows(1)


@pytest.mark.django_db
@pytest.mark.parametrize("prepare", [True, False], ids=["prepared", "not-prepared"])
def test_a_compiled_query_counts_and_slices_as_its_queryset_does(monkeypatch, prepare):
    from django.db import connections

    from clientarea import prepared
    from tests.factories import JurisdictionFactory

    made = [JurisdictionFactory(broker_name=f"CQ-S{i}") for i in range(5)]
    if not prepare:
        monkeypatch.setitem(connections["default"].settings_dict["OPTIONS"], "prepare_threshold", None)
    query = prepared.CompiledQuery(_jurisdictions)
    start = made[0].pk
    everything = list(_jurisdictions(start))
    assert len(everything) == 5
    assert query.count(start) == 5
    assert query.count(made[3].pk) == 2
    assert query.rows(start, limit=2) == everything[:2]
    assert query.rows(start, limit=2, offset=2) == everything[2:4]
    assert query.rows(start, limit=10, offset=4) == everything[4:]
    assert query.rows(start, limit=0) == []
    assert query.rows(start) == everything


def _alter(sql: str) -> None:
    """Run a schema change from a connection of its own, as a deploy's migration does beside running processes."""
    import psycopg
    from django.db import connection

    params = connection.settings_dict
    with psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"] or None,
        password=params["PASSWORD"] or None,
        host=params["HOST"] or None,
        port=params["PORT"] or None,
        autocommit=True,
        connect_timeout=10,
    ) as other:
        other.execute(sql)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_prepared_statement_survives_a_migration_that_changes_the_type_of_a_column_it_returns():
    # A longer max_length is the everyday case: PostgreSQL then refuses to run the statement prepared before
    # ("cached plan must not change result type"), on this connection for as long as it lives.
    from accounts.models import Jurisdiction
    from clientarea import prepared
    from tests.factories import JurisdictionFactory

    jurisdiction = JurisdictionFactory(broker_name="CQ-M")
    query = prepared.CompiledQuery(_jurisdictions)
    assert query.rows(jurisdiction.pk) == list(_jurisdictions(jurisdiction.pk))

    def other_statement() -> tuple[object, ...]:
        with prepared.cursor() as cursor:
            cursor.execute("SELECT %s::integer + 1", [41])
            return tuple(cursor.fetchone())

    assert other_statement() == (42,)
    length = Jurisdiction._meta.get_field("broker_name").max_length
    table = Jurisdiction._meta.db_table
    _alter(f"ALTER TABLE {table} ALTER COLUMN broker_name TYPE varchar({length + 40})")
    try:
        assert query.rows(jurisdiction.pk) == list(_jurisdictions(jurisdiction.pk))
        assert query.rows(jurisdiction.pk) == list(_jurisdictions(jurisdiction.pk))
        # The connection's other statements, prepared before, are prepared again as they run.
        assert other_statement() == (42,)
    finally:
        _alter(f"ALTER TABLE {table} ALTER COLUMN broker_name TYPE varchar({length})")
    assert query.rows(jurisdiction.pk) == list(_jurisdictions(jurisdiction.pk))


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_in_a_transaction_a_statement_whose_columns_changed_fails_once_then_is_prepared_afresh():
    # The transaction's rollback has psycopg forget its prepared statements: the next run prepares afresh.
    from django.db import NotSupportedError, connection, transaction

    from clientarea import prepared

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE prepared_probe (id integer PRIMARY KEY, name varchar(20) NOT NULL)")
        cursor.execute("INSERT INTO prepared_probe VALUES (1, 'first')")
    try:

        def read() -> tuple[object, ...]:
            with prepared.cursor() as cursor:
                cursor.execute("SELECT name FROM prepared_probe WHERE id = %s", [1])
                return tuple(cursor.fetchone())

        assert read() == ("first",)
        _alter("ALTER TABLE prepared_probe ALTER COLUMN name TYPE text")
        # The failure aborts the transaction it happens in: nothing can run again in it.
        with pytest.raises(NotSupportedError), transaction.atomic():
            read()
        assert read() == ("first",)
        with transaction.atomic():
            assert read() == ("first",)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE prepared_probe")


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_statements_deallocated_behind_psycopgs_back_are_prepared_again():
    # A pooler's reset or an operator's DEALLOCATE ALL empties the session's statements while psycopg still
    # holds their names.
    from django.db import connection

    from clientarea import prepared

    def read() -> tuple[object, ...]:
        with prepared.cursor() as cursor:
            cursor.execute("SELECT %s::integer * 2", [21])
            return tuple(cursor.fetchone())

    assert read() == (42,)
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    assert read() == (42,)
    assert read() == (42,)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_other_unsupported_statements_fail_as_they_are_and_leave_the_prepared_ones():
    from django.db import NotSupportedError, connection

    from clientarea import prepared

    with prepared.cursor() as cursor:
        cursor.execute("SELECT %s::integer - 1", [43])
        assert cursor.fetchone() == (42,)
    with connection.cursor() as cursor:
        cursor.execute(PREPARED_COUNT)
        before = cursor.fetchone()[0]
    with pytest.raises(NotSupportedError, match="FOR UPDATE"), prepared.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations WHERE id > %s FOR UPDATE", [0])
    with connection.cursor() as cursor:
        cursor.execute(PREPARED_COUNT)
        assert cursor.fetchone()[0] == before


@needs_postgres
@pytest.mark.django_db
def test_an_id_array_goes_as_an_array_literal_that_holds_nothing_but_integers():
    from clientarea import prepared

    assert prepared.bigint_array([3, 1, 2]) == "{3,1,2}"
    assert prepared.bigint_array([]) == "{}"
    assert prepared.bigint_array([True, 7]) == "{1,7}"
    with pytest.raises(ValueError, match="invalid literal for int"):
        prepared.bigint_array(["1}, {2"])
    with prepared.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(i ORDER BY i) FROM unnest(%s::bigint[]) AS i",
            [prepared.bigint_array([9_000_000_000_002, 5])],
        )
        assert cursor.fetchone()[0] == [5, 9_000_000_000_002]
