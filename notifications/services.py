"""Emails to traders: rendered in their language, branded, HTML and text, sent by Celery with retries."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.dateparse import parse_datetime

from branding.selectors import brand_current
from preferences.selectors import NOTIFICATION_KINDS, language_for_user, wants_notification

logger = logging.getLogger(__name__)

# Security notices: always sent, whatever the notification choices (there is no switch for them).
SECURITY_KINDS = ("sign_up_attempt",)
# Mails to an address that has no account yet (in the language of the page that asked for them).
ADDRESS_KINDS = ("sign_up_confirm",)


def notification_enqueue(*, kind: str, user_id: int, context: dict[str, Any] | None = None) -> None:
    """Queue one email once the current transaction commits (ids and plain values only in the message)."""
    if kind not in NOTIFICATION_KINDS + SECURITY_KINDS:
        raise ValueError(kind)
    from notifications.tasks import send_notification

    payload = dict(context or {})
    transaction.on_commit(lambda: send_notification.delay(kind, user_id, payload))


def notification_render(
    *, kind: str, user: Any, context: dict[str, Any], address: str = "", language: str = ""
) -> EmailMultiAlternatives:
    """The email, in the user's language (profile, else the default language); or, without a user, to
    ``address`` in ``language``."""
    language = language or language_for_user(user=user) or settings.LANGUAGE_CODE
    if isinstance(context.get("when"), str):
        context = {**context, "when": parse_datetime(context["when"])}
    with translation.override(language):
        values = {
            **context,
            "user": user,
            "brand": brand_current(),
            "site_url": settings.SITE_URL,
            "settings_url": f"{settings.SITE_URL}/account/settings/",
            "language": language,
        }
        subject = " ".join(render_to_string(f"notifications/{kind}_subject.txt", values).split())
        text = render_to_string(f"notifications/{kind}.txt", values)
        html = render_to_string(f"notifications/{kind}.html", values)
    message = EmailMultiAlternatives(
        subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL, to=[address or user.email]
    )
    message.attach_alternative(html, "text/html")
    message.extra_headers["Content-Language"] = language
    return message


def notification_send(*, kind: str, user_id: int, context: dict[str, Any]) -> str:
    """Send now (the task calls this). Returns what happened; SMTP errors propagate for the task to retry."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.email:
        return "no_address"
    if kind not in SECURITY_KINDS and not wants_notification(user=user, kind=kind):
        return "turned_off"
    notification_render(kind=kind, user=user, context=context).send()
    logger.info("notification sent", extra={"kind": kind, "user_id": user_id})
    return "sent"


def address_notification_enqueue(*, kind: str, address: str, language: str, context: dict[str, Any]) -> None:
    """Queue one email to an address without an account, once the current transaction commits."""
    if kind not in ADDRESS_KINDS:
        raise ValueError(kind)
    from notifications.tasks import send_address_notification

    payload = dict(context)
    transaction.on_commit(lambda: send_address_notification.delay(kind, address, language, payload))


def address_notification_send(*, kind: str, address: str, language: str, context: dict[str, Any]) -> str:
    """Send now (the task calls this); SMTP errors propagate for the task to retry."""
    if language not in dict(settings.LANGUAGES):
        language = settings.LANGUAGE_CODE
    notification_render(kind=kind, user=None, context=context, address=address, language=language).send()
    logger.info("notification sent", extra={"kind": kind})
    return "sent"
