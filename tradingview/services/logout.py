"""The adapter's ``/logout`` for a grant that is being revoked, as the tasks run it."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from accounts.services.audit import audit_event_record

from .. import adapter
from ..models import AUDIT_CATEGORY, Grant


class LogoutPending(Exception):
    """The adapter could not be reached; the grant stays ``revoking`` and the logout must be retried."""


def grant_logout(*, grant_id: int, now: datetime | None = None) -> str:
    """Call ``/logout`` for a ``revoking`` grant whose time has come and mark it revoked.

    Returns what happened: ``revoked``, ``not_due``, ``nothing_to_do``. Raises ``LogoutPending`` on a
    transient adapter failure (the caller retries). Safe to run twice: a second ``/logout`` of the same token
    is refused by the adapter and still ends as revoked.
    """
    now = now or timezone.now()
    grant = Grant.objects.filter(pk=grant_id).first()
    if grant is None or grant.state != Grant.State.REVOKING:
        return "nothing_to_do"
    if grant.revoke_after is not None and grant.revoke_after > now:
        return "not_due"
    outcome = "ok"
    message = ""
    if grant.adapter_token and grant.seconds_left() > 0:
        try:
            adapter.logout(adapter_token=grant.adapter_token)
        except adapter.AdapterTransientError as exc:
            Grant.objects.filter(pk=grant.pk).update(
                revoke_attempts=grant.revoke_attempts + 1, last_revoke_error=exc.message[:500]
            )
            audit_event_record(
                category=AUDIT_CATEGORY,
                action="logout",
                outcome=exc.outcome,
                trader_id=grant.trader_id,
                message=exc.message,
                detail={"grant": grant.pk, "attempt": grant.revoke_attempts + 1},
            )
            raise LogoutPending(exc.message) from exc
        except adapter.AdapterRejected as exc:
            # The adapter refuses tokens that are unknown, invalid or expired: the token is unusable already.
            outcome = f"refused:{exc.outcome}"
            message = exc.message
    else:
        outcome = "expired"
    updated = Grant.objects.filter(pk=grant.pk, state=Grant.State.REVOKING).update(
        state=Grant.State.REVOKED,
        revoked_at=timezone.now(),
        revoke_attempts=grant.revoke_attempts + 1,
        last_revoke_error=message[:500],
        refresh_lease_until=None,
        issued_refresh_token=None,
    )
    if updated:
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="logout",
            outcome=outcome,
            trader_id=grant.trader_id,
            message=message or grant.revoke_reason or "revoked",
            detail={"grant": grant.pk},
        )
    return "revoked"


# A pending grant older than this belongs to a request that died while waiting for the adapter.
PENDING_STALE_SECONDS = 120
