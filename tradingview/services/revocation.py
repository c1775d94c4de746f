"""Revocation: a grant stops being handed out at once, and its adapter token is ``/logout``-ed after commit.

Staff, the trader's Disconnect, a suspension, a password change and a dead cTID refresh chain all come here.
A grant marked ``revoking`` is never shown as active nor handed out again, whatever the adapter answers later;
the ``/logout`` itself (``logout.py``) runs in a task, retried until the adapter confirms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Trader
from accounts.services.audit import audit_event_record

from .. import signals
from ..models import AUDIT_CATEGORY, Grant
from .logout import LogoutPending, grant_logout

# A link refreshed every 30 minutes for 30 days is about 1,500 grants long.
MAX_CHAIN = 5000


def logout_enqueue(*, grant_id: int, countdown: int) -> None:
    """Queue the ``/logout`` of a grant once the current transaction commits (``countdown`` seconds later)."""
    signals.logout_due.send(sender=Grant, grant_id=grant_id, countdown=countdown)


def grant_revoke(
    *, grant_id: int, reason: str, actor: Any = None, trader: Trader | None = None, schedule: bool = True
) -> list[int]:
    """Stop handing out a grant at once and schedule its ``/logout`` (and that of grants it superseded).

    With ``trader`` given, only that trader's grant is touched. Returns the ids now waiting for ``/logout``.
    """
    with transaction.atomic():
        qs = Grant.objects.select_for_update().filter(pk=grant_id)
        if trader is not None:
            qs = qs.filter(trader=trader)
        grant = qs.first()
        if grant is None or grant.state in (Grant.State.REVOKED, Grant.State.PENDING):
            return []
        ids = [grant.pk]
        # Tokens this one superseded are still inside their grace period: they go now too.
        previous = Grant.objects.filter(superseded_by_id=grant.pk, state=Grant.State.REVOKING)
        ids.extend(previous.values_list("pk", flat=True))
        # So do the tokens refreshed from it (a replayed code revokes everything it led to).
        successor = grant.superseded_by_id
        while successor is not None and successor not in ids and len(ids) < 1000:
            ids.append(successor)
            successor = Grant.objects.filter(pk=successor).values_list("superseded_by_id", flat=True).first()
        _mark_revoking(
            ids,
            trader_id=grant.trader_id,
            action="grant_revoke",
            reason=reason,
            actor=actor,
            schedule=schedule,
            detail={},
        )
    return ids


@dataclass(frozen=True)
class DisconnectResult:
    revoked: int
    pending: int


def grant_disconnect(*, trader: Trader, grant_id: int) -> DisconnectResult | None:
    """The trader's Disconnect: revoke now and tell the adapter at once; a failed ``/logout`` is retried."""
    ids = grant_revoke(
        grant_id=grant_id,
        trader=trader,
        actor=trader.user,
        reason="disconnected by the trader",
        schedule=False,
    )
    if not ids:
        return None
    revoked = pending = 0
    for pk in ids:
        try:
            grant_logout(grant_id=pk)
            revoked += 1
        except LogoutPending:
            pending += 1
            logout_enqueue(grant_id=pk, countdown=int(settings.TRADINGVIEW_LOGOUT_RETRY_SECONDS))
    return DisconnectResult(revoked=revoked, pending=pending)


def trader_grants_revoke(*, trader_id: int, reason: str, actor: Any = None) -> list[int]:
    """Revoke every grant of a trader that is still usable (suspension, password change, broken cTID)."""
    grants = Grant.objects.filter(trader_id=trader_id)
    return _grants_revoke(grants, action="trader_grants_revoke", reason=reason, actor=actor)


def ctid_grants_revoke(*, ctid_id: int, reason: str) -> list[int]:
    """Revoke every still usable grant on the accounts of a cTID (its refresh chain died)."""
    return _grants_revoke(
        Grant.objects.filter(ctid_id=ctid_id), action="ctid_grants_revoke", reason=reason, ctid=ctid_id
    )


