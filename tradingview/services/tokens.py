"""TradingView's token endpoint: client authentication, the code exchange and the refresh.

Each grant type is one call (``code_exchange``, ``token_refresh``) that authenticates the client first, so a
wrong client is ``invalid_client`` whatever else the request says. Errors are RFC 6749 ``OAuthError``s.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.services.audit import audit_event_record

from .. import adapter
from ..models import AUDIT_CATEGORY, AuthorizationCode, Grant, OAuthClient, client_secret_hash, token_hash
from ..selectors import account_ineligibility, refresh_token_client_id
from . import statements
from .consent import adapter_token_expiry
from .revocation import grant_revoke, logout_enqueue

MAX_EXPIRES_IN = 2_147_483  # TradingView's ceiling: 2,147,483,647 ms
REFRESH_LEASE_SECONDS = 60


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
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="client_auth",
            outcome="invalid_client",
            detail={"client_id": client_id[:100]},
        )
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
    if statements.available():
        # The usual case in one round trip; anything else is sorted out below, where every error is named.
        taken = statements.code_take(
            client_id=client_id,
            client_secret=client_secret,
            code=code,
            redirect_uri=redirect_uri,
            refresh_token=refresh_token,
            now=now,
        )
        if taken is not None:
            taken_grant = Grant(pk=taken.grant_id, adapter_token_expires_at=taken.adapter_token_expires_at)
            return TokenResponse(
                access_token=taken.adapter_token,
                expires_in=_expires_in(taken_grant),
                refresh_token=refresh_token,
            )
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
                audit_event_record(
                    category=AUDIT_CATEGORY,
                    action="code_exchanged",
                    outcome="ok",
                    trader_id=grant.trader_id,
                    detail={"client_id": client.client_id, "grant": grant.pk},
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


def token_refresh(*, client_id: str, client_secret: str, refresh_token: str) -> TokenResponse:
    """``grant_type=refresh_token``: a new adapter token for the same trader and (still eligible) accounts.

    The client is authenticated first, as for a code; TradingView may send only the secret on refresh, and
    then the client is the one the refresh token was issued to. The refresh token rotates; the previous
    adapter token stays valid for the grace period so TradingView can switch over, then is revoked with
    ``/logout``.
    """
    if not client_id:
        client_id = refresh_token_client_id(refresh_token=refresh_token)
    client = client_authenticate(client_id=client_id, client_secret=client_secret)
    return _grant_refresh(client=client, refresh_token=refresh_token)


def _grant_refresh(*, client: OAuthClient, refresh_token: str) -> TokenResponse:
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
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="refresh",
            outcome=exc.outcome,
            trader=trader,
            message=exc.message,
            detail={"client_id": client.client_id, "grant": old.pk, "http_status": exc.status},
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
            adapter_token_expires_at=adapter_token_expiry(issued_at),
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
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="refreshed",
            outcome="ok" if still_active else "revoked_meanwhile",
            trader=trader,
            detail={
                "client_id": client.client_id,
                "grant": new.pk,
                "previous": old.pk,
                "accounts": len(accounts),
            },
        )
        if still_active:
            logout_enqueue(grant_id=old.pk, countdown=grace)
        else:
            logout_enqueue(grant_id=new.pk, countdown=0)
    if not still_active:
        raise OAuthError("invalid_grant", "The authorization was revoked.")
    return TokenResponse(access_token=generated.token, expires_in=_expires_in(new), refresh_token=new_refresh)
