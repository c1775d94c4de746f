"""Running an account opening: the steps, their records, reconciliation after a lost answer, retries.

See ``accounts.services.opening`` for the whole picture; this module is what the Celery task runs.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.ctrader import webservices as ws
from accounts.models import AccountOpening, AccountType, Ctid, TradingAccount
from accounts.services.audit import audit_event_record
from accounts.services.opening import (
    OpeningRetry,
    ctid_environment,
    email_is_verified,
    trader_mail,
    webservices_client,
)
from clientarea import crypto

logger = logging.getLogger(__name__)

LEASE_SECONDS = 120
# Seconds either side of the create call within which the tagged trader is looked for.
RECONCILE_MARGIN = timedelta(minutes=10)


def _unseal(sealed: str) -> str | None:
    if not sealed:
        return None
    return crypto.unseal(sealed, ttl=settings.ACCOUNT_OPENING_SECRET_TTL_SECONDS)


# --- running ---
def retry_countdown(attempts: int) -> float:
    base = settings.ACCOUNT_OPENING_RETRY_BASE_SECONDS
    ceiling = min(settings.ACCOUNT_OPENING_RETRY_CAP_SECONDS, base * (2 ** max(attempts - 1, 0)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _claim(opening_id: int) -> AccountOpening | None:
    now = timezone.now()
    runnable = Q(state__in=[AccountOpening.State.QUEUED, AccountOpening.State.RETRYING]) | Q(
        state=AccountOpening.State.RUNNING, lease_until__lt=now
    )
    with transaction.atomic():
        # The lease need not survive a database crash (its holder would not either): no wait for the flush.
        _async_commit()
        claimed = AccountOpening.objects.filter(runnable, pk=opening_id).update(
            state=AccountOpening.State.RUNNING,
            lease_until=now + timedelta(seconds=LEASE_SECONDS),
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    if not claimed:
        return None
    return AccountOpening.objects.select_related("trader__user", "account_type__jurisdiction").get(
        pk=opening_id
    )


def _save(opening: AccountOpening, *, durable: bool = True, **changes: Any) -> None:
    """Write ``changes`` to the row (and the object). ``durable=False``: the commit does not wait for the WAL
    flush (PostgreSQL); only for facts the next attempt can find again by itself."""
    for name, value in changes.items():
        setattr(opening, name, value)
    opening.updated_at = timezone.now()
    query = AccountOpening.objects.filter(pk=opening.pk)
    if durable:
        query.update(**changes, updated_at=opening.updated_at)
        return
    with transaction.atomic():
        _async_commit()
        query.update(**changes, updated_at=opening.updated_at)


def _async_commit() -> None:
    """This transaction commits without waiting for its WAL flush (PostgreSQL). Safe for facts that a crash
    may lose: the next durable commit flushes everything before it, and every step is redone or looked up."""
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def account_opening_run(*, opening_id: int, sealed_password_hash: str) -> AccountOpening | None:
    """Run (or resume) one opening from its recorded step. Raises ``OpeningRetry`` for a later attempt.

    Safe to run twice: a lease makes one runner at a time; each step reads what the last one recorded.
    """
    opening = _claim(opening_id)
    if opening is None:
        current = AccountOpening.objects.filter(pk=opening_id).first()
        if current is not None and current.state == AccountOpening.State.RUNNING:
            # Another runner holds it, or one died holding it (a redelivered message): look again once the
            # lease has run out.
            raise OpeningRetry("the opening is held by another runner")
        return current
    password_hash = _unseal(sealed_password_hash)
    try:
        _run_steps(opening, password_hash)
    except ws.WebServicesPermanent as exc:
        _fail(opening, exc)
    except (ws.WebServicesTransient, ws.WebServicesAmbiguous) as exc:
        _retry_later(opening, exc)
        raise OpeningRetry(str(exc)) from None
    return opening


def _run_steps(opening: AccountOpening, password_hash: str | None) -> None:
    account_type = opening.account_type
    environment = account_type.environment
    broker_name = account_type.jurisdiction.broker_name
    trader = opening.trader
    if opening.step in (AccountOpening.Step.CTID, AccountOpening.Step.CREATE, AccountOpening.Step.LINK) and (
        password_hash is None
    ):
        _save(
            opening,
            state=AccountOpening.State.NEEDS_PASSWORD,
            lease_until=None,
            error=_("Enter your trading password again to finish opening the account."),
        )
        return
    assert password_hash is not None
    client = webservices_client(environment=environment)
    if opening.step == AccountOpening.Step.CTID:
        user_id = _ctid_for(opening)
        if user_id is None:
            return
        # One durable write records the cTID and that the create is about to be sent.
        _save(opening, ctid_user_id=user_id, step=AccountOpening.Step.CREATE, create_sent_at=timezone.now())
        login: int | None = _create(client, opening, password_hash)
    elif opening.step == AccountOpening.Step.CREATE:
        login = _reconcile(client, opening) if opening.create_sent_at else None
        if login is None:
            _save(opening, create_sent_at=timezone.now())
            login = _create(client, opening, password_hash)
    if opening.step == AccountOpening.Step.CREATE:
        # Losing this write costs nothing: the tag finds the login again (create_sent_at is durable).
        _save(opening, durable=False, trader_login=login, step=AccountOpening.Step.LINK)
    if opening.step == AccountOpening.Step.LINK:
        assert opening.trader_login
        assert opening.ctid_user_id
        linked = webservices_client(environment=ctid_environment()).ctid_link(
            trader_login=opening.trader_login,
            password_hash=password_hash,
            user_id=opening.ctid_user_id,
            broker_name=broker_name,
            environment=environment,
        )
        opening.ctid_trader_account_id = linked.ctid_trader_account_id
        opening.step = AccountOpening.Step.STORE
    if opening.step == AccountOpening.Step.STORE:
        try:
            _store(opening)
        except IntegrityError:
            # The ctidTraderAccountId is stored under another trader's cTID: never move it silently.
            _fail_plain(
                opening,
                "account_owned_elsewhere",
                _("Your account was opened but could not be shown here. Our team has been told."),
                alert=True,
                detail=f"Account {opening.ctid_trader_account_id} is stored under another cTID.",
            )
            return
    _ready_mail(opening)
    del trader


def _create(client: ws.WebServicesClient, opening: AccountOpening, password_hash: str) -> int:
    account_type = opening.account_type
    created = client.trader_create(
        password_hash=password_hash,
        broker_name=account_type.jurisdiction.broker_name,
        group_name=account_type.group_name,
        deposit_currency=opening.deposit_currency,
        leverage_in_cents=opening.leverage * 100,
        balance=int(account_type.starting_balance * 100) if not account_type.is_live else 0,
        account_type=account_type.account_type,
        total_margin_calculation_type=account_type.margin_calculation,
        email=opening.trader.user.email,
        description=opening.tag,
    )
    return created.login


def _ctid_for(opening: AccountOpening) -> int | None:
    """The trader's connected cTID, else the one ``ctid/create`` gives the verified email."""
    trader = opening.trader
    connected = Ctid.objects.filter(trader=trader, state=Ctid.State.CONNECTED).order_by("created_at").first()
    if connected is not None:
        return connected.user_id
    if opening.ctid_user_id:
        return opening.ctid_user_id
    if not email_is_verified(trader=trader):
        _fail_plain(opening, "email_unverified", _("Confirm your email address first."), alert=False)
        return None
    created = webservices_client(environment=ctid_environment()).ctid_create(
        email=trader.email_verified,
        broker_name=opening.account_type.jurisdiction.broker_name,
        preferred_language=settings.CTRADER_CTID_LANGUAGE,
    )
    with transaction.atomic():
        # ctid/create is idempotent: a lost row is recreated by the next attempt, and the durable write that
        # follows (before the trading account is created) flushes this one too.
        _async_commit()
        owner = Ctid.objects.select_for_update().filter(user_id=created.user_id).first()
        if owner is not None and owner.trader_id != trader.pk:
            audit_event_record(
                category="opening",
                action="ctid_owned_elsewhere",
                outcome="refused",
                trader=trader,
                message=f"ctid/create answered cTID {created.user_id}, which belongs to another trader.",
                detail={
                    "opening": str(opening.public_id),
                    "user_id": created.user_id,
                    "owner": owner.trader_id,
                },
            )
            _fail_plain(
                opening,
                "ctid_owned_elsewhere",
                _(
                    "Your email address belongs to a cTrader ID that is used by another client. Please contact support."
                ),
                alert=True,
            )
            return None
        if owner is None:
            # Known to be the trader's: cTrader created it for (or found it by) their verified email.
            Ctid.objects.create(user_id=created.user_id, trader=trader, state=Ctid.State.CONNECTED)
    return created.user_id


