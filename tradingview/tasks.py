"""Thin Celery tasks for revoking adapter tokens; each takes ids and is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import transaction

from accounts.ctrader.backoff import backoff_delay

from . import services


def _runs_in_process() -> bool:
    """True in embedded mode: the Celery app runs tasks eagerly and there is no broker to hold a countdown."""
    return bool(grant_logout.app.conf.task_always_eager)


def schedule_logout(*, grant_id: int, countdown: int) -> None:
    """Enqueue the ``/logout`` of a grant once the current transaction commits.

    Without a broker (embedded mode) tasks run in-process and cannot wait: a logout due later is left to the
    periodic sweep, which finds every ``revoking`` grant whose time has come.
    """
    if _runs_in_process() and countdown > 0:
        return

    def enqueue() -> None:
        grant_logout.apply_async(args=(grant_id,), countdown=max(0, countdown))

    transaction.on_commit(enqueue)


@shared_task(bind=True, max_retries=12, acks_late=True, ignore_result=True)
def grant_logout(self, grant_id: int) -> str:  # type: ignore[no-untyped-def]
    try:
        return services.grant_logout(grant_id=grant_id)
    except services.LogoutPending as exc:
        if self.request.is_eager:
            return "pending"  # the sweep tries again; an in-process retry would block the caller
        delay = backoff_delay(
            self.request.retries,
            base=settings.TRADINGVIEW_LOGOUT_RETRY_SECONDS,
            cap=settings.TRADINGVIEW_LOGOUT_RETRY_CAP_SECONDS,
        )
        raise self.retry(exc=exc, countdown=delay) from exc


@shared_task(ignore_result=True)
def grant_revocation_sweep() -> int:
    """Catch every ``revoking`` grant that is due (a lost task, a retry budget spent, embedded mode)."""
    services.grants_pending_cleanup()
    due = services.grants_due_for_logout()
    for grant_id in due:
        if _runs_in_process():
            try:
                services.grant_logout(grant_id=grant_id)
            except services.LogoutPending:
                continue
        else:
            grant_logout.delay(grant_id)
    return len(due)
