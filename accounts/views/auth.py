"""Sign-up, sign-in, sign-out and password pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm, SetPasswordForm
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET
from django.views.generic import FormView
from django_ratelimit.core import is_ratelimited

from accounts.forms import ChangePasswordForm, NewPasswordForm, SignInForm, SignUpForm
from accounts.services import sign_up
from accounts.services.traders import trader_change_password
from clientarea.client_ip import client_ip
from clientarea.never_cache import never_cache

BACKEND = "accounts.backends.TraderModelBackend"
# The browser that asked for a sign-up link; opening the link in it signs in straight away.
SIGN_UP_NONCE = "accounts.signup.nonce"


@method_decorator(sensitive_post_parameters("password1", "password2"), name="dispatch")
class SignUpView(FormView):
    template_name = "registration/signup.html"
    form_class = SignUpForm

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.user.is_authenticated:
            return redirect("dashboard")
        return super().dispatch(request, *args, **kwargs)

    def _next_url(self) -> str:
        # A sign-up started from another flow (e.g. a TradingView authorization) returns to it.
        value = self.request.POST.get("next") or self.request.GET.get("next", "")
        allowed = url_has_allowed_host_and_scheme(
            value, allowed_hosts={self.request.get_host()}, require_https=self.request.is_secure()
        )
        return value if value and allowed else ""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["next"] = self._next_url()
        return context

    def form_valid(self, form: SignUpForm) -> HttpResponse:
        # Every valid sign-up sends a mail: past SIGN_UP_CLIENT_RATE from one client address the page says to
        # wait, and past SIGN_UP_EMAIL_RATE for one address nothing more is sent to it (the answer is the same,
        # so the limit says nothing about the address).
        if is_ratelimited(
            self.request,
            group="sign-up-client",
            key=lambda _group, request: client_ip(request) or "",
            rate=settings.SIGN_UP_CLIENT_RATE,
            increment=True,
        ):
            return render(self.request, "registration/signup_limited.html", status=429)
        email = form.cleaned_data["email"].strip().lower()
        if is_ratelimited(
            self.request,
            group="sign-up-email",
            key=lambda _group, _request: email,
            rate=settings.SIGN_UP_EMAIL_RATE,
            increment=True,
        ):
            return redirect("signup-sent")
        # The same answer whether or not the address has an account; only the mail sent to it differs.
        nonce = self.request.session.get(SIGN_UP_NONCE) or sign_up.sign_up_nonce()
        self.request.session[SIGN_UP_NONCE] = nonce
        sign_up.sign_up_request(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            next_url=self._next_url(),
            nonce=nonce,
            language=get_language() or "",
        )
        return redirect("signup-sent")


@never_cache
@require_GET
def sign_up_sent(request: HttpRequest) -> HttpResponse:
    hours = settings.EMAIL_VERIFICATION_TTL_SECONDS // 3600
    return render(request, "registration/signup_sent.html", {"hours": hours})


@never_cache
@require_GET
def sign_up_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the sign-up mail: create the account, then sign in (at once in the browser that asked)."""
    try:
        trader, asked = sign_up.sign_up_confirm(token=token)
    except sign_up.SignUpFailed as failure:
        messages.error(request, failure.message)
        return redirect("signup")
    next_url = str(asked.get("n") or "")
    same_browser = bool(asked.get("b")) and request.session.get(SIGN_UP_NONCE) == asked.get("b")
    if trader is not None and same_browser and not request.user.is_authenticated:
        request.session.pop(SIGN_UP_NONCE, None)
        login(request, trader.user, backend=BACKEND)
        messages.success(
            request,
            _("Welcome! Your account is ready. Connect your cTrader ID to see your trading accounts."),
        )
        return HttpResponseRedirect(next_url or reverse("dashboard"))
    # Opened elsewhere (another browser, a mail scanner, a second click): the password proves who it is.
    messages.success(request, _("Your account is ready. Sign in to continue."))
    login_url = reverse("login")
    if next_url:
        login_url += "?" + urlencode({"next": next_url})
    return HttpResponseRedirect(login_url)


class SignInView(auth_views.LoginView):
    form_class = SignInForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        from tradingview import onboarding

        context = super().get_context_data(**kwargs)
        next_url = str(context.get("next") or "")
        # Reached from a TradingView authorization: the page shows only the authorization (TradingView's rule),
        # and registration opens in a new tab (cases A and B).
        context["authorizing"] = next_url.startswith(reverse("tradingview:authorize"))
        if onboarding.is_authorization_url(next_url) and onboarding.can_open_tradingview_account(trader=None):
            context["tradingview_open_url"] = onboarding.open_account_url(signed_in=False)
        return context

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        from twofactor.services import two_factor_enabled
        from twofactor.views import second_step_start

        user = form.get_user()
        if two_factor_enabled(user=user):
            return second_step_start(self.request, user=user, next_url=self.get_redirect_url())
        return super().form_valid(form)


class PasswordChangeView(auth_views.PasswordChangeView):
    form_class = ChangePasswordForm

    def form_valid(self, form: PasswordChangeForm) -> HttpResponse:
        trader_change_password(user=form.user, new_password=form.cleaned_data["new_password1"], via="change")
        # Keep this session signed in; every other session of the user ends with the old password hash.
        update_session_auth_hash(self.request, form.user)
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    form_class = NewPasswordForm

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        trader_change_password(user=form.user, new_password=form.cleaned_data["new_password1"], via="reset")
        del self.request.session[auth_views.INTERNAL_RESET_SESSION_TOKEN]
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset view, with the brand in the email."""

    def form_valid(self, form: Any) -> HttpResponse:
        from branding.selectors import brand_current

        self.extra_email_context = {"brand": brand_current()}
        return super().form_valid(form)
