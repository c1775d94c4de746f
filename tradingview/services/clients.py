"""OAuth clients: one per TradingView environment, each with its exact redirect URIs and a secret kept hashed."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from accounts.services.audit import audit_event_record

from ..models import AUDIT_CATEGORY, OAuthClient, RedirectUri, client_secret_hash
from .revocation import client_grants_revoke


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_uris_clean(uris: Sequence[str]) -> list[str]:
    """The redirect URIs to register, stripped and without repeats; ``ValueError`` names one that is not valid.

    A code travels in the redirect, so it must use https; plain http is allowed only to a loopback host
    (127.0.0.0/8, ::1, localhost), where TradingView's local environment and tests run.
    """
    cleaned: list[str] = []
    for uri in uris:
        uri = uri.strip()
        parts = urlsplit(uri)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
            raise ValueError(f"Not an absolute http(s) URI without a fragment (use https): {uri!r}")
        try:
            host = parts.hostname or ""
        except ValueError:
            raise ValueError(f"Not an absolute http(s) URI without a fragment (use https): {uri!r}") from None
        if parts.scheme == "http" and not _is_loopback(host):
            raise ValueError(
                f"Redirect URIs must use https (plain http only for 127.0.0.1, ::1 or localhost): {uri!r}"
            )
        if uri not in cleaned:
            cleaned.append(uri)
    if not cleaned:
        raise ValueError("At least one redirect URI is required.")
    return cleaned


def oauth_client_create(
    *,
    name: str,
    redirect_uris: Sequence[str],
    environment: str = "",
    is_active: bool = True,
    actor: Any = None,
) -> tuple[OAuthClient, str]:
    """Register a client; returns it with its secret, which is shown once and stored only hashed."""
    uris = redirect_uris_clean(redirect_uris)
    secret = _new_secret()
    client = OAuthClient(
        name=name,
        environment=environment,
        is_active=is_active,
        client_id=f"tv-{secrets.token_urlsafe(18)}",
        client_secret_hash=client_secret_hash(secret),
    )
    with transaction.atomic():
        client.save()
        RedirectUri.objects.bulk_create(RedirectUri(client=client, uri=u) for u in uris)
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="client_created",
            outcome="ok",
            actor=actor,
            detail={"client_id": client.client_id, "name": name},
        )
    return client, secret


def oauth_client_rotate_secret(*, client: OAuthClient, actor: Any = None) -> str:
    """Give ``client`` a new secret (the old one stops working); returns it to show once."""
    secret = _new_secret()
    client.client_secret_hash = client_secret_hash(secret)
    client.secret_rotated_at = timezone.now()
    client.save(update_fields=["client_secret_hash", "secret_rotated_at"])
    audit_event_record(
        category=AUDIT_CATEGORY,
        action="client_secret_rotated",
        outcome="ok",
        actor=actor,
        detail={"client_id": client.client_id},
    )
    return secret


def oauth_client_deactivate(*, client: OAuthClient, actor: Any = None) -> list[int]:
    """Stop accepting ``client`` and revoke every grant issued to it (``/logout`` once this commits).

    Returns the ids of the grants being revoked. Safe to run on a client already inactive: grants it still
    has are revoked all the same.
    """
    with transaction.atomic():
        OAuthClient.objects.filter(pk=client.pk).update(is_active=False)
        client.is_active = False
        ids = client_grants_revoke(client_id=client.pk, reason="TradingView client deactivated", actor=actor)
        audit_event_record(
            category=AUDIT_CATEGORY,
            action="client_deactivated",
            outcome="ok",
            actor=actor,
            detail={"client_id": client.client_id, "grants": ids[:100], "grants_revoked": len(ids)},
        )
    return ids


def oauth_client_ensure(
    *, client_id: str, client_secret: str, name: str, redirect_uri: str, environment: str = "sandbox"
) -> OAuthClient:
    """Create or update a client with a known id and secret (the sandbox's TradingView simulator)."""
    with transaction.atomic():
        client, created = OAuthClient.objects.get_or_create(
            client_id=client_id,
            defaults={
                "name": name,
                "environment": environment,
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
