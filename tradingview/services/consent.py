"""The trader's consent: the adapter token for the chosen accounts, the grant that stores it, the code.

A consent form can be submitted twice (a double click, a retry after a timeout): the first submission claims the
form's key (a short-lived ``ConsentClaim`` row, taken by the consent's re-check in the same statement and
released only when nothing was linked) before calling the adapter and stores the grant, active, once the adapter
has answered; a repeat gets the same grant with a fresh code instead of a second adapter token. The grant's
``consent_key`` is unique, so one form makes at most one grant even when a claim is lost.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import Error, IntegrityError, transaction
from django.utils import timezone

from accounts.models import AuditEvent, Trader, TradingAccount
from accounts.services.audit import audit_event_record, audit_event_values
from clientarea import prepared

from .. import adapter
from ..models import AUDIT_CATEGORY, AuthorizationCode, ConsentClaim, Grant, RedirectUri, token_hash
from ..selectors import account_ineligibility, consent_claim_cte, consent_recheck, trader_accounts
from . import statements
from .authorization import AuthorizationRequest, redirect_with_state
from .logout import PENDING_STALE_SECONDS
from .revocation import logout_enqueue

logger = logging.getLogger(__name__)

MAX_ACCOUNTS_PER_GRANT = 1000


class ConsentRefused(Exception):
    """The consent cannot go ahead as submitted; nothing was sent to the adapter."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConsentFailed(Exception):
    """The adapter did not issue a token; no grant and no code exist. The trader can retry."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


class AlreadyLinked(Exception):
    """This consent was already completed and its code handed to TradingView."""


@dataclass(frozen=True)
class ConsentResult:
    grant_id: int
    code: str
    redirect_url: str


def _chosen_accounts(*, trader: Trader, account_ids: Sequence[int]) -> list[TradingAccount]:
    ids = set(account_ids)
    if not ids:
        raise ConsentRefused("Choose at least one account to link.")
    if len(ids) > MAX_ACCOUNTS_PER_GRANT:
        raise ConsentRefused("Too many accounts were chosen.")
    accounts = list(trader_accounts(trader=trader).filter(pk__in=ids))
    if len(accounts) != len(ids):
        raise ConsentRefused("One or more of the chosen accounts are not yours.")
    for account in accounts:
        reason = account_ineligibility(account)
        if reason:
            raise ConsentRefused(f"Account {account.login} cannot be linked: {reason}")
    if len({a.ctid_id for a in accounts}) != 1:
        raise ConsentRefused("Choose accounts of one cTrader ID at a time.")
    return accounts


def adapter_token_expiry(issued_at: datetime) -> datetime:
    return issued_at + timedelta(days=settings.TRADINGVIEW_ADAPTER_TOKEN_LIFETIME_DAYS)


def _code_values(*, client_id: int, code: str, redirect_uri: str) -> dict[str, Any]:
    """A new code's fields (attribute names), its grant aside."""
    return {
        "code_hash": token_hash(code),
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "expires_at": timezone.now() + timedelta(seconds=settings.TRADINGVIEW_CODE_TTL_SECONDS),
    }


def _code_new(*, client_id: int, code: str, redirect_uri: str) -> AuthorizationCode:
    return AuthorizationCode(**_code_values(client_id=client_id, code=code, redirect_uri=redirect_uri))


def _code_issue(*, grant: Grant, redirect_uri: str) -> str:
    code = secrets.token_urlsafe(32)
    # Any earlier unused code for this grant stops working: only the newest redirect reached TradingView.
    AuthorizationCode.objects.filter(grant=grant, used_at__isnull=True).update(superseded=True)
    row = _code_new(client_id=grant.client_id, code=code, redirect_uri=redirect_uri)
    row.grant = grant
    row.save(force_insert=True)
    return code


def _code_redirect(request: AuthorizationRequest, code: str) -> str:
    return redirect_with_state(request.redirect_uri, request.state, code=code)


@dataclass(frozen=True)
class Offered:
    """An account the consent page offered, as the page found it (carried by the signed form)."""

    account_id: int
    ctid_id: int
    ctid_user_id: int
    ctid_trader_account_id: int
    broker_name: str


@dataclass(frozen=True)
class _Chosen:
    """What a consent links: checked, and enough for the adapter call and the grant."""

    ctid_id: int
    ctid_user_id: int
    account_ids: list[int]
    account_numbers: list[int]
    broker_names: list[str]
    existing: Grant | None = None


