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
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from accounts.selectors import trader_for_user
from clientarea.client_ip import client_ip
from clientarea.never_cache import never_cache

from . import onboarding, selectors
from .consent_rows import consent_groups
from .forms import AccountRequestForm
from .selectors import refresh_token_client_id
from .services.account_requests import AccountRequestRefused, account_request_create
from .services.authorization import (
    AuthorizationRedirectError,
    AuthorizationRequest,
    AuthorizationRequestError,
    authorization_request_validate,
)
from .services.consent import (
    AlreadyLinked,
    ClientChanged,
    ConsentFailed,
    ConsentRefused,
    Offered,
    consent_deny,
    grant_create,
)
from .services.refresh import token_refresh
from .services.revocation import grant_disconnect
from .services.tokens import OAuthError, code_exchange, code_exchange_at_once
from .throttle import token_client_blocked, token_client_failure_record

CONSENT_SALT = "tradingview.consent"
CONSENT_MAX_AGE = 3600
# The signed consent form is compressed when it offers more accounts than this: a form of a few accounts is a
# few hundred bytes, which zlib shortens by a hundred characters at the cost of setting up its state (about
# 45 microseconds a link, signing and reading back); a long list of accounts it shortens several times over.
CONSENT_COMPRESS_FROM_ACCOUNTS = 16


class _ExternalRedirect(HttpResponseRedirect):
    # Registered redirect URIs are exact strings chosen by staff; TradingView's are https.
    allowed_schemes = ["https", "http"]


def _error_page(request: HttpRequest, message: str, *, status: int = 400) -> HttpResponse:
    return render(request, "tradingview/authorize_error.html", {"message": message}, status=status)


def _no_trading_accounts(request: HttpRequest) -> HttpResponse:
    return _error_page(
        request,
        _("This sign-in has no trading accounts, so it cannot be used with TradingView."),
        status=403,
    )


@never_cache
@require_http_methods(["GET", "POST"])
def authorize(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _consent_post(request)
    # A trader who may link gets the client and the accounts in one round trip.
    reads = selectors.AuthorizePageReads(trader=trader_for_user(user=request.user))
    try:
        authz = authorization_request_validate(
            params=dict(request.GET.lists()), client_lookup=reads.registered_client
        )
    except AuthorizationRequestError as exc:
        return _error_page(request, exc.message)
    except AuthorizationRedirectError as exc:
        return _ExternalRedirect(exc.redirect_url)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    trader = reads.trader
    if trader is None:
        return _no_trading_accounts(request)
    if trader.suspended:
        return render(
            request,
            "tradingview/authorize_unavailable.html",
            {"authz": authz, "deny_url": authz.deny_url()},
            status=403,
        )
    options = reads.consent_options()
    if options.eligible_count == 0:
        return render(
            request,
            "tradingview/authorize_no_accounts.html",
            {
                "authz": authz,
                "options": options,
                "deny_url": authz.deny_url(),
                "request_url": f"{reverse('tradingview:account_request')}?next={_quote(request.get_full_path())}",
                "open_url": onboarding.open_account_url(signed_in=True)
                if onboarding.can_open_tradingview_account(trader=trader)
                else "",
                "status_url": reverse("tradingview:onboarding_status"),
            },
        )
    # The form carries the authorization request and the accounts offered, as checked here, signed and bound
    # to this user; its random key makes a re-submitted form idempotent. Nothing is written to the session.
    offered = [
        [
            o.account.pk,
            group.ctid.pk,
            group.ctid.user_id,
            o.account.ctid_trader_account_id,
            o.account.jurisdiction.broker_name,
        ]
        for group in options.ctids
        for o in group.eligible
        if o.account.jurisdiction is not None
    ]
    nonce = signing.dumps(
        {**authz.signed_fields(), "k": secrets.token_urlsafe(24), "u": request.user.pk, "o": offered},
        salt=CONSENT_SALT,
        compress=len(offered) > CONSENT_COMPRESS_FROM_ACCOUNTS,
    )
    checked = onboarding.preselected_account_ids(options=options)
    return _consent_page(request, authz=authz, options=options, nonce=nonce, checked=checked)


@never_cache
@require_http_methods(["GET"])
def onboarding_status(request: HttpRequest) -> HttpResponse:
    """Polled by a waiting authorization tab while registration or account opening runs in another tab."""
    status = onboarding.onboarding_status(
        trader=trader_for_user(user=request.user), signed_in=request.user.is_authenticated
    )
    return _json(status)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


def _consent_page(
    request: HttpRequest,
    *,
    authz: AuthorizationRequest,
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
            "consent_groups": consent_groups(options, checked=checked or ()),
        },
        status=status,
    )


