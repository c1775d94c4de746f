"""Sending notification emails: retried with capped exponential backoff when the mail server fails."""

from __future__ import annotations

import logging
import smtplib
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from notifications.services import notification_send

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=60, time_limit=90)
def send_notification(self: Task, kind: str, user_id: int, context: dict[str, Any]) -> str:
    from accounts.tasks import retry_countdown

    try:
        return notification_send(kind=kind, user_id=user_id, context=context)
    except (smtplib.SMTPException, OSError) as exc:
        if self.request.is_eager:
            logger.warning("notification not sent", extra={"kind": kind, "error": type(exc).__name__})
            return "failed"
        logger.warning("notification not sent, will retry", extra={"kind": kind, "error": type(exc).__name__})
        raise self.retry(
            exc=exc, countdown=retry_countdown(self.request.retries), max_retries=settings.TASK_MAX_RETRIES
        ) from None
