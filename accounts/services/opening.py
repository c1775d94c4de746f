"""Opening trading accounts through Spotware's broker WebServices API: one service for the dashboard, the
TradingView authorization and staff approval.

Steps, each recorded on the ``AccountOpening`` row before the next begins: the cTID (the trader's connected
one, else ``ctid/create`` for the verified email) → ``traders`` create (tagged in ``description``) →
``ctid/link`` → the account stored at once. A failure anywhere leaves a resumable record:

- transient (and ambiguous) failures are retried by a Celery task with capped, jittered backoff; an ambiguous
  create is reconciled by looking the tag up in the trader list before anything is created again;
- permanent refusals stop the opening, tell the trader plainly and flag it for staff.

The trading password is checked by the form, hashed to md5 once (the API demands that hash) and never stored:
the hash travels only inside the queued task's arguments, encrypted, and expires after
``ACCOUNT_OPENING_SECRET_TTL_SECONDS``; after that the trader is asked for the password again.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.ctrader import webservices as ws
from accounts.models import AccountOpening, AccountType, Trader
from accounts.services.audit import audit_event_record
from clientarea import crypto, http

logger = logging.getLogger(__name__)


class OpeningRefused(Exception):
    """The opening cannot be started as asked; ``message`` is for the trader."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class OpeningRetry(Exception):
    """A transient failure: the task retries the opening later (the record says so already)."""


# --- the WebServices clients, one per environment and process ---
_clients: dict[tuple[Any, ...], ws.WebServicesClient] = {}
_clients_lock = threading.Lock()


def webservices_configured(*, environment: str) -> bool:
    url, login, password = _credentials(environment)
    return bool(url and login and password)


def _credentials(environment: str) -> tuple[str, int, str]:
    if environment == "live":
        return (
            settings.CTRADER_WEBSERVICES_LIVE_URL,
            settings.CTRADER_MANAGER_LIVE_LOGIN,
            settings.CTRADER_MANAGER_LIVE_PASSWORD,
        )
    return (
        settings.CTRADER_WEBSERVICES_DEMO_URL,
        settings.CTRADER_MANAGER_DEMO_LOGIN,
        settings.CTRADER_MANAGER_DEMO_PASSWORD,
    )


def webservices_client(*, environment: str) -> ws.WebServicesClient:
    """The process's client for one environment (its manager token is kept in memory and reused)."""
    url, login, password = _credentials(environment)
    if not (url and login and password):
        raise ws.WebServicesPermanent(
            f"WebServices for {environment} are not configured.", call="config", error_code="NOT_CONFIGURED"
        )
    key = (environment, url, login, hashlib.sha256(password.encode()).hexdigest(), settings.HTTP_READ_TIMEOUT)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = ws.WebServicesClient(
                base_url=url,
                manager_login=int(login),
                manager_password=password,
                session=http.session(pool_maxsize=16),
                timeout=http.timeout(),
            )
            _clients[key] = client
        return client


def ctid_environment() -> str:
    """cTID operations go to the live host, or to the demo host when only demo is configured."""
    return "live" if webservices_configured(environment="live") else "demo"


# --- account types ---
def account_type_check_group(*, environment: str, group_name: str) -> str:
    """Empty when ``group_name`` exists on the environment's server; otherwise why not (for staff)."""
    try:
        groups = webservices_client(environment=environment).trader_groups()
    except ws.WebServicesError as exc:
        return f"The trader groups could not be read from the {environment} server ({exc.error_code or exc})."
    names = sorted(g.name for g in groups)
    if group_name not in names:
        return f"The {environment} server has no trader group {group_name!r} (it has: {', '.join(names) or 'none'})."
    return ""


