"""The trader's consent: the adapter token for the chosen accounts, the grant that stores it, the code.

A consent form can be submitted twice (a double click, a retry after a timeout): the first submission claims a
pending grant under the form's key before calling the adapter, and a repeat gets the same grant with a fresh
code instead of a second adapter token.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Trader, TradingAccount
from accounts.services.audit import audit_event_record

from .. import adapter
from ..models import AUDIT_CATEGORY, AuthorizationCode, Grant, token_hash
from ..selectors import account_ineligibility, trader_accounts
from .authorization import AuthorizationRequest, add_query

MAX_ACCOUNTS_PER_GRANT = 1000
# A pending grant older than this belongs to a request that died while waiting for the adapter.
PENDING_STALE_SECONDS = 120


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
    grant: Grant
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


def _code_issue(*, grant: Grant, redirect_uri: str, first: bool = False) -> str:
    code = secrets.token_urlsafe(32)
    now = timezone.now()
    if not first:
        # Any earlier unused code for this grant stops working: only the newest redirect reached TradingView.
        AuthorizationCode.objects.filter(grant=grant, used_at__isnull=True).update(superseded=True)
    AuthorizationCode.objects.create(
        code_hash=token_hash(code),
        client_id=grant.client_id,
        grant=grant,
        redirect_uri=redirect_uri,
        expires_at=now + timedelta(seconds=settings.TRADINGVIEW_CODE_TTL_SECONDS),
    )
    return code


def _code_redirect(request: AuthorizationRequest, code: str) -> str:
    params = {"code": code}
    if request.state is not None:
        params["state"] = request.state
    return add_query(request.redirect_uri, params)


def grant_create(
    *,
    trader: Trader,
    request: AuthorizationRequest,
    account_ids: Sequence[int],
    consent_key: str,
    actor: Any = None,
) -> ConsentResult:
    """Get an adapter token for the chosen accounts, store the grant and issue a code for TradingView.

    ``consent_key`` identifies one rendering of the consent form: submitting it again returns the same grant
    (with a fresh code) instead of asking the adapter twice.
    """
    if trader.suspended:
        raise ConsentRefused("Your client area access is suspended.")
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
    ctid = accounts[0].ctid
    broker_names = sorted({a.jurisdiction.broker_name for a in accounts if a.jurisdiction is not None})
    account_numbers = sorted(a.ctid_trader_account_id for a in accounts)

    grant = _grant_claim(
        trader=trader,
        request=request,
        consent_key=consent_key,
        ctid_id=ctid.pk,
        broker_names=broker_names,
        is_verified=trader.kyc_verified,
    )
    if grant.state != Grant.State.PENDING:
        return _consent_repeat(grant=grant, request=request)

    try:
        generated = adapter.generate_token(
            user_id=ctid.user_id,
            broker_names=broker_names,
            ctid_trader_account_ids=account_numbers,
            is_verified=trader.kyc_verified,
        )
    except adapter.AdapterError as exc:
        Grant.objects.filter(pk=grant.pk, state=Grant.State.PENDING).delete()
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="generate_token",
            outcome=exc.outcome,
            trader=trader,
            actor=actor,
            message=exc.message,
            detail={
                "client_id": request.client.client_id,
                "ctid": ctid.user_id,
                "account_ids": account_numbers[:50],
                "accounts": len(account_numbers),
                "http_status": exc.status,
            },
        )
        raise ConsentFailed(exc.message, transient=isinstance(exc, adapter.AdapterTransientError)) from exc

    issued_at = timezone.now()
    with transaction.atomic():
        grant.state = Grant.State.ACTIVE
        grant.adapter_token = generated.token
        grant.adapter_token_issued_at = issued_at
        grant.adapter_token_expires_at = adapter_token_expiry(issued_at)
        grant.save(
            update_fields=[
                "state",
                "adapter_token",
                "adapter_token_issued_at",
                "adapter_token_expires_at",
                "updated_at",
            ]
        )
        Grant.accounts.through.objects.bulk_create(
            Grant.accounts.through(grant_id=grant.pk, tradingaccount_id=a.pk) for a in accounts
        )
        code = _code_issue(grant=grant, redirect_uri=request.redirect_uri, first=True)
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="grant_created",
            outcome="ok",
            trader=trader,
            actor=actor,
            detail={
                "client_id": request.client.client_id,
                "grant": grant.pk,
                "ctid": ctid.user_id,
                "account_ids": account_numbers[:50],
                "accounts": len(account_numbers),
            },
        )
    return ConsentResult(grant=grant, code=code, redirect_url=_code_redirect(request, code))


def _grant_claim(
    *,
    trader: Trader,
    request: AuthorizationRequest,
    consent_key: str,
    ctid_id: int,
    broker_names: list[str],
    is_verified: bool,
) -> Grant:
    """The pending grant this submission owns, or the grant an earlier submission of the same form made."""
    # An earlier submission still talking to the adapter finishes within the HTTP timeouts.
    deadline = time.monotonic() + settings.HTTP_CONNECT_TIMEOUT + settings.HTTP_READ_TIMEOUT + 1
    while True:
        try:
            # In autocommit mode a lone INSERT needs no transaction; inside one, a savepoint keeps it usable.
            with transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext():
                return Grant.objects.create(
                    client=request.client,
                    trader=trader,
                    ctid_id=ctid_id,
                    broker_names=broker_names,
                    is_verified=is_verified,
                    scope=request.scope,
                    consent_key=consent_key,
                )
        except IntegrityError:
            existing = Grant.objects.filter(consent_key=consent_key, trader=trader).first()
            if existing is None:
                continue  # the earlier attempt failed and was removed: this one may try again
            if existing.client_id != request.client.pk:
                raise ConsentRefused("This consent form belongs to another request.") from None
            if existing.state != Grant.State.PENDING:
                return existing
            if existing.created_at < timezone.now() - timedelta(seconds=PENDING_STALE_SECONDS):
                # The submission that claimed it died mid-call; nothing was handed out, so start over.
                Grant.objects.filter(pk=existing.pk, state=Grant.State.PENDING).delete()
                continue
            if time.monotonic() > deadline:
                raise ConsentFailed(
                    "Your earlier confirmation is still being processed. Please wait a moment and retry.",
                    transient=True,
                ) from None
            time.sleep(0.1)


def _consent_repeat(*, grant: Grant, request: AuthorizationRequest) -> ConsentResult:
    if grant.state != Grant.State.ACTIVE:
        raise ConsentRefused("This link was revoked. Start again from TradingView.")
    with transaction.atomic():
        locked = Grant.objects.select_for_update().get(pk=grant.pk)
        if locked.codes.filter(used_at__isnull=False).exists():
            raise AlreadyLinked()
        code = _code_issue(grant=locked, redirect_uri=request.redirect_uri)
    return ConsentResult(grant=grant, code=code, redirect_url=_code_redirect(request, code))


def consent_deny(*, trader: Trader | None, actor: Any, request: AuthorizationRequest) -> str:
    """The trader declined: record it; returns where to send the browser (TradingView, with ``access_denied``)."""
    audit_event_record(
        category=AUDIT_CATEGORY, action="consent", outcome="denied", trader=trader, actor=actor
    )
    return request.deny_url()
