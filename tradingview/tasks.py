"""Thin Celery tasks for revoking adapter tokens; each takes ids and is safe to run twice.

The services ask for a ``/logout`` through the ``logout_due`` signal (connected in ``apps.py``), and the tasks
import the services inside their bodies.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction

from accounts.ctrader.backoff import backoff_delay
from clientarea.celery import embedded_mode
from clientarea.queue import QUEUE_ERRORS
from tradingview.selectors import grants_due_for_logout

logger = logging.getLogger(__name__)


def schedule_logout(*, grant_id: int, countdown: int) -> None:
    """Enqueue the ``/logout`` of a grant once the current transaction commits.

    Without a broker (embedded mode) tasks run in-process and cannot wait: a logout due later is left to the
    periodic sweep, which finds every ``revoking`` grant whose time has come.
    """
    if embedded_mode() and countdown > 0:
        return

    def enqueue() -> None:
        try:
            grant_logout.apply_async(args=(grant_id,), countdown=max(0, countdown))
        except QUEUE_ERRORS:
            # The grant is already stored as revoking: the revocation sweep sends its /logout once the queue
            # is back, so the trader's request does not fail on it.
            logger.warning("grant logout not queued, the sweep will send it", extra={"grant_id": grant_id})

    transaction.on_commit(enqueue)


def on_logout_due(sender: Any, *, grant_id: int, countdown: int, **kwargs: Any) -> None:
    schedule_logout(grant_id=grant_id, countdown=countdown)


@shared_task(bind=True, max_retries=12, acks_late=True, ignore_result=True)
def grant_logout(self, grant_id: int) -> str:  # type: ignore[no-untyped-def]
    from tradingview.services import logout

    try:
        return logout.grant_logout(grant_id=grant_id)
    except logout.LogoutPending as exc:
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
    """Revoke what is no longer valid (``upkeep``), then log out every ``revoking`` grant that is due (a lost
    task, a retry budget spent, embedded mode)."""
    from tradingview.services import logout, upkeep

    upkeep.grants_upkeep()
    due = grants_due_for_logout()
    for grant_id in due:
        if embedded_mode():
            try:
                logout.grant_logout(grant_id=grant_id)
            except logout.LogoutPending:
                continue
        else:
            grant_logout.delay(grant_id)
    return len(due)
