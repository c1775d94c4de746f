"""PostgreSQL deadlines that depend on the kind of process.

Web processes (the WSGI application) put a ``statement_timeout`` on each new connection, so one slow query
cannot hold a web worker; workers, beat and the gateway keep PostgreSQL's default for their batch work.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

_web_process = False


def mark_web_process() -> None:
    global _web_process
    _web_process = True


def on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    if not _web_process or connection.vendor != "postgresql":
        return
    timeout = int(settings.DATABASE_WEB_STATEMENT_TIMEOUT_MS)
    if timeout > 0:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{timeout}ms"])
