"""A cursor for hot hand-written statements that PostgreSQL parses and plans once per connection.

Django sends every statement as text with its values inlined, so PostgreSQL parses and plans it again on each
request; for a few fixed statements run on every request of a hot path (the TradingView link's reads and
writes, the Open API token refresh's claim and write) that is most of their database CPU. Through this cursor
they are sent with their values apart and prepared on the first run in each connection (psycopg names and
caches them), then only executed. A statement run through it must have a fixed text: values always go in
parameters, never in the SQL.

The cursor is Django's wrapper around it, so query logging, ``execute_wrapper`` hooks and error translation
see these statements as they see any other. Other databases get Django's ordinary cursor.

Prepared statements live in the database session. A pooler in front of PostgreSQL must keep them with the
connection: PgBouncer in transaction mode needs ``max_prepared_statements`` (1.21 or later). Setting
``"prepare_threshold": None`` in the database ``OPTIONS`` turns them off here too.

A migration that changes the type of a column a prepared statement returns (a longer ``max_length``) makes
PostgreSQL refuse that statement for the rest of the session. The cursor then has psycopg forget the session's
prepared statements and, outside a transaction, runs the statement again at once; inside one the transaction
has failed, and its rollback leaves the next run to prepare afresh. Statements deallocated behind psycopg's
back (a pooler's reset, an operator's ``DEALLOCATE ALL``) are prepared again the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import QuerySet

logger = logging.getLogger(__name__)

# Other cursors on the connection (the ORM's bind values client-side and never prepare) are unaffected: only
# a statement this module runs asks for preparation, and no statement runs this often on its own.
_AUTOMATIC_THRESHOLD = 2**31


def _enabled(db: BaseDatabaseWrapper) -> bool:
    if db.vendor != "postgresql":
        return False
    options = db.settings_dict.get("OPTIONS", {})
    return not ("prepare_threshold" in options and options["prepare_threshold"] is None)


def enabled() -> bool:
    """Whether ``cursor`` prepares its statements (PostgreSQL, unless turned off in ``OPTIONS``)."""
    return _enabled(connections[DEFAULT_DB_ALIAS])


# PostgreSQL's answer to a prepared statement whose result columns changed type since it was prepared (a
# migration gave a column a longer ``max_length``, say), "cached plan must not change result type": it refuses
# the statement for as long as the session lives, and psycopg keeps sending it by the same name. Told apart
# from other FeatureNotSupported errors by the server function raising it (its message may be translated).
# (Statements deallocated behind psycopg's back, by a pooler's reset or an operator, fail by their name in the
# same way: InvalidSqlStatementName.)
_STALE_PLAN_ROUTINE = "RevalidateCachedQuery"


def _forget_prepared(connection: Any) -> bool:
    """Have psycopg forget every statement ``connection`` prepared (to prepare each again on its next run), as
    it does itself after a rollback; False if this psycopg cannot."""
    manager = getattr(connection, "_prepared", None)
    clear = getattr(manager, "clear", None)
    if clear is None:
        return False
    clear()
    return True


def _preparing_cursor_class() -> type:
    import psycopg
    from psycopg import pq

    class PreparingCursor(psycopg.Cursor[Any]):
        def execute(
            self, query: Any, params: Any = None, *, prepare: bool | None = None, **kwargs: Any
        ) -> Any:
            prepare = True if prepare is None else prepare
            try:
                return super().execute(query, params, prepare=prepare, **kwargs)
            except (psycopg.errors.FeatureNotSupported, psycopg.errors.InvalidSqlStatementName) as exc:
                # In a transaction the failure has aborted it, and its rollback makes psycopg forget the
                # prepared statements. Outside one nothing was done: forget them now and run this one again.
                if (
                    (
                        isinstance(exc, psycopg.errors.FeatureNotSupported)
                        and exc.diag.source_function != _STALE_PLAN_ROUTINE
                    )
                    or self.connection.info.transaction_status != pq.TransactionStatus.IDLE
                    or not _forget_prepared(self.connection)
                ):
                    raise
                super().execute("DEALLOCATE ALL", prepare=False)
                logger.info("prepared statements renewed", extra={"reason": type(exc).__name__})
                return super().execute(query, params, prepare=prepare, **kwargs)

    return PreparingCursor


_cursor_class: type | None = None


class _LoggedCursor(CursorDebugWrapper):
    """Django's query log (``CaptureQueriesContext``, ``connection.queries``) for these statements: psycopg keeps
    no text of a statement it runs prepared, so the log gets the statement as written, its values apart."""

    def execute(self, sql: Any, params: Any = None) -> Any:
        with self.debug_sql(sql, params):
            return CursorWrapper.execute(self, sql, params)


@contextmanager
def cursor() -> Iterator[CursorWrapper]:
    """A cursor whose statements are prepared (PostgreSQL), else Django's cursor."""
    global _cursor_class
    # The connection itself, not ``django.db.connection``: that proxy looks it up again on every attribute.
    db = connections[DEFAULT_DB_ALIAS]
    if not _enabled(db):
        with db.cursor() as plain:
            yield plain
        return
    # What ``connection.cursor()`` does, with a server-binding cursor in place of Django's client-binding one.
    db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        raw = db.connection
        if raw.prepare_threshold is None:
            raw.prepare_threshold = _AUTOMATIC_THRESHOLD
        if _cursor_class is None:
            _cursor_class = _preparing_cursor_class()
        db.validate_thread_sharing()
        own = _cursor_class(raw)
        wrapped = _LoggedCursor(own, db) if db.queries_logged else db.make_cursor(own)
    with wrapped:
        yield wrapped


