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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

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


def _preparing_cursor_class() -> type:
    import psycopg

    class PreparingCursor(psycopg.Cursor[Any]):
        def execute(
            self, query: Any, params: Any = None, *, prepare: bool | None = None, **kwargs: Any
        ) -> Any:
            return super().execute(query, params, prepare=True if prepare is None else prepare, **kwargs)

    return PreparingCursor


_cursor_class: type | None = None


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
        wrapped = db.make_debug_cursor(own) if db.queries_logged else db.make_cursor(own)
    with wrapped:
        yield wrapped