def grant_chain_revoke(
    *, grant_id: int, reason: str, action: str, outcome: str = "scheduled", **detail: Any
) -> list[int]:
    """Revoke a whole link: the grant, every grant it was refreshed from and every grant refreshed from it."""
    chain = [grant_id]
    forward = backward = grant_id
    while len(chain) < MAX_CHAIN:
        nxt = Grant.objects.filter(pk=forward).values_list("superseded_by_id", flat=True).first()
        if nxt is None or nxt in chain:
            break
        chain.append(nxt)
        forward = nxt
    while len(chain) < MAX_CHAIN:
        prev = Grant.objects.filter(superseded_by_id=backward).values_list("pk", flat=True).first()
        if prev is None or prev in chain:
            break
        chain.append(prev)
        backward = prev
    return _grants_revoke(
        Grant.objects.filter(pk__in=chain),
        action=action,
        reason=reason,
        outcome=outcome,
        include_pending=True,
        **detail,
    )


def client_grants_revoke(*, client_id: int, reason: str, actor: Any = None) -> list[int]:
    """Revoke every still usable grant issued to a TradingView client (the client was deactivated)."""
    grants = Grant.objects.filter(client_id=client_id)
    return _grants_revoke(
        grants, action="client_grants_revoke", reason=reason, actor=actor, include_pending=True
    )


def grants_revoke(*, grant_ids: list[int], action: str, reason: str, **detail: Any) -> list[int]:
    """Revoke the still usable grants among ``grant_ids`` (sweeps that found them no longer valid)."""
    return _grants_revoke(
        Grant.objects.filter(pk__in=grant_ids), action=action, reason=reason, include_pending=True, **detail
    )


def _grants_revoke(
    grants: QuerySet[Grant],
    *,
    action: str,
    reason: str,
    actor: Any = None,
    outcome: str = "scheduled",
    include_pending: bool = False,
    **detail: Any,
) -> list[int]:
    """Mark the usable grants among ``grants`` revoking and queue their ``/logout`` once this commits.

    From here on none of them is shown as active nor handed out again, whatever the adapter answers later.
    """
    with transaction.atomic():
        states = [Grant.State.ACTIVE, Grant.State.REVOKING]
        if include_pending:
            # A pending grant that already holds an adapter token (a refresh that died before it finished).
            grants = grants.exclude(state=Grant.State.PENDING, adapter_token_issued_at__isnull=True)
            states.append(Grant.State.PENDING)
        rows = list(grants.select_for_update().filter(state__in=states).values_list("pk", "trader_id"))
        if not rows:
            return []
        ids = [pk for pk, _ in rows]
        _mark_revoking(
            ids,
            trader_id=rows[0][1] if len({t for _, t in rows}) == 1 else None,
            action=action,
            reason=reason,
            actor=actor,
            schedule=True,
            detail=detail,
            outcome=outcome,
        )
    return ids


def _mark_revoking(
    ids: list[int],
    *,
    trader_id: int | None,
    action: str,
    reason: str,
    actor: Any,
    schedule: bool,
    detail: dict[str, Any],
    outcome: str = "scheduled",
) -> None:
    """Inside the caller's transaction: mark ``ids`` revoking now, record it, queue their ``/logout``."""
    now = timezone.now()
    Grant.objects.filter(pk__in=ids).exclude(state=Grant.State.REVOKED).update(
        state=Grant.State.REVOKING,
        revoke_after=now,
        revoke_reason=reason[:200],
        # The refresh token hash stays: a revoked grant's refresh token is recognised (invalid_grant).
        refresh_lease_until=None,
        updated_at=now,
    )
    audit_event_record(
        category=AUDIT_CATEGORY,
        action=action,
        outcome=outcome,
        trader_id=trader_id,
        actor=actor,
        message=reason,
        detail={"grants": ids, **detail},
    )
    # The trader is told (notification mail) unless they ended the link themselves.
    by_staff = actor is not None and bool(getattr(actor, "is_staff", False))
    if trader_id is not None and (by_staff or action != "grant_revoke"):
        signals.grants_revoked.send(
            sender=Grant, trader_id=trader_id, grant_ids=ids, reason=reason, by_staff=actor is not None
        )
    if schedule:
        for pk in ids:
            logout_enqueue(grant_id=pk, countdown=0)