def _offered(signed: dict[str, Any]) -> dict[int, Offered]:
    rows = signed.get("o")
    if not isinstance(rows, list):
        return {}
    try:
        return {
            int(row[0]): Offered(
                account_id=int(row[0]),
                ctid_id=int(row[1]),
                ctid_user_id=int(row[2]),
                ctid_trader_account_id=int(row[3]),
                broker_name=str(row[4]),
            )
            for row in rows
        }
    except (TypeError, ValueError, IndexError):
        return {}


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
    # The page validated the request and signed what it found; the consent checks the client again with the
    # accounts. A deny, or a form without that, validates the request as the page did.
    authz = AuthorizationRequest.from_signed(signed) if request.POST.get("action") != "deny" else None
    if authz is None:
        validated = _validated(request, signed)
        if isinstance(validated, HttpResponse):
            return validated
        authz = validated
    if request.POST.get("action") == "deny":
        return _ExternalRedirect(
            consent_deny(trader=trader_for_user(user=request.user), actor=request.user, request=authz)
        )
    trader = trader_for_user(user=request.user)
    if trader is None:
        return _no_trading_accounts(request)
    raw_ids = request.POST.getlist("accounts")
    try:
        account_ids = [int(v) for v in raw_ids]
    except ValueError:
        account_ids = []
        raw_ids = ["invalid"]
    checked = set(account_ids)
    offered = _offered(signed)
    try:
        if raw_ids and not account_ids:
            raise ConsentRefused(_("The chosen accounts are not valid."))
        try:
            result = grant_create(
                trader=trader,
                request=authz,
                account_ids=account_ids,
                consent_key=consent_key,
                actor=request.user,
                offered=offered,
            )
        except ClientChanged:
            validated = _validated(request, signed)
            if isinstance(validated, HttpResponse):
                return validated
            authz = validated
            result = grant_create(
                trader=trader,
                request=authz,
                account_ids=account_ids,
                consent_key=consent_key,
                actor=request.user,
            )
    except ConsentRefused as exc:
        options = selectors.consent_options(trader=trader)
        return _consent_page(
            request, authz=authz, options=options, nonce=nonce, error=exc.message, checked=checked, status=400
        )
    except ConsentFailed as exc:
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
    except AlreadyLinked:
        return render(request, "tradingview/authorize_done.html", {"authz": authz})
    return _ExternalRedirect(result.redirect_url)


def _validated(request: HttpRequest, signed: dict[str, Any]) -> AuthorizationRequest | HttpResponse:
    """The signed authorization request validated again (client, redirect URI), or the page saying why not."""
    try:
        return authorization_request_validate(params={k: [str(v)] for k, v in signed["p"].items()})
    except AuthorizationRequestError as exc:
        return _error_page(request, exc.message)
    except AuthorizationRedirectError as exc:
        return _ExternalRedirect(exc.redirect_url)


def _json(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse(data, status=status)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def _oauth_error(exc: OAuthError) -> JsonResponse:
    headers: dict[str, str] = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="tradingview"'
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return _json({"error": exc.error, "error_description": exc.description}, exc.status, headers)


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "Malformed Basic credentials.", status=401) from None
    client_id, sep, client_secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "Malformed Basic credentials.", status=401)
    # RFC 6749 2.3.1: both parts are form-urlencoded before they are joined.
    return unquote(client_id.replace("+", " ")), unquote(client_secret.replace("+", " "))


def _throttle_client_id(request: HttpRequest, client_id: str) -> str:
    """The client a failure is counted against: the one named, else the one the refresh token was issued to
    (TradingView may send only the secret on refresh). Looked up only when throttling needs it."""
    if client_id or request.POST.get("grant_type") != "refresh_token":
        return client_id
    return refresh_token_client_id(refresh_token=request.POST.get("refresh_token", ""))