def _reconcile(client: ws.WebServicesClient, opening: AccountOpening) -> int | None:
    """After a create whose answer was lost: the login of the trader carrying the opening's tag, if any."""
    assert opening.create_sent_at is not None
    start, end = opening.create_sent_at - RECONCILE_MARGIN, timezone.now() + RECONCILE_MARGIN
    for trader in client.traders_list(start, end):
        if trader.description == opening.tag:
            logger.info("account opening reconciled a lost create", extra={"opening": str(opening.public_id)})
            return trader.login
    return None


def _store(opening: AccountOpening) -> None:
    account_type = opening.account_type
    assert opening.ctid_trader_account_id
    assert opening.trader_login
    assert opening.ctid_user_id
    now = timezone.now()
    fields = {
        "login": opening.trader_login,
        "is_live": account_type.is_live,
        "jurisdiction": account_type.jurisdiction,
        "broker_name": account_type.jurisdiction.broker_name,
        "broker_title": account_type.jurisdiction.display_name[:200],
        "is_tradingview": account_type.is_tradingview,
        "status": TradingAccount.Status.ACTIVE,
        "currency": opening.deposit_currency,
        "balance": account_type.starting_balance if not account_type.is_live else Decimal(0),
        "balance_updated_at": now,
    }
    with transaction.atomic():
        ctid_id = Ctid.objects.filter(user_id=opening.ctid_user_id, trader=opening.trader).values_list(
            "pk", flat=True
        )
        account = TradingAccount(
            ctid_trader_account_id=opening.ctid_trader_account_id, ctid_id=ctid_id[0], **fields
        )
        # A sync may have stored the account first (under the same cTID): then it is updated, never duplicated.
        updated = TradingAccount.objects.filter(
            ctid_trader_account_id=account.ctid_trader_account_id, ctid_id=account.ctid_id
        ).update(**fields)
        if updated:
            account = TradingAccount.objects.get(ctid_trader_account_id=account.ctid_trader_account_id)
        else:
            account.save(force_insert=True)
        _save(
            opening,
            account=account,
            ctid_trader_account_id=opening.ctid_trader_account_id,
            state=AccountOpening.State.DONE,
            step=AccountOpening.Step.DONE,
            error="",
            error_code="",
            lease_until=None,
            next_attempt_at=None,
            finished_at=now,
        )
        if account_type.who_may_open == AccountType.Access.APPROVAL:
            from tradingview.models import AccountRequest

            AccountRequest.objects.filter(opening=opening, state=AccountRequest.State.OPEN).update(
                state=AccountRequest.State.FULFILLED, account=account, handled_at=now
            )
        audit_event_record(
            category="opening",
            action="open",
            outcome="opened",
            trader=opening.trader,
            message=f"{account_type.get_environment_display()} account {opening.trader_login} opened.",
            detail={
                "opening": str(opening.public_id),
                "ctid_trader_account_id": opening.ctid_trader_account_id,
            },
        )
    logger.info("trading account opened", extra={"opening": str(opening.public_id)})


