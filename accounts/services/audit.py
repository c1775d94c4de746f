"""The audit trail: append-only records of what matters to security and support, for every app.

The actor is the signed-in user who caused the event (a ``User``); an anonymous visitor (``AnonymousUser``), a
peer or a background task records none.
"""

from __future__ import annotations

from typing import Any, Required, TypedDict, Unpack

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

from accounts.models import AuditEvent, Trader


class AuditFields(TypedDict, total=False):
    """What one audit event says; ``category``, ``action`` and ``outcome`` are required."""

    category: Required[str]
    action: Required[str]
    outcome: Required[str]
    trader: Trader | None
    trader_id: int | None  # the trader by id, when no ``Trader`` is at hand
    actor: AbstractBaseUser | AnonymousUser | None
    message: str
    detail: dict[str, Any] | None  # never carries a secret


def audit_event_values(**fields: Unpack[AuditFields]) -> dict[str, Any]:
    """The fields of the audit event ``audit_event_new`` makes, by attribute name (for a write that stores its
    row without building the instance)."""
    trader = fields.get("trader")
    actor = fields.get("actor")
    return {
        "category": fields["category"],
        "action": fields["action"],
        "outcome": fields["outcome"],
        "trader_id": trader.pk if trader is not None else fields.get("trader_id"),
        "actor_id": actor.pk if isinstance(actor, User) else None,
        "message": fields.get("message", "")[:500],
        "detail": fields.get("detail") or {},
    }


def audit_event_new(**fields: Unpack[AuditFields]) -> AuditEvent:
    """The audit event ``audit_event_record`` stores, not yet saved (for a write that stores it with others)."""
    event = AuditEvent(**audit_event_values(**fields))
    actor = fields.get("actor")
    if isinstance(actor, User):
        event.actor = actor  # at hand, as the caller had it
    return event


def audit_event_record(**fields: Unpack[AuditFields]) -> AuditEvent:
    """Append one audit event about ``trader`` (or the trader ``trader_id``)."""
    event = audit_event_new(**fields)
    event.save(force_insert=True)
    return event
