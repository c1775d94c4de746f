"""The link's and the refresh grant's writes as single PostgreSQL statements: one round trip each, atomic on
their own, prepared once per connection (``clientarea.prepared``).

A consent stores its grant, the grant's accounts, the first code and the audit record in one statement whose
parts all hang on the grant's INSERT (``ON CONFLICT (consent_key) DO NOTHING``: a form already stored stores
nothing). A code exchange takes the code with one ``UPDATE ... WHERE used_at IS NULL ... RETURNING`` that
also checks the client, the code and the grant, stores the grant's refresh token hash, appends the audit
record and reads the grant's adapter token. A refresh inserts its new grant with the grant's accounts in one
statement, and its audit record in another. Values are prepared by the models' own fields (encryption, JSON,
dates), so the rows are those the ORM would write.

Only PostgreSQL runs these (``available``); elsewhere the services write through the ORM in a transaction (the
refresh's two inserts do so themselves).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.services.audit import audit_event_new
from clientarea import prepared

from ..models import (
    AUDIT_CATEGORY,
    CLIENT_SECRET_ALGORITHM,
    AuthorizationCode,
    Grant,
    OAuthClient,
    token_hash,
)
from ..throttle import ACTION as THROTTLE_ACTION
from ..throttle import AUDIT_CATEGORY as THROTTLE_CATEGORY
from ..throttle import OUTCOME as THROTTLE_OUTCOME


def available() -> bool:
    return connection.vendor == "postgresql"


def _db() -> BaseDatabaseWrapper:
    # The connection itself: ``django.db.connection`` looks it up again on every attribute, and preparing a
    # row's values reads it once per field.
    return connections[DEFAULT_DB_ALIAS]


@functools.cache
def _qn(name: str) -> str:
    return connection.ops.quote_name(name)


# Field classes whose preparation sends a value of these exact types as it is (datetimes when aware): such a
# value skips the preparation, which for these columns only checks and converts what needs converting.
# (Integers are not among them: PostgreSQL's backend types them, Int4 or Int8, for the statement's parameters.)
_AS_IS: dict[type[models.Field], tuple[type, ...]] = {
    models.CharField: (str,),
    models.TextField: (str,),
    models.BooleanField: (bool,),
    models.DateTimeField: (datetime,),
}


@dataclass(frozen=True)
class _Column:
    field: models.Field
    attname: str
    as_is: tuple[type, ...]  # the value types sent without preparation
    now: bool  # set to the time of the save (auto_now, auto_now_add)


@functools.cache
def _columns(
    model: type[models.Model], replaced: tuple[tuple[str, str], ...]
) -> tuple[tuple[_Column, ...], str, str]:
    """The fields ``_row`` prepares, the column list and the value list (``%s``, or the SQL expression that
    replaces the field's value)."""
    expressions = dict(replaced)
    fields = tuple(f for f in model._meta.local_concrete_fields if not f.primary_key)
    columns = ", ".join(_qn(f.column) for f in fields)
    values = ", ".join(expressions.get(f.attname, "%s") for f in fields)
    described = tuple(
        _Column(
            field=f,
            attname=f.attname,
            as_is=_AS_IS.get(type(f), ()),
            now=bool(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)),
        )
        for f in fields
    )
    return described, columns, values


def _row(
    obj: models.Model, *, sql: dict[str, tuple[str, list[Any]]] | None = None
) -> tuple[str, str, list[Any]]:
    """The column list, the value list and its parameters that insert ``obj`` (its primary key excepted): the
    values as the fields prepare them for saving.

    ``sql`` replaces the value of some fields (by attribute name) with an SQL expression and its parameters.
    """
    return _row_of(type(obj), lambda column: column.field.pre_save(obj, add=True), sql)


