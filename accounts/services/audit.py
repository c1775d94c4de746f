"""The audit trail: append-only records of what matters to security and support, for every app.

The actor is the signed-in user who caused the event (a ``User``); an anonymous visitor (``AnonymousUser``), a
peer or a background task records none.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

from accounts.models import AuditEvent, Trader


def audit_event_new(
    *,
    category: str,
    action: str,
    outcome: str,
    trader: Trader | None = None,
    trader_id: int | None = None,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    message: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """The audit event ``audit_event_record`` stores, not yet saved (for a write that stores it with others)."""
    return AuditEvent(
        category=category,
        action=action,
        outcome=outcome,
        trader_id=trader.pk if trader is not None else trader_id,
        actor=actor if isinstance(actor, User) else None,
        message=message[:500],
        detail=detail or {},
    )


def audit_event_record(
    *,
    category: str,
    action: str,
    outcome: str,
    trader: Trader | None = None,
    trader_id: int | None = None,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    message: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event about ``trader`` (or the trader ``trader_id``). ``detail`` never carries a secret."""
    event = audit_event_new(
        category=category,
        action=action,
        outcome=outcome,
        trader=trader,
        trader_id=trader_id,
        actor=actor,
        message=message,
        detail=detail,
    )
    event.save(force_insert=True)
    return event
