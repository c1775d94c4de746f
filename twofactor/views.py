"""Two-step sign-in pages: the second step of signing in, and turning it on or off in the settings."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import segno
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_lockout_response
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login, user_login_failed
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods
from django_otp import login as otp_login

from clientarea.never_cache import never_cache
from twofactor.forms import CodeForm, SetupForm
from twofactor.services import (
    CodeRefused,
    recovery_codes_left,
    recovery_codes_regenerate,
    totp_device_pending,
    two_factor_disable,
    two_factor_enable,
    two_factor_enabled,
    two_factor_verify,
)

PENDING_KEY = "twofactor.pending"
PENDING_SECONDS = 300


def second_step_start(request: HttpRequest, *, user: Any, next_url: str) -> HttpResponse:
    """The password was right and the user has two-step sign-in: remember who, then ask for the code."""
    request.session.cycle_key()
    request.session[PENDING_KEY] = {
        "uid": user.pk,
        "backend": getattr(user, "backend", settings.AUTHENTICATION_BACKENDS[-1]),
        "at": time.time(),
    }
    url = reverse("two_factor_verify")
    if next_url:
        from urllib.parse import urlencode

        url += "?" + urlencode({"next": next_url})
    return HttpResponseRedirect(url)


def _safe_next(request: HttpRequest) -> str:
    value = request.POST.get("next") or request.GET.get("next", "")
    ok = url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return value if value and ok else ""


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    pending = request.session.get(PENDING_KEY)
    next_url = _safe_next(request)
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > PENDING_SECONDS:
        request.session.pop(PENDING_KEY, None)
        messages.error(request, _("Your sign-in took too long. Please sign in again."))
        login_url = reverse("login")
        return redirect(f"{login_url}?next={next_url}" if next_url else login_url)
    user = get_user_model().objects.filter(pk=pending["uid"], is_active=True).first()
    if user is None:
        request.session.pop(PENDING_KEY, None)
        return redirect("login")
    credentials = {"username": user.get_username()}
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # The same lock-out as the password step: per account and per address (django-axes).
        if not AxesProxyHandler.is_allowed(request, credentials):
            return get_lockout_response(request, credentials)
        device = two_factor_verify(user=user, code=form.cleaned_data["code"])
        if device is None:
            user_login_failed.send(sender=__name__, credentials=credentials, request=request)
            if not AxesProxyHandler.is_allowed(request, credentials):
                return get_lockout_response(request, credentials)
            form.add_error(
                "code",
                _(
                    "This code is not right. Check that your phone's clock is right and enter the newest code."
                ),
            )
        else:
            del request.session[PENDING_KEY]
            login(request, user, backend=pending["backend"])
            otp_login(request, device)
            if device.name == "recovery codes":
                messages.warning(
                    request,
                    _("You used a recovery code. You have %(count)s left; make new ones in your settings.")
                    % {"count": recovery_codes_left(user=user)},
                )
            return HttpResponseRedirect(next_url or reverse(settings.LOGIN_REDIRECT_URL))
    return render(request, "twofactor/verify.html", {"form": form, "next": next_url})


def _otpauth_url(request: HttpRequest) -> str:
    from branding.selectors import brand_current

    device = totp_device_pending(user=request.user)
    secret = base64.b32encode(device.bin_key).decode()
    from urllib.parse import quote, urlencode

    issuer = brand_current().name
    label = quote(f"{issuer}:{request.user.get_username()}")
    return f"otpauth://totp/{label}?" + urlencode(
        {"secret": secret, "issuer": issuer, "digits": device.digits}
    )


@never_cache
@login_required
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def two_factor(request: HttpRequest) -> HttpResponse:
    enabled = two_factor_enabled(user=request.user)
    action = request.POST.get("action", "")
    codes: list[str] = []
    form = SetupForm(request.POST if action == "enable" else None)
    disable_form = CodeForm(request.POST if action == "disable" else None, prefix="off")
    if action == "enable" and not enabled and form.is_valid():
        try:
            device, codes = two_factor_enable(user=request.user, code=form.cleaned_data["code"])
        except CodeRefused:
            form.add_error("code", _("This code is not right. Enter the newest code the app shows."))
        else:
            otp_login(request, device)
            enabled = True
            messages.success(request, _("Two-step sign-in is on."))
    elif action == "regenerate" and enabled:
        codes = recovery_codes_regenerate(user=request.user)
        messages.success(request, _("You have new recovery codes; the old ones no longer work."))
    elif action == "disable" and enabled and disable_form.is_valid():
        if settings.TWO_FACTOR_REQUIRED_FOR_STAFF and request.user.is_staff:
            messages.error(request, _("Staff must keep two-step sign-in on."))
        else:
            try:
                two_factor_disable(user=request.user, code=disable_form.cleaned_data["code"])
            except CodeRefused:
                disable_form.add_error(
                    "code", _("This code is not right. Enter the newest code the app shows.")
                )
            else:
                messages.success(request, _("Two-step sign-in is off."))
                return redirect("two_factor")
    context: dict[str, Any] = {"enabled": enabled, "codes": codes, "form": form, "disable_form": disable_form}
    if enabled:
        context["codes_left"] = recovery_codes_left(user=request.user)
    else:
        url = _otpauth_url(request)
        context["secret"] = url.split("secret=")[1].split("&")[0]
    response = render(request, "twofactor/setup.html", context)
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@login_required
@require_GET
def qr_code(request: HttpRequest) -> HttpResponse:
    """The QR code of the authenticator app being set up, as SVG from our own origin."""
    if two_factor_enabled(user=request.user):
        return HttpResponse(status=404)
    buffer = io.BytesIO()
    segno.make(_otpauth_url(request), error="m").save(buffer, kind="svg", scale=5, border=2, xmldecl=False)
    response = HttpResponse(buffer.getvalue(), content_type="image/svg+xml")
    response["Cache-Control"] = "no-store"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