@csrf_exempt
@require_POST
@sensitive_post_parameters("client_secret", "refresh_token", "code")
@sensitive_variables("client_secret", "basic", "result", "exchange")
def token(request: HttpRequest) -> JsonResponse:
    client_id = ""
    try:
        if request.content_type != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "The body must be application/x-www-form-urlencoded.")
        for name in ("grant_type", "code", "redirect_uri", "refresh_token", "client_id", "client_secret"):
            if len(request.POST.getlist(name)) > 1:
                raise OAuthError("invalid_request", f"The parameter {name} is repeated.")
        grant_type = request.POST.get("grant_type", "")
        if grant_type not in ("authorization_code", "refresh_token"):
            if not grant_type:
                raise OAuthError("invalid_request", "grant_type is required.")
            raise OAuthError("unsupported_grant_type", "Use authorization_code or refresh_token.")
        basic = _basic_credentials(request)
        if basic is not None:
            if request.POST.get("client_secret"):
                raise OAuthError("invalid_request", "Use one client authentication method.")
            client_id, client_secret = basic
        else:
            client_id = request.POST.get("client_id", "")
            client_secret = request.POST.get("client_secret", "")
        address = client_ip(request)
        exchange = {
            "client_id": client_id,
            "client_secret": client_secret,
            "code": request.POST.get("code", ""),
            "redirect_uri": request.POST.get("redirect_uri", ""),
        }
        if grant_type == "authorization_code":
            # The usual exchange in one statement, which also checks that this address has no failed client
            # authentication in the throttle's window; anything else is throttled first, then named below.
            result = code_exchange_at_once(**exchange, address=address)
            if result is not None:
                return _json(result.as_dict())
        blocked = token_client_blocked(
            client_id=lambda: _throttle_client_id(request, client_id), address=address
        )
        if blocked is not None:
            return _json(
                {
                    "error": "invalid_client",
                    "error_description": "Too many failed client authentications from this address; "
                    f"try again in {blocked.retry_after} seconds.",
                },
                status=429,
                headers={"Retry-After": str(blocked.retry_after)},
            )
        if grant_type == "authorization_code":
            result = code_exchange(**exchange)
        else:
            result = token_refresh(
                client_id=client_id,
                client_secret=client_secret,
                refresh_token=request.POST.get("refresh_token", ""),
            )
    except OAuthError as exc:
        if exc.error == "invalid_client":
            token_client_failure_record(
                client_id=_throttle_client_id(request, client_id), address=client_ip(request)
            )
        return _oauth_error(exc)
    return _json(result.as_dict())


@login_required
def index(request: HttpRequest) -> HttpResponse:
    trader = trader_for_user(user=request.user)
    grants = selectors.active_grants(trader=trader) if trader else []
    requests_ = selectors.account_requests(trader=trader) if trader else []
    return render(request, "tradingview/index.html", {"grants": grants, "account_requests": requests_})


@login_required
@require_http_methods(["GET", "POST"])
def disconnect(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask first (GET), then disconnect (POST). Another trader's session is a 404."""
    trader = trader_for_user(user=request.user)
    if trader is None:
        raise Http404
    if request.method == "GET":
        grant = selectors.active_grants(trader=trader).filter(pk=pk).first()
        if grant is None:
            raise Http404
        return render(request, "tradingview/disconnect_confirm.html", {"grant": grant})
    result = grant_disconnect(trader=trader, grant_id=pk)
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
    trader = trader_for_user(user=request.user)
    if trader is None:
        return _error_page(request, _("This sign-in has no trading accounts."), status=403)
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next", ""))
    open_request = trader.tradingview_account_requests.filter(state="open").first()
    form = AccountRequestForm(request.POST or None)
    if request.method == "POST" and open_request is None and form.is_valid():
        try:
            account_request_create(
                trader=trader,
                environment=form.cleaned_data["environment"],
                jurisdiction_id=form.cleaned_data["jurisdiction"].pk
                if form.cleaned_data["jurisdiction"]
                else None,
                note=form.cleaned_data["note"],
                return_url=next_url,
            )
        except AccountRequestRefused as exc:
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
