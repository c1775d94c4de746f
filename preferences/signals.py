"""At sign-in: the profile's language goes into the session."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.translation import gettext as _

from preferences.middleware import SESSION_KEY
from preferences.selectors import language_for_user


@receiver(user_logged_in, dispatch_uid="preferences.language_into_session")
def language_into_session(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = language_for_user(user=user)


@receiver(user_logged_out, dispatch_uid="preferences.signed_out_message")
def signed_out_message(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "_messages"):
        messages.info(request, _("You are signed out."))
