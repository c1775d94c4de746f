"""TradingView pages: the OAuth2 authorize and token endpoints, the trader's linked sessions, account requests."""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any
from urllib.parse import unquote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import Trader

from . import selectors, services
from .forms import AccountRequestForm

CONSENT_SALT = "tradingview.consent"
CONSENT_MAX_AGE = 3600


class _ExternalRedirect(HttpResponseRedirect):
    # Registered redirect URIs are exact strings chosen by staff; TradingView's are https.
    allowed_schemes = ["https", "http"]


def _trader(request: HttpRequest) -> Trader | None:
    if not request.user.is_authenticated:
        return None
    # The authentication backend loads the trader with the user (it refuses suspended traders' sessions).
    trader = getattr(request.user, "trader", None)
    return trader if isinstance(trader, Trader) else None


def _error_page(request: HttpRequest, message: str, *, status: int = 400) -> HttpResponse:
    return render(request, "tradingview/authorize_error.html", {"message": message}, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def authorize(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _consent_post(request)
    try:
        authz = services.authorization_request_validate(params=dict(request.GET.lists()))
    except services.AuthorizationRequestError as exc:
        return _error_page(request, exc.message)
    except services.AuthorizationRedirectError as exc:
        return _ExternalRedirect(exc.redirect_url)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    trader = _trader(request)
    if trader is None:
        return _error_page(
            request,
            _("This sign-in has no trading accounts, so it cannot be used with TradingView."),
            status=403,
        )
    if trader.suspended:
        return render(
            request,
            "tradingview/authorize_unavailable.html",
            {"authz": authz, "deny_url": authz.deny_url()},
            status=403,
        )
    options = selectors.consent_options(trader=trader)
    if options.eligible_count == 0:
        return render(
            request,
            "tradingview/authorize_no_accounts.html",
            {
                "authz": authz,
                "options": options,
                "deny_url": authz.deny_url(),
                "request_url": f"{reverse('tradingview:account_request')}?next={_quote(request.get_full_path())}",
            },
        )
    # The form carries the authorization request, signed and bound to this user; its random key makes a
    # re-submitted form idempotent. Nothing is written to the session.
    nonce = signing.dumps(
        {"p": authz.as_params(), "k": secrets.token_urlsafe(24), "u": request.user.pk},
        salt=CONSENT_SALT,
        compress=True,
    )
    return _consent_page(request, authz=authz, options=options, nonce=nonce)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


def _consent_page(
    request: HttpRequest,
    *,
    authz: services.AuthorizationRequest,
    options: selectors.ConsentOptions,
    nonce: str,
    error: str = "",
    retry: bool = False,
    checked: set[int] | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "tradingview/authorize_consent.html",
        {
            "authz": authz,
            "options": options,
            "nonce": nonce,
            "error": error,
            "retry": retry,
            "checked": checked or set(),
            "deny_url": authz.deny_url(),
        },
        status=status,
    )


def _consent_post(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return _error_page(
            request, _("You were signed out. Go back to TradingView and start again."), status=403
        )
    nonce = request.POST.get("consent", "")
    try:
        signed = signing.loads(nonce, salt=CONSENT_SALT, max_age=CONSENT_MAX_AGE)
    except signing.BadSignature:
        signed = None
    if (
        not isinstance(signed, dict)
        or signed.get("u") != request.user.pk
        or not isinstance(signed.get("p"), dict)
    ):
        return _error_page(request, _("This page has expired. Go back to TradingView and start again."))
    consent_key = str(signed["k"])
    try:
        authz = services.authorization_request_validate(params={k: [str(v)] for k, v in signed["p"].items()})
    except services.AuthorizationRequestError as exc:
        return _error_page(request, exc.message)
    except services.AuthorizationRedirectError as exc:
        return _ExternalRedirect(exc.redirect_url)
    if request.POST.get("action") == "deny":
        services.audit(action="consent", outcome="denied", trader=_trader(request), actor=request.user)
        return _ExternalRedirect(authz.deny_url())
    trader = _trader(request)
    if trader is None:
        return _error_page(
            request,
            _("This sign-in has no trading accounts, so it cannot be used with TradingView."),
            status=403,
        )
    raw_ids = request.POST.getlist("accounts")
    try:
        account_ids = [int(v) for v in raw_ids]
    except ValueError:
        account_ids = []
        raw_ids = ["invalid"]
    checked = set(account_ids)
    try:
        if raw_ids and not account_ids:
            raise services.ConsentRefused(_("The chosen accounts are not valid."))
        result = services.grant_create(
            trader=trader, request=authz, account_ids=account_ids, consent_key=consent_key, actor=request.user
        )
    except services.ConsentRefused as exc:
        options = selectors.consent_options(trader=trader)
        return _consent_page(
            request, authz=authz, options=options, nonce=nonce, error=exc.message, checked=checked, status=400
        )
    except services.ConsentFailed as exc:
        options = selectors.consent_options(trader=trader)
        return _consent_page(
            request,
            authz=authz,
            options=options,
            nonce=nonce,
            error=_("TradingView could not be reached just now, so nothing was linked.")
            if exc.transient
            else _("TradingView did not accept the link this time, so nothing was linked."),
            retry=True,
            checked=checked,
            status=503 if exc.transient else 502,
        )
    except services.AlreadyLinked:
        return render(request, "tradingview/authorize_done.html", {"authz": authz})
    return _ExternalRedirect(result.redirect_url)


def _json(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse(data, status=status)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def _oauth_error(exc: services.OAuthError) -> JsonResponse:
    headers = {"WWW-Authenticate": 'Basic realm="tradingview"'} if exc.status == 401 else None
    return _json({"error": exc.error, "error_description": exc.description}, exc.status, headers)


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise services.OAuthError("invalid_client", "Malformed Basic credentials.", status=401) from None
    client_id, sep, client_secret = decoded.partition(":")
    if not sep:
        raise services.OAuthError("invalid_client", "Malformed Basic credentials.", status=401)
    # RFC 6749 2.3.1: both parts are form-urlencoded before they are joined.
    return unquote(client_id.replace("+", " ")), unquote(client_secret.replace("+", " "))


@csrf_exempt
@require_POST
def token(request: HttpRequest) -> JsonResponse:
    try:
        if request.content_type != "application/x-www-form-urlencoded":
            raise services.OAuthError(
                "invalid_request", "The body must be application/x-www-form-urlencoded."
            )
        for name in ("grant_type", "code", "redirect_uri", "refresh_token", "client_id", "client_secret"):
            if len(request.POST.getlist(name)) > 1:
                raise services.OAuthError("invalid_request", f"The parameter {name} is repeated.")
        grant_type = request.POST.get("grant_type", "")
        if grant_type not in ("authorization_code", "refresh_token"):
            if not grant_type:
                raise services.OAuthError("invalid_request", "grant_type is required.")
            raise services.OAuthError("unsupported_grant_type", "Use authorization_code or refresh_token.")
        basic = _basic_credentials(request)
        if basic is not None:
            if request.POST.get("client_secret"):
                raise services.OAuthError("invalid_request", "Use one client authentication method.")
            client_id, client_secret = basic
        else:
            client_id = request.POST.get("client_id", "")
            client_secret = request.POST.get("client_secret", "")
        if grant_type == "refresh_token" and not client_id:
            client_id = services.refresh_token_client_id(refresh_token=request.POST.get("refresh_token", ""))
        if grant_type == "authorization_code":
            result = services.code_exchange(
                client_id=client_id,
                client_secret=client_secret,
                code=request.POST.get("code", ""),
                redirect_uri=request.POST.get("redirect_uri", ""),
            )
        else:
            client = services.client_authenticate(client_id=client_id, client_secret=client_secret)
            result = services.grant_refresh(
                client=client, refresh_token=request.POST.get("refresh_token", "")
            )
    except services.OAuthError as exc:
        return _oauth_error(exc)
    return _json(result.as_dict())


@login_required
def index(request: HttpRequest) -> HttpResponse:
    trader = _trader(request)
    grants = selectors.active_grants(trader=trader) if trader else []
    requests_ = selectors.account_requests(trader=trader) if trader else []
    return render(request, "tradingview/index.html", {"grants": grants, "account_requests": requests_})


@login_required
@require_http_methods(["GET", "POST"])
def disconnect(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask first (GET), then disconnect (POST). Another trader's session is a 404."""
    trader = _trader(request)
    if trader is None:
        raise Http404
    if request.method == "GET":
        grant = selectors.active_grants(trader=trader).filter(pk=pk).first()
        if grant is None:
            raise Http404
        return render(request, "tradingview/disconnect_confirm.html", {"grant": grant})
    result = services.grant_disconnect(trader=trader, grant_id=pk)
    if result is None:
        raise Http404
    messages.success(
        request,
        _(
            "Disconnected. TradingView can no longer trade on these accounts; link again from its Trading Panel."
        ),
    )
    return redirect("tradingview:index")


def _safe_next(request: HttpRequest, value: str) -> str:
    prefix = reverse("tradingview:authorize")
    if value.startswith(prefix) and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return ""


@login_required
@require_http_methods(["GET", "POST"])
def account_request(request: HttpRequest) -> HttpResponse:
    trader = _trader(request)
    if trader is None:
        return _error_page(request, _("This sign-in has no trading accounts."), status=403)
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next", ""))
    open_request = trader.tradingview_account_requests.filter(state="open").first()
    form = AccountRequestForm(request.POST or None)
    if request.method == "POST" and open_request is None and form.is_valid():
        try:
            services.account_request_create(
                trader=trader,
                environment=form.cleaned_data["environment"],
                jurisdiction_id=form.cleaned_data["jurisdiction"].pk
                if form.cleaned_data["jurisdiction"]
                else None,
                note=form.cleaned_data["note"],
                return_url=next_url,
            )
        except services.AccountRequestRefused as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                _(
                    'We received your request for a "cTrader/TradingView" account. We will email you when it is ready.'
                ),
            )
        return redirect(next_url or reverse("tradingview:index"))
    return render(
        request,
        "tradingview/account_request.html",
        {"form": form, "next": next_url, "open_request": open_request},
    )
