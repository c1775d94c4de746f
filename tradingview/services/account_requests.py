"""Requests for a "cTrader/TradingView" account: a trader asks, staff fulfil (flagging an account) or decline."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Trader, TradingAccount
from accounts.services.audit import audit_event_record

from .. import signals
from ..models import AUDIT_CATEGORY, AccountRequest


class AccountRequestRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def account_request_create(
    *, trader: Trader, environment: str, jurisdiction_id: int | None, note: str = "", return_url: str = ""
) -> AccountRequest:
    try:
        with transaction.atomic():
            request = AccountRequest.objects.create(
                trader=trader,
                environment=environment,
                jurisdiction_id=jurisdiction_id,
                note=note[:500],
                return_url=return_url[:2000],
            )
            audit_event_record(
                category=AUDIT_CATEGORY,
                action="account_requested",
                outcome="ok",
                trader=trader,
                actor=trader.user,
                detail={"request": request.pk, "environment": environment},
            )
    except IntegrityError as exc:
        raise AccountRequestRefused(
            'You already have an open request for a "cTrader/TradingView" account.'
        ) from exc
    return request


def account_request_fulfil(
    *, account_request: AccountRequest, account: TradingAccount, actor: Any, staff_note: str = ""
) -> AccountRequest:
    """Flag ``account`` (the trader's) as a "cTrader/TradingView" account and close the request with it."""
    if account.ctid.trader_id != account_request.trader_id:
        raise AccountRequestRefused("The account belongs to another trader.")
    with transaction.atomic():
        TradingAccount.objects.filter(pk=account.pk).update(is_tradingview=True)
        account_request.account = account
        _close(
            account_request,
            state=AccountRequest.State.FULFILLED,
            actor=actor,
            staff_note=staff_note,
            action="account_request_fulfilled",
            detail={"account": account.ctid_trader_account_id},
        )
    return account_request


def account_request_decline(*, account_request: AccountRequest, actor: Any, staff_note: str = "") -> None:
    with transaction.atomic():
        _close(
            account_request,
            state=AccountRequest.State.DECLINED,
            actor=actor,
            staff_note=staff_note,
            action="account_request_declined",
            detail={},
        )


def _close(
    account_request: AccountRequest,
    *,
    state: str,
    actor: Any,
    staff_note: str,
    action: str,
    detail: dict[str, Any],
) -> None:
    account_request.state = state
    account_request.handled_by = actor
    account_request.handled_at = timezone.now()
    account_request.staff_note = staff_note[:500] or account_request.staff_note
    account_request.save()
    audit_event_record(
        category=AUDIT_CATEGORY,
        action=action,
        outcome="ok",
        trader=account_request.trader,
        actor=actor,
        detail={"request": account_request.pk, **detail},
    )
    signals.account_request_handled.send(sender=AccountRequest, account_request=account_request)
