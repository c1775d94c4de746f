"""Traders: sign-up, KYC, suspension and password changes."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from accounts.models import Trader
from accounts.services.audit import audit_event_record
from accounts.signals import trader_password_changed, trader_suspended

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None


class TraderError(Exception):
    """A trader operation that cannot be done as asked (the message is safe to show)."""


def trader_sign_up(*, username: str, email: str, password: str | None) -> Trader:
    """Create a user and its Trader profile. Input is validated by the caller's form."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(username=username, email=email, password=password)
        trader = Trader.objects.create(user=user)
        audit_event_record(category="trader", action="sign_up", outcome="ok", trader=trader, actor=user)
    logger.info("trader signed up", extra={"trader_id": trader.pk})
    return trader


def trader_get_or_create_for_user(*, user: User) -> Trader:
    """The Trader profile of a non-staff user, created if missing (e.g. a user made in the admin)."""
    if user.is_staff:
        raise TraderError("Staff accounts have no trader profile.")
    trader, _ = Trader.objects.get_or_create(user=user)
    return trader


def _trader_flag_set(
    trader: Trader, actor: Actor, action: str, fields: dict[str, Any], message: str = ""
) -> tuple[Trader, bool]:
    """Set ``fields`` on the locked trader and record ``action``, unless the first field (the flag) already
    has its value; returns the trader as locked and whether it changed."""
    with transaction.atomic():
        locked = Trader.objects.select_for_update().get(pk=trader.pk)
        flag, value = next(iter(fields.items()))
        if getattr(locked, flag) == value:
            return locked, False
        for name, new in fields.items():
            setattr(locked, name, new)
        locked.save(update_fields=list(fields))
        audit_event_record(
            category="trader", action=action, outcome="ok", trader=locked, actor=actor, message=message
        )
    return locked, True


def trader_mark_kyc_verified(*, trader: Trader, actor: Actor = None) -> Trader:
    """Mark the trader KYC-verified. Idempotent: the first verification time is kept."""
    locked, _ = _trader_flag_set(
        trader, actor, "kyc_verified", {"kyc_verified": True, "kyc_verified_at": timezone.now()}
    )
    return locked


def trader_suspend(*, trader: Trader, actor: Actor = None, reason: str = "") -> Trader:
    """Suspend a trader: they can no longer sign in, their sessions stop working, and listeners of
    ``trader_suspended`` (the TradingView link) revoke what the trader granted.

    The signal is sent after the suspension is saved, outside the write transaction, because its
    receivers call peers over HTTP.
    """
    fields = {"suspended": True, "suspended_at": timezone.now(), "suspended_reason": reason[:500]}
    locked, changed = _trader_flag_set(trader, actor, "suspended", fields, message=reason)
    if not changed:
        return locked
    logger.info("trader suspended", extra={"trader_id": locked.pk})
    trader_suspended.send(sender=Trader, trader=locked, actor=actor, reason=reason)
    return locked


def trader_unsuspend(*, trader: Trader, actor: Actor = None) -> Trader:
    """Lift a suspension. Whatever was revoked on suspension stays revoked."""
    fields = {"suspended": False, "suspended_at": None, "suspended_reason": ""}
    locked, changed = _trader_flag_set(trader, actor, "unsuspended", fields)
    if not changed:
        return locked
    logger.info("trader unsuspended", extra={"trader_id": locked.pk})
    return locked


def trader_change_password(*, user: User, new_password: str | None, via: str, actor: Actor = None) -> None:
    """Set a new password and tell listeners of ``trader_password_changed``, which revoke what was granted
    under the old password.

    ``via`` is "change" (the trader), "reset" (emailed link) or "admin" (staff); ``new_password=None`` makes
    the password unusable. Staff users without a Trader profile just get the new password.
    """
    with transaction.atomic():
        if new_password is None:
            user.set_unusable_password()
        else:
            user.set_password(new_password)
        user.save(update_fields=["password"])
        trader = Trader.objects.filter(user=user).first()
        if trader is not None:
            audit_event_record(
                category="trader",
                action=f"password_{via}",
                outcome="ok",
                trader=trader,
                actor=actor if actor is not None else user,
            )
    if trader is not None:
        logger.info("trader password changed", extra={"trader_id": trader.pk, "via": via})
        trader_password_changed.send(sender=Trader, trader=trader)
