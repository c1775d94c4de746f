"""Writes of preferences."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from preferences.models import Preference


def preference_update(
    *, user: Any, language: str | None = None, notify: dict[str, bool] | None = None
) -> Preference:
    """Save the user's language ("" for the browser's) and/or email choices."""
    values: dict[str, Any] = {}
    if language is not None:
        if language and language not in dict(settings.LANGUAGES):
            raise ValueError(f"Unsupported language {language!r}.")
        values["language"] = language
    for kind, on in (notify or {}).items():
        values[f"notify_{kind}"] = bool(on)
    pref, _ = Preference.objects.update_or_create(user_id=user.pk, defaults=values)
    return pref