def _chosen_offered(
    *,
    trader: Trader,
    request: AuthorizationRequest,
    account_ids: Sequence[int],
    consent_key: str,
    offered: Mapping[int, Offered],
) -> tuple[_Chosen | None, bool | None]:
    """The chosen accounts as the page offered them, if one narrow query finds them all still eligible and
    the client and its redirect URI still registered; None when anything differs (then everything is derived
    again, to say exactly what). The same query finds an earlier submission of this form and claims the form
    (``_consent_claim``): also returned, None when the query did not try."""
    ids = set(account_ids)
    if not ids or len(ids) > MAX_ACCOUNTS_PER_GRANT or not ids <= offered.keys():
        return None, None
    chosen = [offered[i] for i in sorted(ids)]
    if len({o.ctid_id for o in chosen}) != 1:
        return None, None
    found = consent_recheck(
        trader=trader,
        ctid_id=chosen[0].ctid_id,
        account_ids=sorted(ids),
        client_pk=request.client.pk,
        redirect_uri=request.redirect_uri,
        consent_key=consent_key,
        claim_until=_claim_until() if statements.available() else None,
    )
    if not found.client_registered or any(found.brokers.get(o.account_id) != o.broker_name for o in chosen):
        return None, found.claimed
    earlier = found.earlier_grant_id
    return _Chosen(
        ctid_id=chosen[0].ctid_id,
        ctid_user_id=chosen[0].ctid_user_id,
        account_ids=[o.account_id for o in chosen],
        account_numbers=sorted(o.ctid_trader_account_id for o in chosen),
        broker_names=sorted({o.broker_name for o in chosen}),
        existing=Grant.objects.get(pk=earlier) if earlier is not None else None,
    ), found.claimed


def grant_create(
    *,
    trader: Trader,
    request: AuthorizationRequest,
    account_ids: Sequence[int],
    consent_key: str,
    actor: Any = None,
    offered: Mapping[int, Offered] | None = None,
) -> ConsentResult:
    """Get an adapter token for the chosen accounts, store the grant and issue a code for TradingView.

    ``consent_key`` identifies one rendering of the consent form: submitting it again returns the same grant
    (with a fresh code) instead of asking the adapter twice. ``offered``: the accounts the page offered, as
    it found them; when the chosen ones are still as they were, one query checks it.
    Raises ``ClientChanged`` when the client or its redirect URI is no longer registered.
    """
    if trader.suspended:
        raise ConsentRefused("Your client area access is suspended.")
    chosen, claimed = None, None
    if offered:
        chosen, claimed = _chosen_offered(
            trader=trader, request=request, account_ids=account_ids, consent_key=consent_key, offered=offered
        )
        if chosen is None:
            if claimed:
                # Nothing goes to the adapter on this path yet: the form is claimed again once it is checked.
                _claim_release(consent_key)
            claimed = None
            if not _client_registered(request):
                raise ClientChanged()
    if chosen is None:
        chosen = _chosen_derived(
            trader=trader, request=request, account_ids=account_ids, consent_key=consent_key, actor=actor
        )
    earlier = _consent_claim(
        trader=trader, request=request, consent_key=consent_key, existing=chosen.existing, claimed=claimed
    )
    if earlier is not None:
        return _consent_repeat(grant=earlier, request=request)
    try:
        return _grant_store(
            trader=trader, request=request, consent_key=consent_key, chosen=chosen, actor=actor
        )
    except BaseException:
        # Nothing was linked: a retry of the form may ask the adapter at once.
        _claim_release(consent_key)
        raise
    # Once the grant is stored the claim is left to expire: a repeat that looked for the grant too early
    # then waits for it instead of asking the adapter for a token that would only be revoked.


class ClientChanged(Exception):
    """The client or its redirect URI changed since the consent page: the request is validated again."""


def _client_registered(request: AuthorizationRequest) -> bool:
    return RedirectUri.objects.filter(
        client_id=request.client.pk, client__is_active=True, uri=request.redirect_uri
    ).exists()


def _chosen_derived(
    *, trader: Trader, request: AuthorizationRequest, account_ids: Sequence[int], consent_key: str, actor: Any
) -> _Chosen:
    try:
        accounts = _chosen_accounts(trader=trader, account_ids=account_ids)
    except ConsentRefused as exc:
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="consent",
            outcome="refused",
            trader=trader,
            actor=actor,
            message=exc.message,
            detail={
                "client_id": request.client.client_id,
                "account_ids": sorted({int(i) for i in account_ids})[:50],
            },
        )
        raise
    return _Chosen(
        ctid_id=accounts[0].ctid_id,
        ctid_user_id=accounts[0].ctid.user_id,
        account_ids=[a.pk for a in accounts],
        account_numbers=sorted(a.ctid_trader_account_id for a in accounts),
        broker_names=sorted({a.jurisdiction.broker_name for a in accounts if a.jurisdiction is not None}),
        existing=Grant.objects.filter(consent_key=consent_key).first(),
    )