def _ready_mail(opening: AccountOpening) -> None:
    if opening.state != AccountOpening.State.DONE or opening.ready_mail_sent_at is not None:
        return
    account_type = opening.account_type
    body = _(
        "Your %(environment)s trading account is ready.\n\n"
        "Login: %(login)s\nServer: %(server)s\nEnvironment: %(environment)s\nType: %(type)s\n\n"
        "Sign in to cTrader with this login and the trading password you chose. We never send passwords by email.\n"
    ) % {
        "environment": account_type.get_environment_display(),
        "login": opening.trader_login,
        "server": account_type.jurisdiction.display_name,
        "type": account_type.name,
    }
    if trader_mail(
        opening.trader, _("Your trading account %(login)s is ready") % {"login": opening.trader_login}, body
    ):
        _save(opening, ready_mail_sent_at=timezone.now())


def _trader_message(exc: ws.WebServicesError) -> str:
    if exc.error_code == "TRADER_GROUP_NOT_FOUND":
        return _("This account type is not set up correctly on our trading server. Our team has been told.")
    if exc.error_code == "CH_BROKER_NOT_FOUND":
        return _("This account type's broker is not set up on our trading server. Our team has been told.")
    if exc.error_code in ("NOT_ENOUGH_RIGHTS", "NOT_CONFIGURED"):
        return _(
            "We cannot open accounts right now because of a setup problem on our side. Our team has been told."
        )
    return _("The trading server refused to open this account. Our team has been told.")


