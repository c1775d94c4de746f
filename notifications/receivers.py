"""What sends which email: cTID needs reconnecting, TradingView sessions ended, account request answered,
sign-in from a new device."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Ctid, Trader
from accounts.signals import ctid_needs_reconnect
from notifications.devices import device_seen
from notifications.services import notification_enqueue
from tradingview.models import AccountRequest, Grant
from tradingview.signals import account_request_handled, grants_revoked


@receiver(ctid_needs_reconnect, sender=Ctid, dispatch_uid="notify_ctid_reconnect")
def on_ctid_needs_reconnect(sender: Any, *, ctid: Ctid, **kwargs: Any) -> None:
    user_id = Trader.objects.filter(pk=ctid.trader_id).values_list("user_id", flat=True).first()
    if user_id is not None:
        notification_enqueue(
            kind="ctid_reconnect", user_id=user_id, context={"ctid_user_id": ctid.user_id, "ctid_pk": ctid.pk}
        )


def revocation_why(reason: str, *, by_staff: bool) -> str:
    """Why a TradingView session ended, as a code the email explains in the trader's words; "" for no email."""
    text = reason.lower()
    if text.startswith("ctid disconnected by the trader"):
        return ""  # the trader did it on the dashboard and saw it there
    if text.startswith("password changed"):
        return "password_changed"
    if text.startswith("trader suspended"):
        return "suspended"
    if text.startswith("ctid needs reconnect"):
        return "ctid_reconnect"
    return "staff" if by_staff else "security"


@receiver(grants_revoked, sender=Grant, dispatch_uid="notify_tradingview_revoked")
def on_grants_revoked(
    sender: Any, *, trader_id: int, grant_ids: list[int], reason: str, by_staff: bool, **kwargs: Any
) -> None:
    why = revocation_why(reason, by_staff=by_staff)
    user_id = Trader.objects.filter(pk=trader_id).values_list("user_id", flat=True).first()
    if why and user_id is not None:
        logins = sorted(
            set(
                Grant.accounts.through.objects.filter(grant_id__in=grant_ids).values_list(
                    "tradingaccount__login", flat=True
                )
            )
        )
        notification_enqueue(
            kind="tradingview_revoked",
            user_id=user_id,
            context={"why": why, "logins": [str(x) for x in logins]},
        )


@receiver(account_request_handled, sender=AccountRequest, dispatch_uid="notify_account_request")
def on_account_request_handled(sender: Any, *, account_request: AccountRequest, **kwargs: Any) -> None:
    user_id = Trader.objects.filter(pk=account_request.trader_id).values_list("user_id", flat=True).first()
    if user_id is None:
        return
    login = ""
    if account_request.account_id:
        login = str(account_request.account.login) if account_request.account else ""
    notification_enqueue(
        kind="account_request",
        user_id=user_id,
        context={
            "state": account_request.state,
            "environment": account_request.environment,
            "login": login,
            "return_url": account_request.return_url or "",
        },
    )


@receiver(user_logged_in, dispatch_uid="notify_new_sign_in")
def on_signed_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None:
        return
    seen = device_seen(request=request, user=user)
    if seen.new and seen.had_others:
        notification_enqueue(
            kind="new_sign_in",
            user_id=user.pk,
            context={
                "when": timezone.now().isoformat(),
                "browser": seen.user_agent,
                "address": seen.address,
            },
        )