def account_types_for(*, trader: Trader, tradingview_only: bool = False) -> list[AccountType]:
    """The active account types the trader may open (KYC and demo rules applied)."""
    types = AccountType.objects.filter(is_active=True).select_related("jurisdiction")
    if tradingview_only:
        types = types.filter(is_tradingview=True, jurisdiction__tradingview_enabled=True)
    if not trader.kyc_verified:
        types = types.exclude(who_may_open=AccountType.Access.KYC)
    return [t for t in types if webservices_configured(environment=t.environment)]


# --- email verification ---
def email_is_verified(*, trader: Trader) -> bool:
    email = (trader.user.email or "").strip().lower()
    return bool(email) and trader.email_verified_at is not None and trader.email_verified.lower() == email


# --- the password's hash, sealed for the task message ---
def seal_password_hash(password: str) -> str:
    return crypto.seal(ws.md5_hex(password))


# --- starting ---
@dataclass(frozen=True)
class OpeningRequest:
    account_type: AccountType
    deposit_currency: str
    leverage: int
    key: str
    source: str = AccountOpening.Source.DASHBOARD


def account_opening_start(*, trader: Trader, request: OpeningRequest, password: str | None) -> AccountOpening:
    """Record the opening and queue it (or hold it for staff approval). A repeated form key returns the first.

    ``password`` is the trading password the form checked and confirmed; None for types opened after approval
    (the trader chooses it once staff approved).
    """
    existing = AccountOpening.objects.filter(trader=trader, key=request.key).first()
    if existing is not None:
        return existing
    account_type = request.account_type
    if trader.suspended:
        raise OpeningRefused(
            _("Your account is suspended, so you cannot open trading accounts."), code="suspended"
        )
    if not account_type.is_active or account_type not in account_types_for(trader=trader):
        raise OpeningRefused(_("This account type is not available to you."), code="type_unavailable")
    if (
        request.deposit_currency not in account_type.currencies
        or request.leverage not in account_type.leverages
    ):
        raise OpeningRefused(_("Choose a currency and a leverage from the list."), code="bad_choice")
    if not email_is_verified(trader=trader):
        raise OpeningRefused(_("Confirm your email address first."), code="email_unverified")
    needs_approval = account_type.who_may_open == AccountType.Access.APPROVAL
    if not needs_approval and not password:
        raise OpeningRefused(_("Choose a trading password."), code="password_missing")
    try:
        with transaction.atomic():
            opening = AccountOpening.objects.create(
                public_id=uuid.uuid4(),
                key=request.key[:64],
                trader=trader,
                account_type=account_type,
                source=request.source,
                deposit_currency=request.deposit_currency,
                leverage=request.leverage,
                tag=f"ca-open-{secrets.token_hex(12)}",
                state=AccountOpening.State.AWAITING_APPROVAL
                if needs_approval
                else AccountOpening.State.QUEUED,
            )
            if needs_approval:
                _approval_request_create(opening=opening)
            audit_event_record(
                category="opening",
                action="start",
                outcome=opening.state,
                trader=trader,
                actor=trader.user,
                message=f"Opening of a {account_type.name} account requested.",
                detail={"opening": str(opening.public_id), "account_type_id": account_type.pk},
            )
    except IntegrityError:
        # The same form submitted twice at once: the other request recorded it.
        twin = AccountOpening.objects.filter(trader=trader, key=request.key[:64]).first()
        if twin is not None:
            return twin
        # Otherwise the one-open-request rule of the approval queue refused it.
        raise OpeningRefused(
            _("You already have a request waiting for our team's review."), code="request_pending"
        ) from None
    if not needs_approval:
        assert password is not None
        _enqueue(opening, seal_password_hash(password))
    logger.info("account opening started", extra={"opening": str(opening.public_id), "state": opening.state})
    return opening


def _approval_request_create(*, opening: AccountOpening) -> None:
    from tradingview.models import AccountRequest

    AccountRequest.objects.create(
        trader=opening.trader,
        environment=opening.account_type.environment,
        jurisdiction=opening.account_type.jurisdiction,
        note=f"{opening.account_type.name}, {opening.deposit_currency}, 1:{opening.leverage}",
        opening=opening,
    )


