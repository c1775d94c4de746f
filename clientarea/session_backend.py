"""Sessions in the database (Django's ``db`` engine), read through one prepared statement.

Every signed-in request reads its session first. Django's engine builds, compiles and sends that query as text
on each request, and PostgreSQL plans it each time; here it is a fixed statement prepared once per connection
(``clientarea.prepared``), with the same condition: the key, and an expiry still ahead. Writing, creating and
deleting sessions are Django's. Without prepared statements (another database, or
``DATABASE_PREPARED_STATEMENTS=0``) the read is Django's too.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.sessions.backends import db
from django.db import connections
from django.db.models import Model
from django.utils import timezone

from clientarea import prepared


@functools.cache
def _statement(model: type[Model], alias: str) -> str:
    quote = connections[alias].ops.quote_name
    # Names from the model's metadata; the key and the time are parameters.
    return (
        f"SELECT {quote('session_data')}, {quote('expire_date')} FROM {quote(model._meta.db_table)}"  # noqa: S608
        f" WHERE {quote('session_key')} = %s AND {quote('expire_date')} > %s"
    )


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Any:
        key = self.session_key
        if key is None or not prepared.enabled():
            return super()._get_session_from_db()  # type: ignore[misc]
        with prepared.cursor() as cursor:
            cursor.execute(_statement(self.model, cursor.db.alias), [key, timezone.now()])
            row = cursor.fetchone()
        if row is None:
            # As Django's engine does: an unknown or expired key is dropped, and a new one made when needed.
            self._session_key = None
            return None
        return self.model(session_key=key, session_data=row[0], expire_date=row[1])
