"""The refresh grant of TradingView's token endpoint: a rotation that survives retries, races and adapter outages.

- A duplicate that arrives while a refresh of the same token is in flight waits for it and gets the same answer.
- A repeat of a spent refresh token by its client within ``TRADINGVIEW_REFRESH_REUSE_SECONDS`` (a response lost
  on its way back) gets the same new pair again. After that window a spent token coming back means two parties
  hold it, so the whole grant is revoked (RFC 9700, 4.14.2).
- When the adapter cannot issue a token for a reason that is not about the user (refused, timed out, a server
  error, an ``s: error`` that does not concern the request), the refresh still rotates and hands back the
  current adapter token for the rest of its life, marked degraded; the token TradingView keeps using is not
  logged out. With no usable token left the answer is 503 with ``Retry-After``: nothing is spent.

The common case is five statements (seven with the transaction's BEGIN and COMMIT) and no adapter call inside
a transaction: one read of the grant with its client, trader, cTID and accounts; the lease claim; then in one
transaction (one durable commit) the new grant, inserted pending, with its accounts; one UPDATE that supersedes
the old grant and activates the new one (both or, if the old one was revoked meanwhile, only the new one, which
is then revoked); the audit record. On PostgreSQL each is prepared once per connection
(``clientarea.prepared``), so a refresh pays neither Django's query building nor PostgreSQL's planning. A
request that dies before its commit stores nothing (the adapter token it was given is never handed out) and
its lease runs out.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import TradingAccount
from accounts.services.audit import audit_event_new, audit_event_record
from clientarea import prepared

from .. import adapter
from ..models import AUDIT_CATEGORY, Grant, OAuthClient, token_hash
from ..selectors import LINK_ACCOUNT_FIELDS, LINK_CTID_FIELDS, account_ineligibility, grant_for_refresh_token
from . import statements
from .consent import adapter_token_expiry
from .revocation import grant_chain_revoke, grant_revoke, logout_enqueue
from .tokens import (
    CLIENT_AUTH_FIELDS,
    OAuthError,
    TokenResponse,
    client_authenticate,
    client_verified,
    grant_expires_in,
)

# Far longer than one adapter call: a refresh that still holds it after this is taken to have died.
REFRESH_LEASE_SECONDS = 60
_POLL_SECONDS = 0.05
# HTTP statuses with which the adapter refuses the request itself (the user, the brokers, the accounts):
# every other failure is the adapter's, and TradingView keeps the token it has.
_ABOUT_THE_REQUEST = frozenset({400, 404, 409, 422})

_GRANT_FIELDS = (
    "client",
    "trader",
    "ctid",
    "scope",
    "state",
    "refresh_lease_until",
    "superseded_by",
    "adapter_token_issued_at",
    "adapter_token_expires_at",
)
_CLIENT_FIELDS = (*CLIENT_AUTH_FIELDS, "is_active")
_TRADER_FIELDS = ("suspended", "kyc_verified")
_ROW_FIELDS = (
    *(f"grant__{f}" for f in _GRANT_FIELDS),
    *(f"grant__client__{f}" for f in _CLIENT_FIELDS),
    *(f"grant__trader__{f}" for f in _TRADER_FIELDS),
    *(f"grant__ctid__{f}" for f in LINK_CTID_FIELDS),
    *(f"tradingaccount__{f}" for f in LINK_ACCOUNT_FIELDS),
)


def _retry_after() -> int:
    return max(1, int(settings.TRADINGVIEW_RETRY_AFTER_SECONDS))


def _unavailable(description: str) -> OAuthError:
    return OAuthError("temporarily_unavailable", description, status=503, retry_after=_retry_after())


def token_refresh(*, client_id: str, client_secret: str, refresh_token: str) -> TokenResponse:
    """``grant_type=refresh_token``: a new adapter token for the same trader and (still eligible) accounts.

    The client is authenticated before anything is written; TradingView may send only the secret on refresh,
    and then the client is the one the refresh token was issued to. A wrong client is ``invalid_client``; a
    refresh token that is unknown, spent or revoked is ``invalid_grant``.
    """
    if not refresh_token:
        client_authenticate(client_id=client_id, client_secret=client_secret)
        raise OAuthError("invalid_request", "refresh_token is required.")
    presented = token_hash(refresh_token)
    grant, accounts = _grant_read(presented=presented)
    client = grant.client if grant is not None else None
    if client_id and (client is None or client.client_id != client_id):
        # The request names a client that is not this token's: authenticate it for the right error.
        client_authenticate(client_id=client_id, client_secret=client_secret)
        raise OAuthError("invalid_grant", "The refresh token is not valid.")
    client = client_verified(
        client=client if client is not None and client.is_active else None,
        client_id=client_id or (client.client_id if client is not None else ""),
        client_secret=client_secret,
    )
    assert grant is not None  # an unknown token without a client id is invalid_client above
    if grant.state == Grant.State.ACTIVE:
        if _lease_claim(grant_id=grant.pk):
            return _rotate(client=client, grant=grant, accounts=accounts)
        return _in_flight_await(client=client, grant=grant, accounts=accounts)
    if grant.superseded_by_id is not None:
        return _repeat(client=client, old=grant, waited=False)
    raise OAuthError("invalid_grant", "The authorization was revoked.")


def _grant_read(*, presented: str) -> tuple[Grant | None, list[TradingAccount]]:
    """The grant of a refresh token with its client, trader and cTID, and its accounts, in one statement (two
    through the ORM, on databases other than PostgreSQL, for a grant left without accounts or none)."""
    if statements.available():
        return grant_for_refresh_token(
            presented=presented,
            grant_fields=_GRANT_FIELDS,
            client_fields=_CLIENT_FIELDS,
            trader_fields=_TRADER_FIELDS,
        )
    link = Grant.accounts.through
    rows = list(
        link.objects.filter(grant__refresh_token_hash=presented)
        .select_related(
            "grant__client",
            "grant__trader",
            "grant__ctid",
            "tradingaccount__jurisdiction",
        )
        .only(*_ROW_FIELDS)
    )
    if rows:
        found = rows[0].grant
        accounts = []
        for row in rows:
            account = row.tradingaccount
            # The grant's accounts belong to its cTID: no join back to it. One that moved to another cTID
            # is not this grant's any more.
            if account.ctid_id == found.ctid_id:
                account.ctid = found.ctid
                accounts.append(account)
        return found, accounts
    # A grant left without accounts, or no grant at all.
    grant = (
        Grant.objects.select_related("client", "trader", "ctid")
        .only(
            *_GRANT_FIELDS,
            *(f"client__{f}" for f in _CLIENT_FIELDS),
            *(f"trader__{f}" for f in _TRADER_FIELDS),
            *(f"ctid__{f}" for f in LINK_CTID_FIELDS),
        )
        .filter(refresh_token_hash=presented)
        .first()
    )
    return grant, []


def _lease_claim(*, grant_id: int) -> bool:
    """Take the refresh lease of an active grant if it is free.

    On PostgreSQL the claim commits without waiting for its WAL flush (``synchronous_commit`` off for this one
    statement's transaction), as the cTID refresh's claim does: other sessions see the lease once it commits,
    and the refresh's durable write flushes the claim's WAL with its own.
    """
    now = timezone.now()
    lease_until = now + timedelta(seconds=REFRESH_LEASE_SECONDS)
    if connection.vendor != "postgresql":
        return bool(
            Grant.objects.filter(pk=grant_id, state=Grant.State.ACTIVE)
            .filter(Q(refresh_lease_until__isnull=True) | Q(refresh_lease_until__lt=now))
            .update(refresh_lease_until=lease_until)
        )
    table = connection.ops.quote_name(Grant._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    # Only the quoted table name is interpolated; every value is a parameter.
    sql = (
        "WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true)) "  # noqa: S608
        f"UPDATE {table} SET refresh_lease_until = %s FROM async_commit "
        "WHERE id = %s AND state = %s AND (refresh_lease_until IS NULL OR refresh_lease_until < %s)"
    )
    with prepared.cursor() as cursor:
        cursor.execute(sql, [adapt(lease_until), grant_id, Grant.State.ACTIVE.value, adapt(now)])
        return bool(cursor.rowcount)


def _lease_release(*, grant_id: int) -> None:
    Grant.objects.filter(pk=grant_id).update(refresh_lease_until=None)


def _in_flight_await(*, client: OAuthClient, grant: Grant, accounts: list[TradingAccount]) -> TokenResponse:
    """Another request is refreshing this token: wait for its answer and give the same one.

    If that request failed (its lease is released, the grant still active) this one tries in its place.
    """
    deadline = time.monotonic() + settings.HTTP_CONNECT_TIMEOUT + settings.HTTP_READ_TIMEOUT + 2
    while time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
        row = Grant.objects.filter(pk=grant.pk).values("state", "superseded_by_id").first()
        if row is None:
            break
        if row["superseded_by_id"] is not None:
            grant.superseded_by_id = row["superseded_by_id"]
            return _repeat(client=client, old=grant, waited=True)
        if row["state"] != Grant.State.ACTIVE:
            raise OAuthError("invalid_grant", "The authorization was revoked.")
        if _lease_claim(grant_id=grant.pk):
            return _rotate(client=client, grant=grant, accounts=accounts)
    raise _unavailable("A refresh of this token is still in progress; try again shortly.")


def _repeat(*, client: OAuthClient, old: Grant, waited: bool) -> TokenResponse:
    """A spent refresh token again: the same answer inside the reuse window, else the whole grant ends."""
    assert old.superseded_by_id is not None
    successor = (
        Grant.objects.only(
            "client_id",
            "trader_id",
            "state",
            "adapter_token",
            "adapter_token_expires_at",
            "issued_refresh_token",
            "created_at",
        )
        .filter(pk=old.superseded_by_id)
        .first()
    )
    window = timedelta(seconds=settings.TRADINGVIEW_REFRESH_REUSE_SECONDS)
    if (
        successor is not None
        and successor.client_id == client.pk
        and successor.state == Grant.State.ACTIVE
        and successor.issued_refresh_token
        and (waited or successor.created_at + window > timezone.now())
    ):
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="refresh_repeated",
            outcome="same_answer",
            trader_id=successor.trader_id,
            detail={
                "client_id": client.client_id,
                "grant": successor.pk,
                "previous": old.pk,
                "waited": waited,
            },
        )
        return TokenResponse(
            access_token=successor.adapter_token,
            expires_in=grant_expires_in(successor),
            refresh_token=successor.issued_refresh_token,
        )
    ids = grant_chain_revoke(
        grant_id=old.pk,
        reason="a spent refresh token was used again",
        action="refresh_token_reused",
        outcome="grant_revoked",
        client_id=client.client_id,
    )
    if not ids:
        # Nothing left to revoke: still a record of the reuse for staff.
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="refresh_token_reused",
            outcome="already_revoked",
            trader_id=old.trader_id,
            detail={"client_id": client.client_id, "grant": old.pk},
        )
    raise OAuthError("invalid_grant", "The refresh token was already used.")


def _about_the_request(exc: adapter.AdapterError) -> bool:
    return isinstance(exc, adapter.AdapterRejected) and exc.status in _ABOUT_THE_REQUEST


def _rotate(*, client: OAuthClient, grant: Grant, accounts: Sequence[TradingAccount]) -> TokenResponse:
    trader = grant.trader
    eligible = [a for a in accounts if not account_ineligibility(a)]
    if trader.suspended or not eligible:
        _lease_release(grant_id=grant.pk)
        grant_revoke(grant_id=grant.pk, reason="no longer eligible at refresh")
        raise OAuthError("invalid_grant", "The trader or the linked accounts can no longer be linked.")

    broker_names = sorted({a.jurisdiction.broker_name for a in eligible if a.jurisdiction is not None})
    try:
        generated = adapter.generate_token(
            user_id=grant.ctid.user_id,
            broker_names=broker_names,
            ctid_trader_account_ids=sorted(a.ctid_trader_account_id for a in eligible),
            is_verified=trader.kyc_verified,
        )
    except adapter.AdapterError as exc:
        return _rotate_degraded(
            client=client, grant=grant, accounts=eligible, broker_names=broker_names, failure=exc
        )

    issued_at = timezone.now()
    return _replace(
        client=client,
        grant=grant,
        successor=_Successor(
            eligible, broker_names, generated.token, issued_at, adapter_token_expiry(issued_at)
        ),
    )


def _rotate_degraded(
    *,
    client: OAuthClient,
    grant: Grant,
    accounts: Sequence[TradingAccount],
    broker_names: list[str],
    failure: adapter.AdapterError,
) -> TokenResponse:
    """The adapter could not issue a token: hand back the current one if it still lives, else 503."""
    detail: dict[str, Any] = {
        "client_id": client.client_id,
        "grant": grant.pk,
        "http_status": failure.status,
        "adapter_outcome": failure.outcome,
    }
    if _about_the_request(failure) or grant.seconds_left() <= 0:
        _lease_release(grant_id=grant.pk)
        about_request = _about_the_request(failure)
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="refresh",
            outcome="refused" if about_request else "unavailable",
            trader_id=grant.trader_id,
            message=failure.message,
            detail=detail,
        )
        if about_request:
            raise OAuthError("invalid_grant", "A new token could not be issued; link again.") from failure
        raise _unavailable("No token can be issued right now; try again later.") from failure

    current = Grant.objects.filter(pk=grant.pk).values_list("adapter_token", flat=True).get()
    assert grant.adapter_token_issued_at is not None
    assert grant.adapter_token_expires_at is not None
    successor = _Successor(
        accounts, broker_names, current, grant.adapter_token_issued_at, grant.adapter_token_expires_at
    )
    return _replace(client=client, grant=grant, successor=successor, failure=failure)


@dataclass(frozen=True)
class _Successor:
    """The grant a refresh puts in place of the old one: its accounts and its adapter token."""

    accounts: Sequence[TradingAccount]
    broker_names: list[str]
    adapter_token: str
    issued_at: datetime
    expires_at: datetime


def _replace(
    *, client: OAuthClient, grant: Grant, successor: _Successor, failure: adapter.AdapterError | None = None
) -> TokenResponse:
    """Store ``successor`` with a new refresh token in place of ``grant``, in one durable commit with its
    accounts, the superseded grant and the audit record; the answer for TradingView.

    ``failure``: the adapter could not issue a token, so the successor carries the current one over (degraded).
    """
    new_refresh = secrets.token_urlsafe(48)
    grace = settings.TRADINGVIEW_REFRESH_GRACE_SECONDS
    extra: dict[str, Any] = {}
    if failure is None:
        # The old adapter token is logged out once TradingView has had time to switch to the new one.
        old_state, reason, outcome = Grant.State.REVOKING, "superseded by a refresh", "ok"
        revoke_after: datetime | None = successor.issued_at + timedelta(seconds=grace)
    else:
        # The previous grant ends without /logout: its adapter token lives on in the new grant.
        old_state, outcome, revoke_after = Grant.State.REVOKED, "degraded", None
        reason = "refreshed while the adapter was unavailable; its adapter token carried over"
        extra = {
            "message": failure.message,
            "adapter_outcome": failure.outcome,
            "http_status": failure.status,
        }
    with transaction.atomic():
        new = _successor_insert(
            client=client,
            grant=grant,
            successor=successor,
            refresh_token=new_refresh,
            degraded=failure is not None,
        )
        superseded = _supersede(
            old=grant,
            new=new,
            client=client,
            old_state=old_state,
            reason=reason,
            revoke_after=revoke_after,
            outcome=outcome,
            accounts=len(successor.accounts),
            **extra,
        )
    if not superseded:
        return _lost(client=client, old=grant, new=new)
    if failure is None:
        logout_enqueue(grant_id=grant.pk, countdown=grace)
    return TokenResponse(
        access_token=successor.adapter_token, expires_in=grant_expires_in(new), refresh_token=new_refresh
    )


def _successor_insert(
    *, client: OAuthClient, grant: Grant, successor: _Successor, refresh_token: str, degraded: bool
) -> Grant:
    """The new grant, pending (never shown nor handed out) until ``_supersede`` activates it."""
    new = Grant(
        client_id=client.pk,
        trader_id=grant.trader_id,
        ctid_id=grant.ctid_id,
        broker_names=successor.broker_names,
        is_verified=grant.trader.kyc_verified,
        scope=grant.scope,
        state=Grant.State.PENDING,
        adapter_token=successor.adapter_token,
        adapter_token_issued_at=successor.issued_at,
        adapter_token_expires_at=successor.expires_at,
        refresh_token_hash=token_hash(refresh_token),
        issued_refresh_token=refresh_token,
        degraded=degraded,
    )
    statements.grant_with_accounts_insert(grant=new, account_ids=[a.pk for a in successor.accounts])
    return new


def _supersede(
    *,
    old: Grant,
    new: Grant,
    client: OAuthClient,
    old_state: str,
    reason: str,
    revoke_after: datetime | None,
    outcome: str,
    accounts: int,
    message: str = "",
    **detail: Any,
) -> bool:
    """One UPDATE: the old grant is superseded (only if it is still active) and the new one becomes active.

    Returns False when the old grant was no longer active (the caller then revokes the new one).
    """
    now = timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    qn = connection.ops.quote_name
    # Written out rather than built from Case/When expressions: on the hot path, building and compiling them
    # cost more CPU than the rest of the refresh's SQL. Each CASE keeps the column's own value for the new row
    # (just inserted, so empty), which also gives the database the type of a NULL parameter.
    sql = (
        f"UPDATE {qn(Grant._meta.db_table)} SET "  # noqa: S608 - quoted names only; values are parameters
        "state = CASE WHEN id = %s THEN %s ELSE %s END, "
        "superseded_by_id = CASE WHEN id = %s THEN %s ELSE superseded_by_id END, "
        "revoke_after = CASE WHEN id = %s THEN %s ELSE revoke_after END, "
        "revoked_at = CASE WHEN id = %s THEN %s ELSE revoked_at END, "
        "revoke_reason = CASE WHEN id = %s THEN %s ELSE revoke_reason END, "
        "refresh_lease_until = NULL, updated_at = %s "
        "WHERE (id = %s AND state = %s) OR (id = %s AND state = %s)"
    )
    params = [
        *(old.pk, old_state, Grant.State.ACTIVE.value),
        *(old.pk, new.pk),
        *(old.pk, adapt(revoke_after) if revoke_after is not None else None),
        *(old.pk, adapt(now) if old_state == Grant.State.REVOKED else None),
        *(old.pk, reason[:200]),
        adapt(now),
        *(old.pk, Grant.State.ACTIVE.value, new.pk, Grant.State.PENDING.value),
    ]
    with prepared.cursor() as cursor:
        cursor.execute(sql, params)
        updated = cursor.rowcount
    superseded = updated == 2
    audit = audit_event_new(
        category=AUDIT_CATEGORY,
        action="refreshed",
        outcome=outcome if superseded else "revoked_meanwhile",
        trader_id=old.trader_id,
        message=message,
        detail={
            "client_id": client.client_id,
            "grant": new.pk,
            "previous": old.pk,
            "accounts": accounts,
            **detail,
        },
    )
    statements.audit_insert(audit)
    return superseded


def _lost(*, client: OAuthClient, old: Grant, new: Grant) -> TokenResponse:
    """The old grant changed while the adapter was asked: another refresh won (its answer), or it was revoked.

    The new grant was never handed out: it is revoked.
    """
    grant_revoke(grant_id=new.pk, reason="revoked while refreshing")
    winner = Grant.objects.filter(pk=old.pk).values_list("superseded_by_id", flat=True).first()
    if winner is not None and winner != new.pk:
        old.superseded_by_id = winner
        return _repeat(client=client, old=old, waited=True)
    raise OAuthError("invalid_grant", "The authorization was revoked.")
