"""The TradingView link: OAuth clients, authorization, consent, code exchange, refresh and revocation.

We are TradingView's OAuth2 authorization server (code flow). The access token TradingView receives is the
adapter token from Spotware's ``/generate/token``; every adapter token issued is stored (encrypted) in a
``Grant`` so it can be revoked with ``/logout``. Adapter calls never run inside a database transaction.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import AuditEvent, Trader, TradingAccount

from . import adapter, signals
from .models import (
    AccountRequest,
    AuthorizationCode,
    Grant,
    OAuthClient,
    RedirectUri,
    client_secret_hash,
    token_hash,
)
from .selectors import account_ineligibility, trader_accounts

logger = logging.getLogger(__name__)

AUDIT_CATEGORY = "tradingview"
MAX_EXPIRES_IN = 2_147_483  # TradingView's ceiling: 2,147,483,647 ms
MAX_ACCOUNTS_PER_GRANT = 1000
REFRESH_LEASE_SECONDS = 60
# A pending grant older than this belongs to a request that died while waiting for the adapter.
PENDING_STALE_SECONDS = 120
TRADINGVIEW_LANGS = frozenset(
    [
        "ar",
        "br",
        "cs",
        "de",
        "el",
        "en",
        "es",
        "fa",
        "fr",
        "he",
        "hu",
        "id",
        "in",
        "it",
        "ja",
        "kr",
        "ms",
        "nl",
        "pl",
        "ro",
        "ru",
        "sv",
        "th",
        "tr",
        "uk",
        "vi",
        "zh",
    ]
)
SANDBOX_CLIENT_ID = "sandbox-tradingview"
SANDBOX_CLIENT_SECRET = "sandbox-tradingview-secret"


def audit(
    *,
    action: str,
    outcome: str,
    trader: Trader | None = None,
    trader_id: int | None = None,
    actor: Any = None,
    message: str = "",
    **detail: Any,
) -> AuditEvent:
    """One record in the shared audit trail; ``detail`` never holds a token or a secret."""
    return AuditEvent.objects.create(
        category=AUDIT_CATEGORY,
        action=action,
        outcome=outcome,
        trader_id=trader.pk if trader is not None else trader_id,
        actor=actor if actor is not None and getattr(actor, "is_authenticated", False) else None,
        message=message[:500],
        detail=detail,
    )


# --- OAuth clients ---------------------------------------------------------------------------------------


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def oauth_client_create(
    *, name: str, redirect_uris: Sequence[str], environment: str = "", actor: Any = None
) -> tuple[OAuthClient, str]:
    """Register a client; returns it with its secret, which is shown once and stored only hashed."""
    uris = _clean_redirect_uris(redirect_uris)
    client = OAuthClient(name=name, environment=environment)
    secret = new_client_credentials(client=client)
    with transaction.atomic():
        client.save()
        RedirectUri.objects.bulk_create(RedirectUri(client=client, uri=u) for u in uris)
        audit(action="client_created", outcome="ok", actor=actor, client_id=client.client_id, name=name)
    return client, secret


def new_client_credentials(*, client: OAuthClient) -> str:
    """Give an unsaved client its id and a new secret (stored hashed); returns the secret to show once."""
    secret = _new_secret()
    client.client_id = f"tv-{secrets.token_urlsafe(18)}"
    client.client_secret_hash = client_secret_hash(secret)
    return secret


def oauth_client_rotate_secret(*, client: OAuthClient, actor: Any = None) -> str:
    secret = _new_secret()
    client.client_secret_hash = client_secret_hash(secret)
    client.secret_rotated_at = timezone.now()
    client.save(update_fields=["client_secret_hash", "secret_rotated_at"])
    audit(action="client_secret_rotated", outcome="ok", actor=actor, client_id=client.client_id)
    return secret


def oauth_client_ensure(*, client_id: str, client_secret: str, name: str, redirect_uri: str) -> OAuthClient:
    """Create or update a client with a known id and secret (the sandbox's TradingView simulator)."""
    with transaction.atomic():
        client, created = OAuthClient.objects.get_or_create(
            client_id=client_id,
            defaults={
                "name": name,
                "environment": "sandbox",
                "client_secret_hash": client_secret_hash(client_secret),
            },
        )
        if not created and (client.secret_needs_rehash or not client.check_secret(client_secret)):
            client.client_secret_hash = client_secret_hash(client_secret)
            client.save(update_fields=["client_secret_hash"])
        if not client.is_active:
            client.is_active = True
            client.save(update_fields=["is_active"])
        RedirectUri.objects.get_or_create(client=client, uri=redirect_uri)
    return client


def tradingview_client_ensure_sandbox(*, sandbox_url: str | None = None) -> OAuthClient:
    """Register the TradingView simulator of the sandbox (``sandbox/tradingview.py``) as a client."""
    base = (sandbox_url or settings.SANDBOX_HTTP).rstrip("/")
    return oauth_client_ensure(
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
        name="TradingView simulator",
        redirect_uri=f"{base}/tradingview-sim/callback",
    )


def _clean_redirect_uris(uris: Sequence[str]) -> list[str]:
    cleaned: list[str] = []
    for uri in uris:
        uri = uri.strip()
        parts = urlsplit(uri)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
            raise ValueError(f"Not an absolute http(s) URI without a fragment: {uri!r}")
        if uri not in cleaned:
            cleaned.append(uri)
    if not cleaned:
        raise ValueError("At least one redirect URI is required.")
    return cleaned


# --- Authorization request -------------------------------------------------------------------------------


class AuthorizationRequestError(Exception):
    """The request cannot be trusted to redirect anywhere (unknown client, unregistered redirect URI)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthorizationRedirectError(Exception):
    """An RFC 6749 error to send back to the (verified) redirect URI with the unchanged state."""

    def __init__(self, *, error: str, description: str, redirect_uri: str, state: str | None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state

    @property
    def redirect_url(self) -> str:
        params = {"error": self.error, "error_description": self.description}
        if self.state is not None:
            params["state"] = self.state
        return add_query(self.redirect_uri, params)


@dataclass(frozen=True)
class AuthorizationRequest:
    client: OAuthClient
    redirect_uri: str
    state: str | None
    scope: str
    lang: str

    def as_params(self) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
        }
        if self.state is not None:
            params["state"] = self.state
        if self.scope:
            params["scope"] = self.scope
        if self.lang:
            params["lang"] = self.lang
        return params

    def deny_url(self) -> str:
        return AuthorizationRedirectError(
            error="access_denied",
            description="The trader declined to link accounts.",
            redirect_uri=self.redirect_uri,
            state=self.state,
        ).redirect_url


def add_query(uri: str, params: Mapping[str, str]) -> str:
    """``uri`` with ``params`` added to whatever query it already has."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def authorization_request_validate(*, params: Mapping[str, Sequence[str]]) -> AuthorizationRequest:
    """Check an authorize request. ``params`` maps each name to every value it was given."""

    def one(name: str) -> str | None:
        values = params.get(name) or []
        if len(values) > 1:
            raise _Duplicate(name)
        return values[0] if values else None

    try:
        client_id = one("client_id")
        redirect_uri = one("redirect_uri")
    except _Duplicate as exc:
        raise AuthorizationRequestError(
            _("The request from TradingView was not valid (a repeated parameter).")
        ) from exc
    if not client_id:
        raise AuthorizationRequestError(
            _("The request from TradingView was not valid (it does not say who is asking).")
        )
    try:
        # (client, uri) is unique, so at most one row matches; the pages need only these columns.
        client = OAuthClient.objects.only("client_id", "name", "is_active").get(
            client_id=client_id, is_active=True, redirect_uris__uri=redirect_uri or ""
        )
    except OAuthClient.DoesNotExist:
        if not OAuthClient.objects.filter(client_id=client_id, is_active=True).exists():
            raise AuthorizationRequestError(
                _("The application asking for access is not known to us.")
            ) from None
        raise AuthorizationRequestError(
            _("The address to return to is not registered for this application.")
        ) from None
    assert redirect_uri is not None

    state_values = params.get("state") or []
    state = state_values[0] if state_values else None

    def fail(error: str, description: str) -> AuthorizationRedirectError:
        return AuthorizationRedirectError(
            error=error, description=description, redirect_uri=redirect_uri, state=state
        )

    try:
        response_type = one("response_type")
        one("state")
        scope = one("scope") or ""
        lang = one("lang") or ""
    except _Duplicate as exc:
        raise fail("invalid_request", f"The parameter {exc.name} is repeated.") from exc
    if not response_type:
        raise fail("invalid_request", "response_type is required.")
    if response_type != "code":
        raise fail("unsupported_response_type", "Only the authorization code flow is supported.")
    if len(scope) > 200:
        raise fail("invalid_scope", "The scope is too long.")
    if state is not None and len(state) > 2000:
        raise fail("invalid_request", "The state is too long.")
    lang = lang if lang in TRADINGVIEW_LANGS else ""
    return AuthorizationRequest(client=client, redirect_uri=redirect_uri, state=state, scope=scope, lang=lang)


class _Duplicate(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


# --- Consent: adapter token, grant, code --------------------------------------------------------------------


class ConsentRefused(Exception):
    """The consent cannot go ahead as submitted; nothing was sent to the adapter."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConsentFailed(Exception):
    """The adapter did not issue a token; no grant and no code exist. The trader can retry."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


class AlreadyLinked(Exception):
    """This consent was already completed and its code handed to TradingView."""


@dataclass(frozen=True)
class ConsentResult:
    grant: Grant
    code: str
    redirect_url: str


def _chosen_accounts(*, trader: Trader, account_ids: Sequence[int]) -> list[TradingAccount]:
    ids = set(account_ids)
    if not ids:
        raise ConsentRefused(_("Choose at least one account."))
    if len(ids) > MAX_ACCOUNTS_PER_GRANT:
        raise ConsentRefused(_("You chose too many accounts at once. Choose fewer."))
    accounts = list(trader_accounts(trader=trader).filter(pk__in=ids))
    if len(accounts) != len(ids):
        raise ConsentRefused(_("One or more of the chosen accounts are not yours."))
    for account in accounts:
        reason = account_ineligibility(account)
        if reason:
            raise ConsentRefused(
                _("Account %(login)s cannot be used: %(reason)s") % {"login": account.login, "reason": reason}
            )
    if len({a.ctid_id for a in accounts}) != 1:
        raise ConsentRefused(_("Choose accounts of one cTrader ID at a time."))
    return accounts


def _token_expiry(issued_at: datetime) -> datetime:
    return issued_at + timedelta(days=settings.TRADINGVIEW_ADAPTER_TOKEN_LIFETIME_DAYS)


def _code_issue(*, grant: Grant, redirect_uri: str, first: bool = False) -> str:
    code = secrets.token_urlsafe(32)
    now = timezone.now()
    if not first:
        # Any earlier unused code for this grant stops working: only the newest redirect reached TradingView.
        AuthorizationCode.objects.filter(grant=grant, used_at__isnull=True).update(superseded=True)
    AuthorizationCode.objects.create(
        code_hash=token_hash(code),
        client_id=grant.client_id,
        grant=grant,
        redirect_uri=redirect_uri,
        expires_at=now + timedelta(seconds=settings.TRADINGVIEW_CODE_TTL_SECONDS),
    )
    return code


def _code_redirect(request: AuthorizationRequest, code: str) -> str:
    params = {"code": code}
    if request.state is not None:
        params["state"] = request.state
    return add_query(request.redirect_uri, params)


def grant_create(
    *,
    trader: Trader,
    request: AuthorizationRequest,
    account_ids: Sequence[int],
    consent_key: str,
    actor: Any = None,
) -> ConsentResult:
    """Get an adapter token for the chosen accounts, store the grant and issue a code for TradingView.

    ``consent_key`` identifies one rendering of the consent form: submitting it again returns the same grant
    (with a fresh code) instead of asking the adapter twice.
    """
    if trader.suspended:
        raise ConsentRefused(_("Your access is suspended."))
    try:
        accounts = _chosen_accounts(trader=trader, account_ids=account_ids)
    except ConsentRefused as exc:
        audit(
            action="consent",
            outcome="refused",
            trader=trader,
            actor=actor,
            message=exc.message,
            client_id=request.client.client_id,
            account_ids=sorted({int(i) for i in account_ids})[:50],
        )
        raise
    ctid = accounts[0].ctid
    broker_names = sorted({a.jurisdiction.broker_name for a in accounts if a.jurisdiction is not None})
    account_numbers = sorted(a.ctid_trader_account_id for a in accounts)

    grant = _grant_claim(
        trader=trader,
        request=request,
        consent_key=consent_key,
        ctid_id=ctid.pk,
        broker_names=broker_names,
        is_verified=trader.kyc_verified,
    )
    if grant.state != Grant.State.PENDING:
        return _consent_repeat(grant=grant, request=request)

    try:
        generated = adapter.generate_token(
            user_id=ctid.user_id,
            broker_names=broker_names,
            ctid_trader_account_ids=account_numbers,
            is_verified=trader.kyc_verified,
        )
    except adapter.AdapterError as exc:
        Grant.objects.filter(pk=grant.pk, state=Grant.State.PENDING).delete()
        audit(
            action="generate_token",
            outcome=exc.outcome,
            trader=trader,
            actor=actor,
            message=exc.message,
            client_id=request.client.client_id,
            ctid=ctid.user_id,
            account_ids=account_numbers[:50],
            accounts=len(account_numbers),
            http_status=exc.status,
        )
        raise ConsentFailed(exc.message, transient=isinstance(exc, adapter.AdapterTransientError)) from exc

    issued_at = timezone.now()
    with transaction.atomic():
        grant.state = Grant.State.ACTIVE
        grant.adapter_token = generated.token
        grant.adapter_token_issued_at = issued_at
        grant.adapter_token_expires_at = _token_expiry(issued_at)
        grant.save(
            update_fields=[
                "state",
                "adapter_token",
                "adapter_token_issued_at",
                "adapter_token_expires_at",
                "updated_at",
            ]
        )
        Grant.accounts.through.objects.bulk_create(
            Grant.accounts.through(grant_id=grant.pk, tradingaccount_id=a.pk) for a in accounts
        )
        code = _code_issue(grant=grant, redirect_uri=request.redirect_uri, first=True)
        audit(
            action="grant_created",
            outcome="ok",
            trader=trader,
            actor=actor,
            client_id=request.client.client_id,
            grant=grant.pk,
            ctid=ctid.user_id,
            account_ids=account_numbers[:50],
            accounts=len(account_numbers),
        )
    return ConsentResult(grant=grant, code=code, redirect_url=_code_redirect(request, code))


def _grant_claim(
    *,
    trader: Trader,
    request: AuthorizationRequest,
    consent_key: str,
    ctid_id: int,
    broker_names: list[str],
    is_verified: bool,
) -> Grant:
    """The pending grant this submission owns, or the grant an earlier submission of the same form made."""
    # An earlier submission still talking to the adapter finishes within the HTTP timeouts.
    deadline = time.monotonic() + settings.HTTP_CONNECT_TIMEOUT + settings.HTTP_READ_TIMEOUT + 1
    while True:
        try:
            # In autocommit mode a lone INSERT needs no transaction; inside one, a savepoint keeps it usable.
            with transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext():
                return Grant.objects.create(
                    client=request.client,
                    trader=trader,
                    ctid_id=ctid_id,
                    broker_names=broker_names,
                    is_verified=is_verified,
                    scope=request.scope,
                    consent_key=consent_key,
                )
        except IntegrityError:
            existing = Grant.objects.filter(consent_key=consent_key, trader=trader).first()
            if existing is None:
                continue  # the earlier attempt failed and was removed: this one may try again
            if existing.client_id != request.client.pk:
                raise ConsentRefused(
                    _("This page belongs to another request. Start again from TradingView.")
                ) from None
            if existing.state != Grant.State.PENDING:
                return existing
            if existing.created_at < timezone.now() - timedelta(seconds=PENDING_STALE_SECONDS):
                # The submission that claimed it died mid-call; nothing was handed out, so start over.
                Grant.objects.filter(pk=existing.pk, state=Grant.State.PENDING).delete()
                continue
            if time.monotonic() > deadline:
                raise ConsentFailed(
                    _(
                        "Your earlier confirmation is still being processed. Please wait a moment and try again."
                    ),
                    transient=True,
                ) from None
            time.sleep(0.1)


def _consent_repeat(*, grant: Grant, request: AuthorizationRequest) -> ConsentResult:
    if grant.state != Grant.State.ACTIVE:
        raise ConsentRefused(_("This session was ended. Start again from TradingView."))
    with transaction.atomic():
        locked = Grant.objects.select_for_update().get(pk=grant.pk)
        if locked.codes.filter(used_at__isnull=False).exists():
            raise AlreadyLinked()
        code = _code_issue(grant=locked, redirect_uri=request.redirect_uri)
    return ConsentResult(grant=grant, code=code, redirect_url=_code_redirect(request, code))


# --- Token endpoint ----------------------------------------------------------------------------------------


class OAuthError(Exception):
    """An RFC 6749 token endpoint error."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    expires_in: int
    refresh_token: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "token_type": "bearer",
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


_CLIENT_AUTH_FIELDS = ("client_id", "client_secret_hash")


def client_authenticate(*, client_id: str, client_secret: str) -> OAuthClient:
    try:
        client = (
            OAuthClient.objects.only(*_CLIENT_AUTH_FIELDS).get(client_id=client_id, is_active=True)
            if client_id
            else None
        )
    except OAuthClient.DoesNotExist:
        client = None
    return _client_verified(client=client, client_id=client_id, client_secret=client_secret)


def _client_verified(*, client: OAuthClient | None, client_id: str, client_secret: str) -> OAuthClient:
    """``client`` (the active client named ``client_id``, or None) if ``client_secret`` is its secret."""
    if client is None or not client.check_secret(client_secret):
        audit(action="client_auth", outcome="invalid_client", client_id=client_id[:100])
        raise OAuthError("invalid_client", "Client authentication failed.", status=401)
    if client.secret_needs_rehash:
        # Moves a secret stored with a slow password hasher to the digest, once, on its first use.
        client.client_secret_hash = client_secret_hash(client_secret)
        OAuthClient.objects.filter(pk=client.pk).update(client_secret_hash=client.client_secret_hash)
    return client


def _expires_in(grant: Grant) -> int:
    return max(0, min(settings.TRADINGVIEW_TOKEN_EXPIRES_IN, MAX_EXPIRES_IN, grant.seconds_left()))


_EXCHANGE_CODE_FIELDS = ("grant_id", "redirect_uri", "expires_at", "used_at", "superseded")
_EXCHANGE_GRANT_FIELDS = ("trader_id", "state", "adapter_token", "adapter_token_expires_at")


def code_exchange(*, client_id: str, client_secret: str, code: str, redirect_uri: str) -> TokenResponse:
    """``grant_type=authorization_code``: the code once, for the client and redirect URI it was issued to.

    The client is authenticated first: a wrong client is ``invalid_client`` whatever the code says.
    """
    if not code or not redirect_uri:
        client_authenticate(client_id=client_id, client_secret=client_secret)
        raise OAuthError("invalid_request", f"{'code' if not code else 'redirect_uri'} is required.")
    now = timezone.now()
    refresh_token = secrets.token_urlsafe(48)
    replayed: Grant | None = None
    authenticated = False
    with transaction.atomic():
        # One read for the code, its grant and the client it was issued to (code_hash is unique), loading
        # only what the checks and the answer use. The code and the grant are locked; the client row, which
        # every exchange of this client reads, is not.
        row = (
            AuthorizationCode.objects.select_for_update(of=("self", "grant"))
            .select_related("grant", "client")
            .only(
                *_EXCHANGE_CODE_FIELDS,
                *(f"grant__{f}" for f in _EXCHANGE_GRANT_FIELDS),
                *(f"client__{f}" for f in _CLIENT_AUTH_FIELDS),
            )
            .filter(code_hash=token_hash(code), client__client_id=client_id, client__is_active=True)
            .first()
        )
        if row is not None and row.client.check_secret(client_secret):
            authenticated = True
            client = _client_verified(client=row.client, client_id=client_id, client_secret=client_secret)
            grant = row.grant
            if row.used_at is not None:
                replayed = grant
            elif row.superseded:
                raise OAuthError("invalid_grant", "The code was replaced by a newer one.")
            elif row.expires_at <= now:
                raise OAuthError("invalid_grant", "The code has expired.")
            elif row.redirect_uri != redirect_uri:
                raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request.")
            elif grant.state != Grant.State.ACTIVE or grant.seconds_left() <= 0:
                raise OAuthError("invalid_grant", "The authorization was revoked.")
            else:
                row.used_at = now
                row.save(update_fields=["used_at"])
                grant.refresh_token_hash = token_hash(refresh_token)
                grant.save(update_fields=["refresh_token_hash", "updated_at"])
                audit(
                    action="code_exchanged",
                    outcome="ok",
                    trader_id=grant.trader_id,
                    client_id=client.client_id,
                    grant=grant.pk,
                )
    if not authenticated:
        # No code of this client, or not its secret: the client check (out of the transaction, so its audit
        # record stays) answers invalid_client for a wrong client; a right client has a code that is not valid.
        client_authenticate(client_id=client_id, client_secret=client_secret)
        raise OAuthError("invalid_grant", "The code is not valid.")
    if replayed is not None:
        # RFC 6749 4.1.2: a code used twice may mean it leaked; what it produced must not stay usable.
        grant_revoke(grant_id=replayed.pk, reason="authorization code replayed")
        raise OAuthError("invalid_grant", "The code was already used.")
    return TokenResponse(
        access_token=grant.adapter_token, expires_in=_expires_in(grant), refresh_token=refresh_token
    )


def grant_refresh(*, client: OAuthClient, refresh_token: str) -> TokenResponse:
    """``grant_type=refresh_token``: a new adapter token for the same trader and (still eligible) accounts.

    The refresh token rotates; the previous adapter token stays valid for the grace period so TradingView can
    switch over, then is revoked with ``/logout``.
    """
    if not refresh_token:
        raise OAuthError("invalid_request", "refresh_token is required.")
    now = timezone.now()
    presented = token_hash(refresh_token)
    claimed = (
        Grant.objects.filter(refresh_token_hash=presented, client=client, state=Grant.State.ACTIVE)
        .filter(Q(refresh_lease_until__isnull=True) | Q(refresh_lease_until__lt=now))
        .update(refresh_lease_until=now + timedelta(seconds=REFRESH_LEASE_SECONDS))
    )
    if not claimed:
        raise OAuthError("invalid_grant", "The refresh token is not valid.")
    old = Grant.objects.select_related("trader", "ctid").get(refresh_token_hash=presented)
    trader = old.trader

    def release() -> None:
        Grant.objects.filter(pk=old.pk).update(refresh_lease_until=None)

    accounts = [
        a for a in old.accounts.select_related("ctid", "jurisdiction") if not account_ineligibility(a)
    ]
    if trader.suspended or not accounts:
        release()
        grant_revoke(grant_id=old.pk, reason="no longer eligible at refresh")
        raise OAuthError("invalid_grant", "The trader or the linked accounts can no longer be linked.")

    broker_names = sorted({a.jurisdiction.broker_name for a in accounts if a.jurisdiction is not None})
    account_numbers = sorted(a.ctid_trader_account_id for a in accounts)
    try:
        generated = adapter.generate_token(
            user_id=old.ctid.user_id,
            broker_names=broker_names,
            ctid_trader_account_ids=account_numbers,
            is_verified=trader.kyc_verified,
        )
    except adapter.AdapterError as exc:
        release()
        audit(
            action="refresh",
            outcome=exc.outcome,
            trader=trader,
            message=exc.message,
            client_id=client.client_id,
            grant=old.pk,
            http_status=exc.status,
        )
        if isinstance(exc, adapter.AdapterTransientError):
            raise OAuthError("temporarily_unavailable", "Try again later.", status=503) from exc
        raise OAuthError("invalid_grant", "A new token could not be issued; link again.") from exc

    new_refresh = secrets.token_urlsafe(48)
    issued_at = timezone.now()
    grace = settings.TRADINGVIEW_REFRESH_GRACE_SECONDS
    with transaction.atomic():
        locked = Grant.objects.select_for_update().get(pk=old.pk)
        still_active = locked.state == Grant.State.ACTIVE
        new = Grant.objects.create(
            client=client,
            trader=trader,
            ctid_id=old.ctid_id,
            broker_names=broker_names,
            is_verified=trader.kyc_verified,
            scope=old.scope,
            state=Grant.State.ACTIVE if still_active else Grant.State.REVOKING,
            adapter_token=generated.token,
            adapter_token_issued_at=issued_at,
            adapter_token_expires_at=_token_expiry(issued_at),
            refresh_token_hash=token_hash(new_refresh) if still_active else None,
            revoke_after=None if still_active else issued_at,
            revoke_reason="" if still_active else "revoked while refreshing",
        )
        Grant.accounts.through.objects.bulk_create(
            Grant.accounts.through(grant_id=new.pk, tradingaccount_id=a.pk) for a in accounts
        )
        if still_active:
            locked.state = Grant.State.REVOKING
            locked.superseded_by = new
            locked.revoke_after = issued_at + timedelta(seconds=grace)
            locked.revoke_reason = "superseded by a refresh"
        locked.refresh_lease_until = None
        locked.save()
        audit(
            action="refreshed",
            outcome="ok" if still_active else "revoked_meanwhile",
            trader=trader,
            client_id=client.client_id,
            grant=new.pk,
            previous=old.pk,
            accounts=len(accounts),
        )
        from . import tasks

        if still_active:
            tasks.schedule_logout(grant_id=old.pk, countdown=grace)
        else:
            tasks.schedule_logout(grant_id=new.pk, countdown=0)
    if not still_active:
        raise OAuthError("invalid_grant", "The authorization was revoked.")
    return TokenResponse(access_token=generated.token, expires_in=_expires_in(new), refresh_token=new_refresh)


# --- Revocation ------------------------------------------------------------------------------------------


def grant_revoke(
    *, grant_id: int, reason: str, actor: Any = None, trader: Trader | None = None, schedule: bool = True
) -> list[int]:
    """Stop handing out a grant at once and schedule its ``/logout`` (and that of grants it superseded).

    With ``trader`` given, only that trader's grant is touched. Returns the ids now waiting for ``/logout``.
    """
    now = timezone.now()
    with transaction.atomic():
        qs = Grant.objects.select_for_update().filter(pk=grant_id)
        if trader is not None:
            qs = qs.filter(trader=trader)
        grant = qs.first()
        if grant is None or grant.state in (Grant.State.REVOKED, Grant.State.PENDING):
            return []
        ids = [grant.pk]
        # Tokens this one superseded are still inside their grace period: they go now too.
        previous = Grant.objects.filter(superseded_by_id=grant.pk, state=Grant.State.REVOKING)
        ids.extend(previous.values_list("pk", flat=True))
        # So do the tokens refreshed from it (a replayed code revokes everything it led to).
        successor = grant.superseded_by_id
        while successor is not None and successor not in ids and len(ids) < 1000:
            ids.append(successor)
            successor = Grant.objects.filter(pk=successor).values_list("superseded_by_id", flat=True).first()
        Grant.objects.filter(pk__in=ids).exclude(state=Grant.State.REVOKED).update(
            state=Grant.State.REVOKING,
            revoke_after=now,
            revoke_reason=reason[:200],
            refresh_token_hash=None,
            updated_at=now,
        )
        audit(
            action="grant_revoke",
            outcome="scheduled",
            trader_id=grant.trader_id,
            actor=actor,
            message=reason,
            grants=ids,
        )
        if actor is not None and getattr(actor, "is_staff", False):
            signals.grants_revoked.send(
                sender=Grant, trader_id=grant.trader_id, grant_ids=ids, reason=reason, by_staff=True
            )
        if schedule:
            from . import tasks

            for pk in ids:
                tasks.schedule_logout(grant_id=pk, countdown=0)
    return ids


@dataclass(frozen=True)
class DisconnectResult:
    revoked: int
    pending: int


def grant_disconnect(*, trader: Trader, grant_id: int) -> DisconnectResult | None:
    """The trader's Disconnect: revoke now and tell the adapter at once; a failed ``/logout`` is retried."""
    ids = grant_revoke(
        grant_id=grant_id,
        trader=trader,
        actor=trader.user,
        reason="disconnected by the trader",
        schedule=False,
    )
    if not ids:
        return None
    from . import tasks

    revoked = pending = 0
    for pk in ids:
        try:
            grant_logout(grant_id=pk)
            revoked += 1
        except LogoutPending:
            pending += 1
            tasks.schedule_logout(grant_id=pk, countdown=int(settings.TRADINGVIEW_LOGOUT_RETRY_SECONDS))
    return DisconnectResult(revoked=revoked, pending=pending)


def refresh_token_client_id(*, refresh_token: str) -> str:
    """The client a refresh token was issued to (TradingView may send only the secret on refresh)."""
    if not refresh_token:
        return ""
    grant = (
        Grant.objects.filter(refresh_token_hash=token_hash(refresh_token)).select_related("client").first()
    )
    return grant.client.client_id if grant is not None else ""


def trader_grants_revoke(*, trader_id: int, reason: str, actor: Any = None) -> list[int]:
    """Revoke every grant of a trader that is still usable (suspension, password change, broken cTID)."""
    return _grants_revoke(
        Grant.objects.filter(trader_id=trader_id),
        action="trader_grants_revoke",
        reason=reason,
        actor=actor,
    )


def ctid_grants_revoke(*, ctid_id: int, reason: str) -> list[int]:
    """Revoke every still usable grant on the accounts of a cTID (its refresh chain died)."""
    return _grants_revoke(
        Grant.objects.filter(ctid_id=ctid_id), action="ctid_grants_revoke", reason=reason, ctid=ctid_id
    )


def _grants_revoke(
    grants: QuerySet[Grant], *, action: str, reason: str, actor: Any = None, **detail: Any
) -> list[int]:
    """Mark the usable grants among ``grants`` revoking and queue their ``/logout`` once this commits.

    From here on none of them is shown as active nor handed out again, whatever the adapter answers later.
    """
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            grants.select_for_update()
            .filter(state__in=[Grant.State.ACTIVE, Grant.State.REVOKING])
            .values_list("pk", "trader_id")
        )
        if not rows:
            return []
        ids = [pk for pk, _ in rows]
        Grant.objects.filter(pk__in=ids).update(
            state=Grant.State.REVOKING,
            revoke_after=now,
            revoke_reason=reason[:200],
            refresh_token_hash=None,
            updated_at=now,
        )
        audit(
            action=action,
            outcome="scheduled",
            trader_id=rows[0][1],
            actor=actor,
            message=reason,
            grants=ids,
            **detail,
        )
        signals.grants_revoked.send(
            sender=Grant, trader_id=rows[0][1], grant_ids=ids, reason=reason, by_staff=actor is not None
        )
        from . import tasks

        for pk in ids:
            tasks.schedule_logout(grant_id=pk, countdown=0)
    return ids


class LogoutPending(Exception):
    """The adapter could not be reached; the grant stays ``revoking`` and the logout must be retried."""


def grant_logout(*, grant_id: int, now: datetime | None = None) -> str:
    """Call ``/logout`` for a ``revoking`` grant whose time has come and mark it revoked.

    Returns what happened: ``revoked``, ``not_due``, ``nothing_to_do``. Raises ``LogoutPending`` on a
    transient adapter failure (the caller retries). Safe to run twice: a second ``/logout`` of the same token
    is refused by the adapter and still ends as revoked.
    """
    now = now or timezone.now()
    grant = Grant.objects.filter(pk=grant_id).first()
    if grant is None or grant.state != Grant.State.REVOKING:
        return "nothing_to_do"
    if grant.revoke_after is not None and grant.revoke_after > now:
        return "not_due"
    outcome = "ok"
    message = ""
    if grant.adapter_token and grant.seconds_left() > 0:
        try:
            adapter.logout(adapter_token=grant.adapter_token)
        except adapter.AdapterTransientError as exc:
            Grant.objects.filter(pk=grant.pk).update(
                revoke_attempts=grant.revoke_attempts + 1, last_revoke_error=exc.message[:500]
            )
            audit(
                action="logout",
                outcome=exc.outcome,
                trader_id=grant.trader_id,
                message=exc.message,
                grant=grant.pk,
                attempt=grant.revoke_attempts + 1,
            )
            raise LogoutPending(exc.message) from exc
        except adapter.AdapterRejected as exc:
            # The adapter refuses tokens that are unknown, invalid or expired: the token is unusable already.
            outcome = f"refused:{exc.outcome}"
            message = exc.message
    else:
        outcome = "expired"
    updated = Grant.objects.filter(pk=grant.pk, state=Grant.State.REVOKING).update(
        state=Grant.State.REVOKED,
        revoked_at=timezone.now(),
        revoke_attempts=grant.revoke_attempts + 1,
        last_revoke_error=message[:500],
        refresh_token_hash=None,
        refresh_lease_until=None,
    )
    if updated:
        audit(
            action="logout",
            outcome=outcome,
            trader_id=grant.trader_id,
            message=message or grant.revoke_reason or "revoked",
            grant=grant.pk,
        )
    return "revoked"


def grants_pending_cleanup(*, now: datetime | None = None) -> int:
    """Remove pending grants whose request died before the adapter answered (no token was handed out)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=PENDING_STALE_SECONDS)
    deleted, _ = Grant.objects.filter(state=Grant.State.PENDING, created_at__lt=cutoff).delete()
    return deleted


def grants_due_for_logout(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    now = now or timezone.now()
    return list(
        Grant.objects.filter(state=Grant.State.REVOKING, revoke_after__lte=now)
        .order_by("revoke_after")
        .values_list("pk", flat=True)[:limit]
    )


# --- "cTrader/TradingView" account requests -------------------------------------------------------------


class AccountRequestRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def account_request_create(
    *, trader: Trader, environment: str, jurisdiction_id: int | None, note: str = "", return_url: str = ""
) -> AccountRequest:
    try:
        with transaction.atomic():
            request = AccountRequest.objects.create(
                trader=trader,
                environment=environment,
                jurisdiction_id=jurisdiction_id,
                note=note[:500],
                return_url=return_url[:2000],
            )
            audit(
                action="account_requested",
                outcome="ok",
                trader=trader,
                actor=trader.user,
                request=request.pk,
                environment=environment,
            )
    except IntegrityError as exc:
        raise AccountRequestRefused(
            _('You already asked for a "cTrader/TradingView" account; we are working on it.')
        ) from exc
    return request


def account_request_fulfil(
    *, account_request: AccountRequest, account: TradingAccount, actor: Any, staff_note: str = ""
) -> AccountRequest:
    if account.ctid.trader_id != account_request.trader_id:
        raise AccountRequestRefused("The account belongs to another trader.")
    with transaction.atomic():
        TradingAccount.objects.filter(pk=account.pk).update(is_tradingview=True)
        account_request.state = AccountRequest.State.FULFILLED
        account_request.account = account
        account_request.handled_by = actor
        account_request.handled_at = timezone.now()
        account_request.staff_note = staff_note[:500] or account_request.staff_note
        account_request.save()
        audit(
            action="account_request_fulfilled",
            outcome="ok",
            trader=account_request.trader,
            actor=actor,
            request=account_request.pk,
            account=account.ctid_trader_account_id,
        )
        signals.account_request_handled.send(sender=AccountRequest, account_request=account_request)
    return account_request


def account_request_decline(*, account_request: AccountRequest, actor: Any, staff_note: str = "") -> None:
    with transaction.atomic():
        account_request.state = AccountRequest.State.DECLINED
        account_request.handled_by = actor
        account_request.handled_at = timezone.now()
        account_request.staff_note = staff_note[:500] or account_request.staff_note
        account_request.save()
        audit(
            action="account_request_declined",
            outcome="ok",
            trader=account_request.trader,
            actor=actor,
            request=account_request.pk,
        )
        signals.account_request_handled.send(sender=AccountRequest, account_request=account_request)