def _row_values(
    model: type[models.Model], values: dict[str, Any], *, sql: dict[str, tuple[str, list[Any]]] | None = None
) -> tuple[str, str, list[Any]]:
    """``_row`` for a new row of ``model`` given by its ``values`` (attribute names), without building the
    instance: every other field takes its default, and the fields set on saving (``auto_now``,
    ``auto_now_add``) the time now, as the ORM would save a new instance made with ``values``."""
    fields, _, _ = _columns(model, ())
    unknown = values.keys() - {column.attname for column in fields}
    if unknown:
        raise ValueError(f"not fields of {model.__name__}: {sorted(unknown)}")
    now = timezone.now()

    def value_of(column: _Column) -> Any:
        if column.attname in values:
            return values[column.attname]
        if column.now:
            return now if isinstance(column.field, models.DateTimeField) else timezone.localdate(now)
        return column.field.get_default()

    return _row_of(model, value_of, sql)


def _row_of(
    model: type[models.Model],
    value_of: Callable[[_Column], Any],
    sql: dict[str, tuple[str, list[Any]]] | None,
) -> tuple[str, str, list[Any]]:
    """``_row`` with each field's value taken by ``value_of``, then prepared as the field prepares it."""
    sql = sql or {}
    fields, columns, values = _columns(
        model, tuple(sorted((name, expression) for name, (expression, _) in sql.items()))
    )
    db = _db()
    params: list[Any] = []
    for column in fields:
        if column.attname in sql:
            params.extend(sql[column.attname][1])
            continue
        value = value_of(column)
        if column.as_is and (
            value is None
            or (type(value) in column.as_is and (type(value) is not datetime or value.tzinfo is not None))
        ):
            params.append(value)
        else:
            params.append(column.field.get_db_prep_save(value, db))
    return columns, values, params


@functools.cache
def _accounts_of_g() -> str:
    """The WITH part that links the grant just inserted (``g``) to the accounts of an id array parameter."""
    through = Grant.accounts.through._meta.db_table
    # Table and column names come from the models' metadata; the ids are a parameter.
    return (
        f"a AS (INSERT INTO {_qn(through)} ({_qn('grant_id')}, {_qn('tradingaccount_id')})"  # noqa: S608
        " SELECT g.id, account FROM g, unnest(%s::bigint[]) AS account)"
    )


def grant_accounts_insert_orm(*, grant_id: int, account_ids: Sequence[int]) -> None:
    """The grant's account links through the ORM (databases other than PostgreSQL)."""
    Grant.accounts.through.objects.bulk_create(
        Grant.accounts.through(grant_id=grant_id, tradingaccount_id=pk) for pk in account_ids
    )


def grant_insert(
    *, grant: dict[str, Any], account_ids: Sequence[int], code: dict[str, Any], audit: dict[str, Any]
) -> int | None:
    """Store an active grant with its accounts, its first code and its audit record, each given by its fields'
    values (attribute names; ``_row_values``); the grant's id.

    The code's grant and the audit record's ``detail["grant"]`` are the new grant. None when a grant with the
    same ``consent_key`` exists: then nothing was stored.
    """
    grant_columns, grant_values, params = _row_values(Grant, grant)
    code_columns, code_values, code_params = _row_values(
        AuthorizationCode, code, sql={"grant_id": ("g.id", [])}
    )
    detail = {key: value for key, value in audit.get("detail", {}).items() if key != "grant"}
    audit_columns, audit_values, audit_params = _row_values(
        AuditEvent, audit, sql={"detail": ("%s::jsonb || jsonb_build_object('grant', g.id)", [_json(detail)])}
    )
    # Table and column names come from the models' metadata; every value is a parameter.
    statement = (
        f"WITH g AS (INSERT INTO {_qn(Grant._meta.db_table)} ({grant_columns}) VALUES ({grant_values})"  # noqa: S608
        f" ON CONFLICT ({_qn('consent_key')}) DO NOTHING RETURNING {_qn('id')}), {_accounts_of_g()},"
        f" c AS (INSERT INTO {_qn(AuthorizationCode._meta.db_table)} ({code_columns}) SELECT {code_values} FROM g),"
        f" e AS (INSERT INTO {_qn(AuditEvent._meta.db_table)} ({audit_columns}) SELECT {audit_values} FROM g)"
        " SELECT id FROM g"
    )
    with prepared.cursor() as cursor:
        cursor.execute(statement, [*params, prepared.bigint_array(account_ids), *code_params, *audit_params])
        row = cursor.fetchone()
    return int(row[0]) if row else None