def account_opening_provide_password(
    *, trader: Trader, public_id: uuid.UUID, password: str
) -> AccountOpening:
    """The trader chose the trading password of an opening that waits for it (approved, or expired)."""
    opening = AccountOpening.objects.get(trader=trader, public_id=public_id)
    updated = AccountOpening.objects.filter(pk=opening.pk, state=AccountOpening.State.NEEDS_PASSWORD).update(
        state=AccountOpening.State.QUEUED, error="", error_code="", updated_at=timezone.now()
    )
    if updated:
        _enqueue(opening, seal_password_hash(password))
    opening.refresh_from_db()
    return opening


def account_opening_approve(*, opening: AccountOpening, actor: Any) -> AccountOpening:
    """Staff approved: the trader is asked (by email and on the page) to choose the trading password."""
    if _decide(
        opening, actor, "approve", "approved", state=AccountOpening.State.NEEDS_PASSWORD, approved_by=actor
    ):
        trader_mail_queue(
            trader=opening.trader,
            subject=_("Your account request was approved"),
            body=_(
                "Your request for a %(type)s account was approved. Choose its trading password to open it:\n\n%(url)s\n"
            )
            % {"type": opening.account_type.name, "url": settings.SITE_URL + _status_path(opening)},
        )
    return opening


def account_opening_decline(*, opening: AccountOpening, actor: Any, reason: str = "") -> AccountOpening:
    _decide(
        opening,
        actor,
        "decline",
        "declined",
        state=AccountOpening.State.DECLINED,
        error=(reason or _("Your request was declined."))[:500],
        finished_at=timezone.now(),
    )
    return opening


def _decide(opening: AccountOpening, actor: Any, action: str, outcome: str, **changes: Any) -> bool:
    """Apply staff's decision to an opening that still awaits approval, and record it; False (nothing done)
    when it no longer awaits approval (decided by someone else meanwhile). ``opening`` is read again."""
    decided = AccountOpening.objects.filter(
        pk=opening.pk, state=AccountOpening.State.AWAITING_APPROVAL
    ).update(**changes, updated_at=timezone.now())
    opening.refresh_from_db()
    if decided:
        audit_event_record(
            category="opening", action=action, outcome=outcome, trader=opening.trader, actor=actor,
            message=f"Opening {opening.public_id} {outcome}.", detail={"opening": str(opening.public_id)},
        )  # fmt: skip
    return bool(decided)


def _status_path(opening: AccountOpening) -> str:
    return reverse("opening-status", args=[opening.public_id])


def _enqueue(opening: AccountOpening, sealed: str) -> None:
    from clientarea.celery import registered_task

    def send() -> None:
        registered_task("accounts.tasks.open_trading_account").delay(opening.pk, sealed)

    # After commit: the worker must find the row the request wrote.
    transaction.on_commit(send)


def trader_mail_queue(*, trader: Trader, subject: str, body: str) -> None:
    """Send a mail from a worker (a web request never waits on the mail server); retried on failure."""
    from clientarea.celery import registered_task

    transaction.on_commit(
        lambda: registered_task("accounts.tasks.send_trader_mail").delay(trader.pk, subject, body)
    )


def trader_mail(trader: Trader, subject: str, body: str) -> bool:
    try:
        send_mail(subject, body, None, [trader.user.email], fail_silently=False)
    except Exception as exc:  # a mail server outage must not undo an opened account
        logger.warning("mail not sent", extra={"trader_id": trader.pk, "error": type(exc).__name__})
        return False
    return True


def opening_available() -> bool:
    """Whether any environment is configured and any account type is offered (the dashboard's button)."""
    if not (webservices_configured(environment="live") or webservices_configured(environment="demo")):
        return False
    return AccountType.objects.filter(is_active=True).exists()


# How long an account opened from the TradingView flow stays ticked on the consent page.
TRADINGVIEW_PRESELECT_SECONDS = 2 * 3600