def _claim_seconds() -> float:
    # The adapter call it guards ends within the HTTP timeouts.
    return settings.HTTP_CONNECT_TIMEOUT + settings.HTTP_READ_TIMEOUT + 5


def _claim_until() -> datetime:
    return timezone.now() + timedelta(seconds=_claim_seconds())


def _consent_claim(
    *,
    trader: Trader,
    request: AuthorizationRequest,
    consent_key: str,
    existing: Grant | None,
    claimed: bool | None = None,
) -> Grant | None:
    """Claim this form for the adapter call; or the grant an earlier submission of it stored.

    ``claimed``: what the consent's re-check found, which claims in the same statement (None: not tried). The
    claim is a ``ConsentClaim`` row: a submission arriving while another is talking to the adapter waits for
    that one's grant. Should a claim be lost (the unlogged table emptied by a crash), the unique
    ``consent_key`` still keeps one grant per form (a surplus adapter token is then revoked).
    """
    deadline = time.monotonic() + _claim_seconds() + 1
    while True:
        if existing is not None:
            if existing.trader_id != trader.pk or existing.client_id != request.client.pk:
                raise ConsentRefused("This consent form belongs to another request.")
            if existing.state != Grant.State.PENDING:
                return existing
            if existing.created_at >= timezone.now() - timedelta(seconds=PENDING_STALE_SECONDS):
                # Stored by a submission of an earlier version of this service, still waiting for the adapter.
                if time.monotonic() > deadline:
                    raise _still_processing()
                time.sleep(0.1)
                existing = Grant.objects.filter(pk=existing.pk).first()
                continue
            # The submission that stored it died mid-call; nothing was handed out, so start over.
            Grant.objects.filter(pk=existing.pk, state=Grant.State.PENDING).delete()
            claimed = None
        if claimed is None:
            claimed = _claim_take(consent_key)
        if claimed:
            return None
        if time.monotonic() > deadline:
            raise _still_processing()
        time.sleep(0.1)
        existing = Grant.objects.filter(consent_key=consent_key).first()
        claimed = None


def _claim_take(consent_key: str) -> bool:
    """Claim the form on its own (the re-check claims in its statement): True when this submission holds it."""
    now = timezone.now()
    until = now + timedelta(seconds=_claim_seconds())
    if statements.available():
        with prepared.cursor() as cursor:
            cursor.execute(
                # The claim's SQL names only the models' tables; every value is a parameter.
                f"WITH {consent_claim_cte()} SELECT EXISTS (SELECT 1 FROM k)",  # noqa: S608
                [consent_key, until, consent_key, now],
            )
            return bool(cursor.fetchone()[0])
    if Grant.objects.filter(consent_key=consent_key).exists():
        return False
    try:
        with transaction.atomic():
            ConsentClaim.objects.create(key=consent_key, expires_at=until)
    except IntegrityError:
        return ConsentClaim.objects.filter(key=consent_key, expires_at__lte=now).update(expires_at=until) == 1
    return True


def _still_processing() -> ConsentFailed:
    return ConsentFailed(
        "Your earlier confirmation is still being processed. Please wait a moment and retry.", transient=True
    )


def _claim_release(consent_key: str) -> None:
    try:
        ConsentClaim.objects.filter(key=consent_key).delete()
    except Error:
        # It expires on its own: a retry of the form waits for it at most the claim's lifetime.
        logger.warning("consent claim not released: the database did not answer")


