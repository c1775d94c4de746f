"""TradingView's token endpoint: client authentication, the code exchange and the refresh.

Each grant type is one call (``code_exchange`` here, ``token_refresh`` in ``refresh.py``) that authenticates the client first, so a
wrong client is ``invalid_client`` whatever else the request says. Errors are RFC 6749 ``OAuthError``s. The
usual code exchange is one statement first (``code_exchange_at_once``); anything else goes the long way.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.services.audit import audit_event_record

from ..models import (
    AUDIT_CATEGORY,
    AuthorizationCode,
    Grant,
    OAuthClient,
    client_secret_hash,
    seconds_until,
    token_hash,
)
from ..throttle import window_start as failures_window_start
from . import statements
from .revocation import grant_revoke

MAX_EXPIRES_IN = 2_147_483  # TradingView's ceiling: 2,147,483,647 ms


class OAuthError(Exception):
    """An RFC 6749 token endpoint error."""

    def __init__(
        self, error: str, description: str, *, status: int = 400, retry_after: int | None = None
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        # Seconds after which the request may be repeated (a 503 answer's Retry-After).
        self.retry_after = retry_after


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


CLIENT_AUTH_FIELDS = ("client_id", "client_secret_hash")


def client_authenticate(*, client_id: str, client_secret: str) -> OAuthClient:
    try:
        client = (
            OAuthClient.objects.only(*CLIENT_AUTH_FIELDS).get(client_id=client_id, is_active=True)
            if client_id
            else None
        )
    except OAuthClient.DoesNotExist:
        client = None
    return client_verified(client=client, client_id=client_id, client_secret=client_secret)


def client_verified(*, client: OAuthClient | None, client_id: str, client_secret: str) -> OAuthClient:
    """``client`` (the active client named ``client_id``, or None) if ``client_secret`` is its secret."""
    if client is None or not client.check_secret(client_secret):
        # Audited by the token endpoint, one record per client and address (tradingview/throttle.py).
        raise OAuthError("invalid_client", "Client authentication failed.", status=401)
    if client.secret_needs_rehash:
        # Moves a secret stored with a slow password hasher to the digest, once, on its first use.
        client.client_secret_hash = client_secret_hash(client_secret)
        OAuthClient.objects.filter(pk=client.pk).update(client_secret_hash=client.client_secret_hash)
    return client


def grant_expires_in(grant: Grant) -> int:
    return expires_in_until(grant.adapter_token_expires_at)


def expires_in_until(adapter_token_expires_at: datetime | None) -> int:
    """``expires_in`` of an access token whose adapter token expires at ``adapter_token_expires_at``."""
    return max(
        0, min(settings.TRADINGVIEW_TOKEN_EXPIRES_IN, MAX_EXPIRES_IN, seconds_until(adapter_token_expires_at))
    )


_EXCHANGE_CODE_FIELDS = ("grant_id", "redirect_uri", "expires_at", "used_at", "superseded")
_EXCHANGE_GRANT_FIELDS = ("trader_id", "state", "adapter_token", "adapter_token_expires_at")


def code_exchange_at_once(
    *, client_id: str, client_secret: str, code: str, redirect_uri: str, address: str | None
) -> TokenResponse | None:
    """``grant_type=authorization_code``, the usual case in one round trip: a valid code of an authenticated
    client calling from an address without a failed client authentication in the throttle's window.

    None when anything else is the case, or on a database without the one statement: nothing was written, and
    the caller checks the throttle (``tradingview/throttle.py``) then calls ``code_exchange``, which names
    the error.
    """
    if not code or not redirect_uri or not statements.available():
        return None
    now = timezone.now()
    refresh_token = secrets.token_urlsafe(48)
    taken = statements.code_take(
        client_id=client_id,
        client_secret=client_secret,
        code=code,
        redirect_uri=redirect_uri,
        refresh_token=refresh_token,
        now=now,
        address=address,
        failures_since=failures_window_start(),
    )
    if taken is None:
        return None
    return TokenResponse(
        access_token=taken.adapter_token,
        expires_in=expires_in_until(taken.adapter_token_expires_at),
        refresh_token=refresh_token,
    )


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
                *(f"client__{f}" for f in CLIENT_AUTH_FIELDS),
            )
            .filter(code_hash=token_hash(code), client__client_id=client_id, client__is_active=True)
            .first()
        )
        if row is not None and row.client.check_secret(client_secret):
            authenticated = True
            client = client_verified(client=row.client, client_id=client_id, client_secret=client_secret)
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
        access_token=grant.adapter_token, expires_in=grant_expires_in(grant), refresh_token=refresh_token
    )
