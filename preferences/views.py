"""The trader's settings page: language, emails, password and two-factor sign-in."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from preferences.forms import PreferenceForm
from preferences.middleware import SESSION_KEY, supported_language
from preferences.selectors import NOTIFICATION_KINDS, preference_for_user
from preferences.services import preference_update


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    pref = preference_for_user(user=request.user)
    if request.method == "POST":
        form = PreferenceForm(request.POST, instance=pref)
        if form.is_valid():
            language = form.cleaned_data["language"]
            preference_update(
                user=request.user,
                language=language,
                notify={kind: form.cleaned_data[f"notify_{kind}"] for kind in NOTIFICATION_KINDS},
            )
            request.session[SESSION_KEY] = language
            if language:
                translation.activate(language)
            messages.success(request, _("Your settings are saved."))
            response = redirect("settings")
            _remember_language(response, language)
            return response
    else:
        form = PreferenceForm(instance=pref)
    return render(request, "preferences/settings.html", {"form": form})


def _remember_language(response: HttpResponse, language: str) -> None:
    from django.conf import settings

    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            samesite="Lax",
            secure=settings.LANGUAGE_COOKIE_SECURE,
            httponly=True,
        )


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """The footer's language switch: Django's cookie, plus the profile for a signed-in trader."""
    code = supported_language(request.POST.get("language", ""))
    if code and request.user.is_authenticated:
        preference_update(user=request.user, language=code)
        request.session[SESSION_KEY] = code
    # Django's view checks ``next`` against the host and falls back to the referring page, then "/".
    return django_set_language(request)
