"""Sending notification emails: retried with capped exponential backoff when the mail server fails."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from notifications.services import address_notification_send, notification_send

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=60, time_limit=90)
def send_notification(self: Task, kind: str, user_id: int, context: dict[str, Any]) -> str:
    return _send_or_retry(self, kind, lambda: notification_send(kind=kind, user_id=user_id, context=context))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=60, time_limit=90)
def send_address_notification(
    self: Task, kind: str, address: str, language: str, context: dict[str, Any]
) -> str:
    return _send_or_retry(
        self,
        kind,
        lambda: address_notification_send(kind=kind, address=address, language=language, context=context),
    )


def _send_or_retry(task: Task, kind: str, send: Callable[[], str]) -> str:
    from accounts.tasks import retry_countdown

    try:
        return send()
    except (smtplib.SMTPException, OSError) as exc:
        if task.request.is_eager:
            logger.warning("notification not sent", extra={"kind": kind, "error": type(exc).__name__})
            return "failed"
        logger.warning("notification not sent, will retry", extra={"kind": kind, "error": type(exc).__name__})
        raise task.retry(
            exc=exc, countdown=retry_countdown(task.request.retries), max_retries=settings.TASK_MAX_RETRIES
        ) from None