def _grant_store(
    *, trader: Trader, request: AuthorizationRequest, consent_key: str, chosen: _Chosen, actor: Any
) -> ConsentResult:
    """Ask the adapter, then store the grant, active, with its accounts, its code and its audit record."""
    try:
        generated = adapter.generate_token(
            user_id=chosen.ctid_user_id,
            broker_names=chosen.broker_names,
            ctid_trader_account_ids=chosen.account_numbers,
            is_verified=trader.kyc_verified,
        )
    except adapter.AdapterError as exc:
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="generate_token",
            outcome=exc.outcome,
            trader=trader,
            actor=actor,
            message=exc.message,
            detail={
                "client_id": request.client.client_id,
                "ctid": chosen.ctid_user_id,
                "account_ids": chosen.account_numbers[:50],
                "accounts": len(chosen.account_numbers),
                "http_status": exc.status,
            },
        )
        raise ConsentFailed(exc.message, transient=isinstance(exc, adapter.AdapterTransientError)) from exc

    issued_at = timezone.now()
    # The rows by their fields' values: one statement stores them, with no model instance built for it.
    grant = {
        "client_id": request.client.pk,
        "trader_id": trader.pk,
        "ctid_id": chosen.ctid_id,
        "broker_names": chosen.broker_names,
        "is_verified": trader.kyc_verified,
        "scope": request.scope,
        "consent_key": consent_key,
        "state": Grant.State.ACTIVE,
        "adapter_token": generated.token,
        "adapter_token_issued_at": issued_at,
        "adapter_token_expires_at": adapter_token_expiry(issued_at),
    }
    code = secrets.token_urlsafe(32)
    code_row = _code_values(client_id=request.client.pk, code=code, redirect_uri=request.redirect_uri)
    audit = audit_event_values(
        category=AUDIT_CATEGORY,
        action="grant_created",
        outcome="ok",
        trader=trader,
        actor=actor,
        detail={
            "client_id": request.client.client_id,
            "grant": None,
            "ctid": chosen.ctid_user_id,
            "account_ids": chosen.account_numbers[:50],
            "accounts": len(chosen.account_numbers),
        },
    )
    if statements.available():
        grant_id = statements.grant_insert(
            grant=grant, account_ids=chosen.account_ids, code=code_row, audit=audit
        )
    else:
        grant_id = _grant_insert_orm(
            grant=Grant(**grant),
            account_ids=chosen.account_ids,
            code=AuthorizationCode(**code_row),
            audit=AuditEvent(**audit),
        )
    if grant_id is None:
        # Another submission of this form stored its grant meanwhile: this token is surplus.
        _surplus_revoke(grant=Grant(**grant))
        earlier = Grant.objects.filter(consent_key=consent_key).first()
        if earlier is None or earlier.state == Grant.State.PENDING:
            raise _still_processing()
        return _consent_repeat(grant=earlier, request=request)
    return ConsentResult(grant_id=grant_id, code=code, redirect_url=_code_redirect(request, code))


def _grant_insert_orm(
    *, grant: Grant, account_ids: Sequence[int], code: AuthorizationCode, audit: AuditEvent
) -> int | None:
    """``statements.grant_insert`` through the ORM, in a transaction (databases other than PostgreSQL)."""
    try:
        with transaction.atomic():
            grant.save(force_insert=True)
    except IntegrityError:
        if not Grant.objects.filter(consent_key=grant.consent_key).exists():
            raise
        return None
    with transaction.atomic():
        statements.grant_accounts_insert_orm(grant_id=grant.pk, account_ids=account_ids)
        code.grant_id = grant.pk
        code.save(force_insert=True)
        audit.detail = {**audit.detail, "grant": grant.pk}
        audit.save(force_insert=True)
    return grant.pk


def _surplus_revoke(*, grant: Grant) -> None:
    """Keep a surplus adapter token only until the adapter is told to ``/logout`` it."""
    now = timezone.now()
    grant.state = Grant.State.REVOKING
    grant.consent_key = None
    grant.revoke_after = now
    grant.revoke_reason = "a repeated submission of a consent form"
    with transaction.atomic():
        grant.save(force_insert=True)
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="grant_revoke",
            outcome="surplus",
            trader_id=grant.trader_id,
            message=grant.revoke_reason,
            detail={"grant": grant.pk},
        )
        logout_enqueue(grant_id=grant.pk, countdown=0)


def _consent_repeat(*, grant: Grant, request: AuthorizationRequest) -> ConsentResult:
    if grant.state != Grant.State.ACTIVE:
        raise ConsentRefused("This link was revoked. Start again from TradingView.")
    with transaction.atomic():
        locked = Grant.objects.select_for_update().get(pk=grant.pk)
        if locked.codes.filter(used_at__isnull=False).exists():
            raise AlreadyLinked()
        code = _code_issue(grant=locked, redirect_uri=request.redirect_uri)
    return ConsentResult(grant_id=grant.pk, code=code, redirect_url=_code_redirect(request, code))


def consent_deny(*, trader: Trader | None, actor: Any, request: AuthorizationRequest) -> str:
    """The trader declined: record it; returns where to send the browser (TradingView, with ``access_denied``)."""
    audit_event_record(
        category=AUDIT_CATEGORY, action="consent", outcome="denied", trader=trader, actor=actor
    )
    return request.deny_url()