def grant_with_accounts_insert(*, grant: Grant, account_ids: Sequence[int]) -> None:
    """INSERT ``grant`` and its account links, setting ``grant.pk``: one statement on PostgreSQL (a
    data-modifying WITH), the ORM elsewhere. Every field is prepared as ``save()`` prepares it."""
    if not available():
        grant.save(force_insert=True)
        grant_accounts_insert_orm(grant_id=grant.pk, account_ids=account_ids)
        return
    columns, values, params = _row(grant)
    # Table and column names come from the models' metadata; every value is a parameter.
    statement = (
        f"WITH g AS (INSERT INTO {_qn(Grant._meta.db_table)} ({columns}) VALUES ({values})"  # noqa: S608
        f" RETURNING {_qn('id')}), {_accounts_of_g()}"
        " SELECT id FROM g"
    )
    with prepared.cursor() as cursor:
        cursor.execute(statement, [*params, prepared.bigint_array(account_ids)])
        grant.pk = cursor.fetchone()[0]
    grant._state.adding = False
    grant._state.db = DEFAULT_DB_ALIAS


def audit_insert(audit: AuditEvent) -> None:
    """INSERT ``audit`` as ``save()`` would, setting its pk; a prepared statement on PostgreSQL."""
    if not available():
        audit.save(force_insert=True)
        return
    columns, values, params = _row(audit)
    # Table and column names come from the model's metadata; every value is a parameter.
    statement = (
        f"INSERT INTO {_qn(AuditEvent._meta.db_table)} ({columns}) VALUES ({values})"  # noqa: S608
        f" RETURNING {_qn('id')}"
    )
    with prepared.cursor() as cursor:
        cursor.execute(statement, params)
        audit.pk = cursor.fetchone()[0]
    audit._state.adding = False
    audit._state.db = DEFAULT_DB_ALIAS


def _json(value: dict[str, Any]) -> Any:
    return AuditEvent._meta.get_field("detail").get_db_prep_save(value, _db())


@dataclass(frozen=True)
class TakenCode:
    grant_id: int
    trader_id: int
    adapter_token: str
    adapter_token_expires_at: datetime


