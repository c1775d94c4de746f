"""Reads of preferences, always for one given user."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from preferences.models import Preference

NOTIFICATION_KINDS = (
    "ctid_reconnect",
    "tradingview_revoked",
    "account_request",
    "new_sign_in",
)


def preference_for_user(*, user: Any) -> Preference:
    """The user's preferences, unsaved defaults when they never chose anything."""
    found = Preference.objects.filter(user_id=user.pk).first()
    return found if found is not None else Preference(user_id=user.pk)


def language_for_user(*, user: Any) -> str:
    """The language chosen on the profile, or "" to use the browser's."""
    code = Preference.objects.filter(user_id=user.pk).values_list("language", flat=True).first() or ""
    return code if code in dict(settings.LANGUAGES) else ""


def wants_notification(*, user: Any, kind: str) -> bool:
    if kind not in NOTIFICATION_KINDS:
        raise ValueError(kind)
    return bool(getattr(preference_for_user(user=user), f"notify_{kind}"))
