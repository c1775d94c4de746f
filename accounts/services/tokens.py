"""Open API tokens of a cTID: storing a new consent and the single-flight refresh.

cTrader refresh tokens work once and rotate on every refresh, so two refreshes of one token in flight at the
same time end the chain (the loser's token is already spent), and a refresh whose answer is lost cannot be
repeated. The rules here:

- Only ``ctid_token_refresh`` and ``ctid_token_store`` write token values; both bump ``version``.
- A refresh first claims a lease with a conditional UPDATE, reads the refresh token only after the claim,
  calls the token endpoint outside any transaction with a timeout far below the lease, and writes both tokens
  and the expiry in one UPDATE conditional on the version it read.
- Callers that cannot claim the lease wait for the holder and take its result instead of calling the
  endpoint themselves. A caller that names no stale version and arrives just after a refresh succeeded
  (within ``TOKEN_REFRESH_RECENT_SECONDS``) takes that result too: a burst of requests makes one call.
- A refresh whose answer was lost (the endpoint may have rotated the token) is always followed up, whoever
  asked for it: a queued check refreshes again with the version it saw, which either finds the chain alive
  or marks the cTID ``needs_reconnect`` and tells the trader.
- A failed or ambiguous call never clears stored values. A refusal is re-checked against the stored version
  before the cTID is marked ``needs_reconnect``.
- No token value is ever logged or stored outside the encrypted columns; attempts record time and outcome.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import F, Q
from django.utils import timezone

from accounts.ctrader.oauth import CtraderOAuth, TokenPair, TokenRejected, TokenTransientError
from accounts.models import Ctid, CtidToken
from accounts.selectors import keyset_batches
from accounts.services.audit import audit_event_record
from accounts.signals import ctid_needs_reconnect
from clientarea import crypto, http, prepared

logger = logging.getLogger(__name__)


class RefreshOutcome(StrEnum):
    REFRESHED = "ok"
    SUPERSEDED = "superseded"  # another writer (a refresh or a new consent) already replaced the token
    REJECTED = "rejected"  # the chain is dead; the cTID needs a new consent
    NOT_ACTIVE = "not_active"  # the token needs reconnect or is revoked: nothing to refresh
    NOT_DUE = "not_due"  # only_if_due was set and the token is not within the refresh window


@dataclass(frozen=True)
class RefreshResult:
    outcome: RefreshOutcome
    version: int
    expires_at: datetime
    # True when this caller did not call the endpoint but waited for the lease holder's result.
    coalesced: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome in (RefreshOutcome.REFRESHED, RefreshOutcome.SUPERSEDED, RefreshOutcome.NOT_DUE)


class TokenRefreshError(Exception):
    """Base of the refresh failures callers may see."""


class TokenRefreshTransient(TokenRefreshError):
    """The refresh did not happen this time (endpoint unreachable, ambiguous answer, lease busy); retry later.

    The stored token pair is unchanged. ``ambiguous`` is True when the request may have reached the endpoint.
    """

    def __init__(self, message: str, *, ambiguous: bool = False, followed_up: bool = False) -> None:
        self.ambiguous = ambiguous
        # True when a follow-up check of the chain is already queued (the caller need not retry itself).
        self.followed_up = followed_up
        super().__init__(message)


def oauth_client() -> CtraderOAuth:
    """The configured cTrader ID client, one per thread so its keep-alive connection is reused."""
    config = (
        settings.CTRADER_AUTH_URL,
        settings.CTRADER_TOKEN_URL,
        settings.CTRADER_CLIENT_ID,
        settings.CTRADER_CLIENT_SECRET,
        settings.CTRADER_REDIRECT_URI,
        settings.CTRADER_SCOPE,
        settings.TOKEN_HTTP_CONNECT_TIMEOUT,
        settings.TOKEN_HTTP_READ_TIMEOUT,
        settings.TOKEN_HTTP_DEADLINE_SECONDS,
    )
    return http.per_thread(
        "ctrader_oauth",
        key=config,
        build=lambda: CtraderOAuth(
            auth_url=settings.CTRADER_AUTH_URL,
            token_url=settings.CTRADER_TOKEN_URL,
            client_id=settings.CTRADER_CLIENT_ID,
            client_secret=settings.CTRADER_CLIENT_SECRET,
            redirect_uri=settings.CTRADER_REDIRECT_URI,
            scope=settings.CTRADER_SCOPE,
            session=http.session(deadline=settings.TOKEN_HTTP_DEADLINE_SECONDS),
            timeout=(settings.TOKEN_HTTP_CONNECT_TIMEOUT, settings.TOKEN_HTTP_READ_TIMEOUT),
            deadline=settings.TOKEN_HTTP_DEADLINE_SECONDS,
        ),
    )


def _assert_no_transaction() -> None:
    # An HTTP call inside a transaction would hold row locks for the whole timeout. Test-case wrappers are
    # fine: they never commit anyway. The connection itself, not the ``connection`` proxy, which looks it up
    # again on every attribute.
    atomic_blocks = connections[DEFAULT_DB_ALIAS].atomic_blocks
    if atomic_blocks and any(not getattr(block, "_from_testcase", False) for block in atomic_blocks):
        raise RuntimeError("ctid_token_refresh must not run inside a database transaction.")


_HOST = socket.gethostname()[:24]


def _lease_owner() -> str:
    # The pid is read on every call: worker processes are forked after this module is imported.
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(8)}"


def _expiry(pair: TokenPair, now: datetime) -> datetime:
    return now + timedelta(seconds=pair.expires_in)


def _refresh_window_end(now: datetime) -> datetime:
    return now + timedelta(days=settings.TOKEN_REFRESH_WINDOW_DAYS)


def ctid_token_store(*, ctid: Ctid, pair: TokenPair, scope: str) -> CtidToken:
    """Store the pair of a new consent, replacing any stored one.

    The version moves and any refresh lease is cleared, so a refresh in flight for the old chain loses
    cleanly: its conditional write no longer matches.
    """
    now = timezone.now()
    values = {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "expires_at": _expiry(pair, now),
        "scope": scope[:50],
        "state": CtidToken.State.ACTIVE,
        "lease_owner": "",
        "lease_until": None,
        "refresh_failures": 0,
        "last_refresh_error": "",
        "updated_at": now,
    }
    for _ in range(2):
        if CtidToken.objects.filter(ctid=ctid).update(version=F("version") + 1, **values):
            return CtidToken.objects.get(ctid=ctid)
        try:
            with transaction.atomic():
                return CtidToken.objects.create(ctid=ctid, version=1, **values)
        except IntegrityError:
            continue  # created concurrently: replace it
    raise RuntimeError("The token of a cTID could not be stored.")


def ctid_token_refresh(
    *,
    ctid_id: int,
    reason: str,
    seen_version: int | None = None,
    only_if_due: bool = False,
    follow_up: bool = True,
) -> RefreshResult:
    """Refresh the Open API token of a cTID, single-flight across every process.

    ``seen_version``: the version the caller found stale (e.g. the token Spotware just refused); when the
    stored version has already moved past it, the result is ``SUPERSEDED`` without a call. Without it the
    version read on entry is used, so callers arriving while another refresh is in flight share its result.
    ``only_if_due``: skip the refresh unless the token expires within ``TOKEN_REFRESH_WINDOW_DAYS``
    (the sweep sets it, which makes a task that runs twice harmless).
    ``follow_up``: when the answer is lost, queue the follow-up check (only the follow-up itself turns it
    off, as it retries on its own).

    Returns the outcome; raises ``TokenRefreshTransient`` when the refresh should be retried later, and
    ``CtidToken.DoesNotExist`` when the cTID has no token.
    """
    _assert_no_transaction()
    expected_version = seen_version
    recent_after: datetime | None = None
    if seen_version is None and settings.TOKEN_REFRESH_RECENT_SECONDS > 0:
        # No stale version named: a refresh that succeeded a moment ago is this caller's answer.
        recent_after = timezone.now() - timedelta(seconds=settings.TOKEN_REFRESH_RECENT_SECONDS)
    owner = _lease_owner()
    deadline = time.monotonic() + settings.TOKEN_REFRESH_COALESCE_WAIT_SECONDS
    waited = False
    delay = 0.05
    while True:
        now = timezone.now()
        if not waited:
            # One cursor for the claim and the write: none to set up after the token call (a cold process).
            with prepared.cursor() as cursor:
                claimed = _claim(
                    cursor,
                    ctid_id=ctid_id,
                    owner=owner,
                    now=now,
                    version=expected_version,
                    due_before=_refresh_window_end(now) if only_if_due else None,
                    recent_after=recent_after,
                )
                if claimed is not None:
                    return _refresh_claimed(cursor, claimed, owner=owner, reason=reason, follow_up=follow_up)

        row = CtidToken.objects.only(
            "version",
            "state",
            "expires_at",
            "lease_owner",
            "lease_until",
            "last_refresh_outcome",
            "last_refresh_at",
        ).get(ctid_id=ctid_id)
        if expected_version is None:
            # From here on, a moved version means the refresh in flight (or a new consent) is our answer.
            expected_version = row.version
        if row.version != expected_version:
            return RefreshResult(RefreshOutcome.SUPERSEDED, row.version, row.expires_at, coalesced=waited)
        if row.state != CtidToken.State.ACTIVE:
            # After waiting, the holder's refresh was refused and marked the token.
            outcome = RefreshOutcome.REJECTED if waited else RefreshOutcome.NOT_ACTIVE
            return RefreshResult(outcome, row.version, row.expires_at, coalesced=waited)
        if only_if_due and row.expires_at > _refresh_window_end(now):
            return RefreshResult(RefreshOutcome.NOT_DUE, row.version, row.expires_at)
        lease_free = not row.lease_owner or (row.lease_until is not None and row.lease_until < now)
        if lease_free and _recent_success(row, recent_after):
            return RefreshResult(RefreshOutcome.SUPERSEDED, row.version, row.expires_at, coalesced=True)
        if lease_free:
            if waited and row.last_refresh_outcome == CtidToken.Outcome.TRANSIENT:
                # The holder released the lease without a new pair: share its failure rather than repeat it
                # at once; the caller retries later with backoff.
                raise TokenRefreshTransient("The refresh in flight failed; it will be retried.")
            waited = False
            continue  # released (or expired) between the claim and the read: claim again
        if time.monotonic() >= deadline:
            raise TokenRefreshTransient("Another refresh of this token is still in flight.")
        waited = True
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _recent_success(row: CtidToken, recent_after: datetime | None) -> bool:
    return (
        recent_after is not None
        and row.last_refresh_outcome == CtidToken.Outcome.OK
        and row.last_refresh_at is not None
        and row.last_refresh_at >= recent_after
    )


@dataclass(frozen=True)
class _Claimed:
    pk: int
    ctid_id: int
    version: int
    refresh_token: str = field(repr=False)
    last_refresh_outcome: str
    last_refresh_error: str


@lru_cache(maxsize=32)
def _claim_sql(vendor: str, by_version: bool, by_due: bool, not_recent: bool) -> str:
    """The text of the lease claim with the conditions asked for, made once per combination."""
    conditions = [
        "ctid_id = %s",
        "state = %s",
        "(lease_until IS NULL OR lease_until < %s)",
    ]
    if by_version:
        conditions.append("version = %s")
    if by_due:
        conditions.append("expires_at <= %s")
    if not_recent:
        conditions.append(
            "NOT (last_refresh_outcome = %s AND last_refresh_at IS NOT NULL AND last_refresh_at >= %s)"
        )
    prefix, source = "", ""
    if vendor == "postgresql":
        # Local to the statement's own transaction: nothing else on the connection commits asynchronously.
        prefix = "WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true)) "
        source = "FROM async_commit "
    table = connections[DEFAULT_DB_ALIAS].ops.quote_name(CtidToken._meta.db_table)
    # Only the quoted table name and fixed strings are interpolated; every value is a parameter.
    return (
        f"{prefix}UPDATE {table} SET lease_owner = %s, lease_until = %s "  # noqa: S608
        f"{source}WHERE {' AND '.join(conditions)} "
        "RETURNING id, version, refresh_token, last_refresh_outcome, last_refresh_error"
    )


def _claim(
    cursor: CursorWrapper,
    *,
    ctid_id: int,
    owner: str,
    now: datetime,
    version: int | None,
    due_before: datetime | None,
    recent_after: datetime | None = None,
) -> _Claimed | None:
    """Take the refresh lease if it is free, and read the refresh token in the same statement.

    One conditional UPDATE ... RETURNING (PostgreSQL, and SQLite >= 3.35): the claim and the read cannot
    be separated by another writer, and the hot path costs one round trip.

    On PostgreSQL the claim commits without waiting for its WAL flush (``synchronous_commit`` off for this one
    statement's transaction). Other sessions see the lease as soon as it commits, so single flight does not
    depend on the flush. Only a server crash can lose the claim, and a crash also ends the holder's
    connection, so its write could not land anyway. The refresh's write, which carries the new tokens, still
    commits durably and flushes the claim's WAL with its own.
    """
    db = connections[DEFAULT_DB_ALIAS]
    adapt = db.ops.adapt_datetimefield_value
    lease_until = now + timedelta(seconds=settings.TOKEN_REFRESH_LEASE_SECONDS)
    params: list[Any] = [owner, adapt(lease_until), ctid_id, CtidToken.State.ACTIVE.value, adapt(now)]
    if version is not None:
        params.append(version)
    if due_before is not None:
        params.append(adapt(due_before))
    if recent_after is not None:
        params.extend([CtidToken.Outcome.OK.value, adapt(recent_after)])
    sql = _claim_sql(db.vendor, version is not None, due_before is not None, recent_after is not None)
    cursor.execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    pk, claimed_version, ciphertext, outcome, error = row
    return _Claimed(pk, ctid_id, claimed_version, crypto.decrypt(ciphertext), outcome, error)


def _refresh_claimed(
    cursor: CursorWrapper, claimed: _Claimed, *, owner: str, reason: str, follow_up: bool
) -> RefreshResult:
    released = False
    ctid_id = claimed.ctid_id
    try:
        version = claimed.version
        started = timezone.now()
        try:
            pair = oauth_client().refresh(refresh_token=claimed.refresh_token)
        except TokenRejected as exc:
            released = True
            return _on_rejected(token=claimed, owner=owner, reason=reason, error=exc, at=started)
        except TokenTransientError as exc:
            released = True
            _on_transient(token=claimed, owner=owner, error=exc, at=started)
            queued = False
            if exc.may_have_been_sent and follow_up:
                queued = _follow_up_later(ctid_id=ctid_id, seen_version=version)
            raise TokenRefreshTransient(
                str(exc), ambiguous=exc.may_have_been_sent, followed_up=queued
            ) from None

        now = timezone.now()
        expires_at = _expiry(pair, now)
        updated = _store_refreshed(cursor, claimed, pair=pair, now=now, expires_at=expires_at)
        released = True
        if updated:
            logger.info(
                "ctid token refreshed",
                extra={"ctid_id": ctid_id, "version": version + 1, "reason": reason},
            )
            return RefreshResult(RefreshOutcome.REFRESHED, version + 1, expires_at)

        current = CtidToken.objects.only("version", "lease_owner", "expires_at").get(pk=claimed.pk)
        if current.lease_owner != owner:
            # A new consent replaced the token (and cleared the lease) while the call was in flight; the
            # consent's pair is the valid one and the pair just received belongs to the old chain.
            logger.warning(
                "ctid token refresh superseded by a new consent",
                extra={"ctid_id": ctid_id, "version": current.version, "reason": reason},
            )
            return RefreshResult(RefreshOutcome.SUPERSEDED, current.version, current.expires_at)
        # The version moved under a lease this process still holds: it should be impossible. The pair just
        # received is the only one Spotware still honours, so keep it.
        logger.critical(
            "ctid token version moved during a leased refresh; storing the new pair anyway",
            extra={"ctid_id": ctid_id, "expected_version": version, "found_version": current.version},
        )
        _store_refreshed(cursor, claimed, pair=pair, now=now, expires_at=expires_at, any_version=True)
        stored = CtidToken.objects.only("version").get(pk=claimed.pk)
        return RefreshResult(RefreshOutcome.REFRESHED, stored.version, expires_at)
    finally:
        if not released:
            CtidToken.objects.filter(ctid_id=ctid_id, lease_owner=owner).update(
                lease_owner="", lease_until=None
            )


@lru_cache(maxsize=8)
def _store_sql(vendor: str, any_version: bool) -> str:
    """The text of the write of a refreshed pair, made once (``vendor`` keys the table name's quoting)."""
    table = connections[DEFAULT_DB_ALIAS].ops.quote_name(CtidToken._meta.db_table)
    return (
        f"UPDATE {table} SET access_token = %s, refresh_token = %s, expires_at = %s, "  # noqa: S608
        "version = version + 1, lease_owner = '', lease_until = NULL, last_refresh_at = %s, "
        "last_refresh_outcome = %s, last_refresh_error = '', refresh_failures = 0, updated_at = %s "
        "WHERE id = %s" + ("" if any_version else " AND version = %s")
    )


def _store_refreshed(
    cursor: CursorWrapper,
    claimed: _Claimed,
    *,
    pair: TokenPair,
    now: datetime,
    expires_at: datetime,
    any_version: bool = False,
) -> bool:
    """Write both tokens, the expiry and the new version in one UPDATE conditional on the version read.

    Plain SQL with the model field's encryption: the ORM's update machinery would cost more than the statement.
    """
    db = connections[DEFAULT_DB_ALIAS]
    adapt = db.ops.adapt_datetimefield_value
    sql = _store_sql(db.vendor, any_version)
    params: list[Any] = [
        crypto.encrypt(pair.access_token),
        crypto.encrypt(pair.refresh_token),
        adapt(expires_at),
        adapt(now),
        CtidToken.Outcome.OK.value,
        adapt(now),
        claimed.pk,
    ]
    if not any_version:
        params.append(claimed.version)
    cursor.execute(sql, params)
    return cursor.rowcount == 1


def _on_transient(*, token: _Claimed, owner: str, error: TokenTransientError, at: datetime) -> None:
    message = ("ambiguous: " if error.may_have_been_sent else "") + str(error)
    record = {
        "last_refresh_at": at,
        "last_refresh_outcome": CtidToken.Outcome.TRANSIENT,
        "last_refresh_error": message[:500],
        "refresh_failures": F("refresh_failures") + 1,
        "updated_at": timezone.now(),
    }
    if not CtidToken.objects.filter(pk=token.pk, lease_owner=owner).update(
        lease_owner="", lease_until=None, **record
    ):
        CtidToken.objects.filter(pk=token.pk).update(**record)
    logger.warning(
        "ctid token refresh failed, will retry",
        extra={"ctid_id": token.ctid_id, "error": message, "ambiguous": error.may_have_been_sent},
    )


def _on_rejected(
    *, token: _Claimed, owner: str, reason: str, error: TokenRejected, at: datetime
) -> RefreshResult:
    now = timezone.now()
    record = {
        "last_refresh_at": at,
        "last_refresh_error": str(error)[:500],
        "updated_at": now,
    }
    # Re-check before declaring the chain dead: another process or a new consent may have replaced the token.
    with transaction.atomic():
        marked = CtidToken.objects.filter(pk=token.pk, version=token.version).update(
            state=CtidToken.State.NEEDS_RECONNECT,
            lease_owner="",
            lease_until=None,
            last_refresh_outcome=CtidToken.Outcome.REJECTED,
            refresh_failures=F("refresh_failures") + 1,
            **record,
        )
        if not marked:
            CtidToken.objects.filter(pk=token.pk, lease_owner=owner).update(lease_owner="", lease_until=None)
            CtidToken.objects.filter(pk=token.pk).update(
                last_refresh_outcome=CtidToken.Outcome.SUPERSEDED, **record
            )
            current = CtidToken.objects.only("version", "expires_at").get(pk=token.pk)
            logger.info(
                "ctid token refresh refused, but the token was already replaced",
                extra={"ctid_id": token.ctid_id, "version": current.version},
            )
            return RefreshResult(RefreshOutcome.SUPERSEDED, current.version, current.expires_at)
        ctid = Ctid.objects.select_related("trader").get(pk=token.ctid_id)
        state_reason = "cTrader refused to refresh the access; the trader has to reconnect the cTrader ID."
        Ctid.objects.filter(pk=ctid.pk).update(
            state=Ctid.State.NEEDS_RECONNECT, state_reason=state_reason, state_changed_at=now
        )
        audit_event_record(
            trader=ctid.trader,
            category="ctid",
            action="token_refresh",
            outcome="needs_reconnect",
            message=f"Token refresh of cTID {ctid.user_id} refused: {error.error_code}"[:500],
            detail={
                "ctid_id": ctid.pk,
                "user_id": ctid.user_id,
                "error_code": error.error_code,
                "reason": reason,
            },
        )
    if token.last_refresh_outcome == CtidToken.Outcome.TRANSIENT and token.last_refresh_error.startswith(
        "ambiguous"
    ):
        # The earlier attempt probably rotated the token and its answer was lost: only a new consent helps.
        logger.error(
            "ctid token chain lost after an ambiguous refresh; the cTID needs reconnecting",
            extra={"ctid_id": ctid.pk, "error_code": error.error_code},
        )
    else:
        logger.warning(
            "ctid token refresh refused; the cTID needs reconnecting",
            extra={"ctid_id": ctid.pk, "error_code": error.error_code},
        )
    ctid.state = Ctid.State.NEEDS_RECONNECT
    ctid.state_reason = state_reason
    ctid_needs_reconnect.send(sender=Ctid, ctid=ctid, reason=state_reason)
    expires_at = CtidToken.objects.only("expires_at").get(pk=token.pk).expires_at
    return RefreshResult(RefreshOutcome.REJECTED, token.version, expires_at)


def _follow_up_later(*, ctid_id: int, seen_version: int) -> bool:
    """Queue the check of a chain whose last refresh answer was lost; True when a message was sent.

    Without a broker (embedded mode) nothing is queued: the periodic ``follow_up_lost_refreshes`` entry
    finds the token by its recorded outcome. It is also the safety net when a message is lost.
    """
    from clientarea.celery import embedded_mode, registered_task

    task = registered_task("accounts.tasks.follow_up_ctid_token_refresh")
    if embedded_mode():
        return False
    try:
        task.apply_async((ctid_id, seen_version), countdown=settings.TOKEN_REFRESH_FOLLOW_UP_SECONDS)
    except Exception as exc:
        logger.error(
            "ctid token follow-up could not be queued; the periodic follow-up will run it",
            extra={"ctid_id": ctid_id, "error": exc.__class__.__name__},
        )
        return False
    return True


def ctid_token_follow_up(*, ctid_id: int, seen_version: int) -> RefreshResult:
    """Check the chain of a token whose last refresh answer was lost: refresh it once more.

    Either the version moved meanwhile (a refresh or a new consent stored a pair: ``SUPERSEDED``), or the
    refresh succeeds (the lost request never rotated the token), or it is refused: the cTID is marked
    ``needs_reconnect`` and the trader is told. Transient failures raise ``TokenRefreshTransient`` for the
    caller's own retry; no further follow-up is queued from here.
    """
    return ctid_token_refresh(
        ctid_id=ctid_id, reason="follow-up of a lost answer", seen_version=seen_version, follow_up=False
    )


def ctid_tokens_due_batches(*, batch_size: int | None = None) -> Iterator[list[int]]:
    """The cTID ids whose tokens are due for a refresh, in batches: one query per batch, whatever the count.

    Due: active, expiring within ``TOKEN_REFRESH_WINDOW_DAYS`` and not leased by a refresh in flight.
    Keyset paging on the primary key keeps every batch query cheap on a large table.
    """
    now = timezone.now()
    due = CtidToken.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        state=CtidToken.State.ACTIVE,
        expires_at__lte=_refresh_window_end(now),
    )
    return keyset_batches(due, batch_size=batch_size or settings.TOKEN_SWEEP_BATCH_SIZE, value="ctid_id")