def _fail(opening: AccountOpening, exc: ws.WebServicesError) -> None:
    _fail_plain(opening, exc.error_code or "refused", _trader_message(exc), alert=True, detail=str(exc))


def _fail_plain(opening: AccountOpening, code: str, message: str, *, alert: bool, detail: str = "") -> None:
    _save(
        opening,
        state=AccountOpening.State.FAILED,
        error_code=code[:60],
        error=message[:500],
        staff_alert=alert,
        lease_until=None,
        next_attempt_at=None,
        finished_at=timezone.now(),
    )
    audit_event_record(
        category="opening",
        action="fail",
        outcome=code[:30],
        trader=opening.trader,
        message=(detail or message)[:500],
        detail={"opening": str(opening.public_id), "step": opening.step},
    )
    logger.warning("account opening failed", extra={"opening": str(opening.public_id), "code": code})


def _retry_later(opening: AccountOpening, exc: ws.WebServicesError) -> None:
    if opening.attempts >= settings.ACCOUNT_OPENING_MAX_ATTEMPTS:
        _fail_plain(
            opening,
            exc.error_code or "gave_up",
            _("We could not reach the trading server for a long time. Our team has been told."),
            alert=True,
            detail=str(exc),
        )
        return
    countdown = retry_countdown(opening.attempts)
    if exc.error_code == "REQUEST_FREQUENCY_EXCEEDED":
        message = _("Many accounts are being opened right now. Yours is queued and will be ready shortly.")
    else:
        message = _(
            "The trading server is not answering right now. We will keep trying; this page updates by itself."
        )
    _save(
        opening,
        state=AccountOpening.State.RETRYING,
        error_code=(exc.error_code or "transient")[:60],
        error=message,
        lease_until=None,
        next_attempt_at=timezone.now() + timedelta(seconds=countdown),
    )
    logger.info(
        "account opening will retry",
        extra={"opening": str(opening.public_id), "code": exc.error_code, "step": opening.step},
    )


def opening_countdown(*, opening_id: int) -> float:
    opening = (
        AccountOpening.objects.filter(pk=opening_id).only("state", "next_attempt_at", "lease_until").first()
    )
    if opening is not None and opening.state == AccountOpening.State.RUNNING and opening.lease_until:
        return max((opening.lease_until - timezone.now()).total_seconds(), 0.0) + 1.0
    if opening is None or opening.next_attempt_at is None:
        return settings.ACCOUNT_OPENING_RETRY_BASE_SECONDS
    return max((opening.next_attempt_at - timezone.now()).total_seconds(), 0.0)
