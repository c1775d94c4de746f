"""The audit trail: append-only records of what matters to security and support."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

from accounts.models import AuditEvent, Trader


def audit_event_record(
    *,
    category: str,
    action: str,
    outcome: str,
    trader: Trader | None = None,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    message: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event. ``detail`` must never carry a secret."""
    return AuditEvent.objects.create(
        category=category,
        action=action,
        outcome=outcome,
        trader=trader,
        actor=actor if isinstance(actor, User) else None,
        message=message[:500],
        detail=detail or {},
    )