@functools.cache
def _code_take_statement() -> tuple[str, tuple[Any, ...]]:
    """The code exchange's statement and the fixed values of its audit record (the same on every exchange: its
    trader, detail and time come from the rows the statement takes)."""
    grant_table, code_table = _qn(Grant._meta.db_table), _qn(AuthorizationCode._meta.db_table)
    audit = audit_event_new(category=AUDIT_CATEGORY, action="code_exchanged", outcome="ok")
    audit_columns, audit_values, audit_params = _row(
        audit,
        sql={
            "trader_id": ("u.trader_id", []),
            "detail": ("jsonb_build_object('client_id', t.public_id, 'grant', t.grant_id)", []),
            # Recorded at the moment the code was taken.
            "created_at": ("t.used_at", []),
        },
    )
    # The grant is reached only through the code's grant id, each time by its primary key (a subquery, not a
    # join): a statement prepared once per connection keeps its plan, and a plan made while the grant table
    # was small could otherwise scan it, then every active grant on each exchange as the table grows.
    # Table and column names come from the models' metadata; every value is a parameter.
    statement = (
        f"WITH t AS (UPDATE {code_table} AS code SET used_at = %s"  # noqa: S608
        f" FROM {_qn(OAuthClient._meta.db_table)} AS client"
        " WHERE code.code_hash = %s AND code.used_at IS NULL AND NOT code.superseded AND code.expires_at > %s"
        " AND code.redirect_uri = %s AND client.id = code.client_id AND client.client_id = %s"
        " AND client.is_active AND client.client_secret_hash = %s"
        # Not for an address with a failed client authentication in the throttle's window: that one is checked
        # by the throttle first (tradingview/throttle.py). Constants, not parameters, so that the plan kept for
        # the prepared statement can use the partial index audit_token_failures.
        f" AND NOT EXISTS (SELECT 1 FROM {_qn(AuditEvent._meta.db_table)} AS f WHERE {_token_failure_condition()}"
        " AND (f.detail ->> 'address') = %s AND f.created_at >= %s)"
        f" AND (SELECT g.state = %s AND g.adapter_token_expires_at >= %s FROM {grant_table} AS g"
        " WHERE g.id = code.grant_id)"
        " RETURNING code.grant_id, code.used_at, client.client_id AS public_id),"
        f" u AS (UPDATE {grant_table} AS g SET refresh_token_hash = %s, updated_at = %s"
        " WHERE g.id = (SELECT t.grant_id FROM t) AND g.state = %s"
        " RETURNING g.id, g.trader_id, g.adapter_token, g.adapter_token_expires_at),"
        f" e AS (INSERT INTO {_qn(AuditEvent._meta.db_table)} ({audit_columns})"
        f" SELECT {audit_values} FROM t JOIN u ON u.id = t.grant_id)"
        " SELECT t.grant_id, u.trader_id, u.adapter_token, u.adapter_token_expires_at, u.id FROM t"
        " LEFT JOIN u ON u.id = t.grant_id"
    )
    return statement, tuple(audit_params)


def _token_failure_condition() -> str:
    """The audit records of failed client authentications (``f``), as the partial index's condition."""
    values = {"category": THROTTLE_CATEGORY, "action": THROTTLE_ACTION, "outcome": THROTTLE_OUTCOME}
    # Fixed words of this code, written into the statement: checked to need no quoting.
    if not all(value.replace("_", "").isalnum() for value in values.values()):
        raise ValueError(f"not a plain word: {values}")
    return " AND ".join(f"f.{column} = '{value}'" for column, value in values.items())


def code_take(
    *,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    refresh_token: str,
    now: datetime,
    address: str | None,
    failures_since: datetime,
) -> TakenCode | None:
    """Take a valid code of an authenticated client: mark it used, store the refresh token's hash on its
    grant, record ``code_exchanged``; the grant's adapter token and expiry.

    None when anything is not as a successful exchange needs it (another client or secret, a secret stored
    with a password hasher, a code used, superseded, expired or for another redirect URI, a grant no longer
    active or at the end of its life, a failed client authentication from ``address`` since
    ``failures_since``): nothing was written, and the caller finds out which.
    """
    statement, audit_params = _code_take_statement()
    params = [
        now,
        token_hash(code),
        now,
        redirect_uri,
        client_id,
        f"{CLIENT_SECRET_ALGORITHM}${token_hash(client_secret)}",
        # No failure record has an empty address (an exchange without one is never throttled).
        address or "",
        failures_since,
        Grant.State.ACTIVE,
        # Grant.seconds_left() > 0: at least a whole second of the adapter token's life remains.
        now + timedelta(seconds=1),
        token_hash(refresh_token),
        now,
        Grant.State.ACTIVE,
        *audit_params,
    ]
    with prepared.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    if row is None or row[4] is None:
        return None
    return TakenCode(
        grant_id=row[0],
        trader_id=row[1],
        adapter_token=str(Grant._meta.get_field("adapter_token").from_db_value(row[2], None, _db())),
        adapter_token_expires_at=row[3],
    )