def bigint_array(values: Iterable[int]) -> str:
    """``values`` as a PostgreSQL array literal, for a ``%s::bigint[]`` parameter: sent as text and cast by the
    server, it costs what a string parameter does, where a Python list goes through psycopg's list dumper,
    written in Python (about 30 µs of the web process a statement). Every item is made an ``int`` first, so
    nothing but digits and minus signs reaches the literal."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


# A value no query of ours compares with: it marks where the varying value goes in a compiled query's parameters.
# Negative (no id is) and within a 32-bit integer (Django finds nothing, without SQL, for a value out of a
# column's range).
_MARK = -1_987_654_321


class CompiledQuery:
    """A ``values_list`` queryset of one varying value (a user's or a trader's id), compiled to SQL once per
    process and then run through ``cursor``: each request pays neither Django's query building and SQL
    compilation nor PostgreSQL's planning, only the execution.

    ``build(value)`` returns the queryset for ``value``; it must give the same SQL for every value, with
    ``value`` only in the parameters (any filter on it does). The rows are the tuples the queryset itself
    yields (a slice of them with ``limit`` and ``offset``; ``count`` counts them): should a column need one of
    Django's converters, or the database not prepare statements, the queryset runs as it is.
    """

    def __init__(self, build: Callable[[int], QuerySet[Any]]) -> None:
        self._build = build
        # alias -> (sql, count sql, parameters, positions of the varying value in them), or None: run the
        # queryset.
        self._compiled: dict[str, tuple[str, str, tuple[Any, ...], tuple[int, ...]] | None] = {}

    def _compile(self, alias: str) -> tuple[str, str, tuple[Any, ...], tuple[int, ...]] | None:
        queryset = self._build(_MARK)
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        fields = [column for column, _, _ in compiler.select[: compiler.col_count]]
        if compiler.get_converters(fields):
            return None
        positions = tuple(i for i, param in enumerate(params) if param == _MARK)
        if not positions:
            raise ValueError("the compiled query does not take its varying value as a parameter")
        unordered, unordered_params = queryset.order_by().query.get_compiler(using=alias).as_sql()
        if tuple(unordered_params) != tuple(params):
            raise ValueError("the compiled query's ordering takes parameters")
        counted = f"SELECT count(*) FROM ({unordered}) AS counted"  # noqa: S608 - Django's SQL, values apart
        return sql, counted, tuple(params), positions

    def _statement(self) -> tuple[str, str, list[Any], tuple[int, ...]] | None:
        db = connections[DEFAULT_DB_ALIAS]
        if not _enabled(db):
            return None
        if db.alias not in self._compiled:
            self._compiled[db.alias] = self._compile(db.alias)
        compiled = self._compiled[db.alias]
        if compiled is None:
            return None
        sql, count_sql, params, positions = compiled
        return sql, count_sql, list(params), positions

    def rows(self, value: int, *, limit: int | None = None, offset: int = 0) -> list[tuple[Any, ...]]:
        """The rows for ``value``; with ``limit``, ``limit`` of them after the first ``offset``."""
        statement = self._statement()
        if statement is None:
            queryset = self._build(value)
            return list(queryset[offset : offset + limit] if limit is not None else queryset[offset:])
        sql, _count_sql, values, positions = statement
        for position in positions:
            values[position] = value
        if limit is not None or offset:
            # Its own prepared statement, the limit and the offset as parameters like the value.
            sql += " LIMIT %s OFFSET %s"
            values += [limit, offset]
        with cursor() as prepared_cursor:
            prepared_cursor.execute(sql, values)
            return prepared_cursor.fetchall()

    def count(self, value: int) -> int:
        """How many rows there are for ``value``."""
        statement = self._statement()
        if statement is None:
            return self._build(value).count()
        _sql, count_sql, values, positions = statement
        for position in positions:
            values[position] = value
        with cursor() as prepared_cursor:
            prepared_cursor.execute(count_sql, values)
            return int(prepared_cursor.fetchone()[0])
