"""Sign-up by email confirmation, answering the same whether or not the address already has an account.

Telling a visitor "this address already has an account" would let anyone find out who is a customer. So the
form's answer is always "check your inbox": a new address gets a link that creates the account, and the owner
of an address that has one is told that someone tried to register with it.

Nothing is stored until the link is opened: the link carries the request (username, address, password hash),
encrypted with TOKEN_ENCRYPTION_KEYS, so no table row says whether a sign-up was tried.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Trader
from accounts.services.audit import audit_event_record
from accounts.services.traders import trader_sign_up
from clientarea import crypto

logger = logging.getLogger(__name__)


class SignUpFailed(Exception):
    """The link cannot create an account; ``message`` is for the visitor."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def sign_up_request(
    *, username: str, email: str, password: str, next_url: str, nonce: str, language: str
) -> None:
    """Mail the address: a link finishing the sign-up, or, when it has an account, a notice to its owner.

    Both go through the workers, so the answer takes as long either way. ``nonce`` ties the link to the
    browser that asked, which is signed in straight away when it opens the link.
    """
    from notifications.services import address_notification_enqueue, notification_enqueue

    owner = get_user_model().objects.filter(email__iexact=email).order_by("pk").first()
    # Hashed either way: the hash's work factor would otherwise make a new address answer measurably slower.
    password_hash = make_password(password)
    if owner is not None:
        notification_enqueue(
            kind="sign_up_attempt", user_id=owner.pk, context={"when": timezone.now().isoformat()}
        )
        logger.info("sign-up tried with an address that has an account", extra={"user_id": owner.pk})
        return
    request = {
        "u": username,
        "e": email,
        "p": password_hash,
        "n": next_url,
        "b": nonce,
        "t": int(time.time()),
    }
    link = settings.SITE_URL + reverse("signup-confirm", args=[crypto.encrypt(json.dumps(request))])
    address_notification_enqueue(
        kind="sign_up_confirm",
        address=email,
        language=language,
        context={"link": link, "hours": settings.EMAIL_VERIFICATION_TTL_SECONDS // 3600},
    )


def sign_up_nonce() -> str:
    return secrets.token_urlsafe(16)


def sign_up_confirm(*, token: str) -> tuple[Trader | None, dict[str, Any]]:
    """Create the account the link asks for; its address is confirmed by the click.

    Returns the new trader (None when this link already created it) and the request (``n``: where to go next,
    ``b``: the asking browser's nonce).
    """
    try:
        request = json.loads(crypto.decrypt(token))
        username, email, password_hash = request["u"], request["e"], request["p"]
        issued = int(request["t"])
    except (crypto.DecryptionError, ValueError, KeyError, TypeError):
        raise SignUpFailed(_("This link is not valid.")) from None
    if time.time() - issued > settings.EMAIL_VERIFICATION_TTL_SECONDS:
        raise SignUpFailed(_("This link has expired. Sign up again."))
    users = get_user_model().objects
    if users.filter(username=username, email__iexact=email, password=password_hash).exists():
        return None, request
    if users.filter(email__iexact=email).exists():
        raise SignUpFailed(
            _("An account with this email address already exists. Sign in, or reset your password.")
        )
    try:
        with transaction.atomic():
            if users.filter(username__iexact=username).exists():
                raise IntegrityError(username)
            trader = trader_sign_up(username=username, email=email, password=None)
            trader.user.password = password_hash
            trader.user.save(update_fields=["password"])
            trader.email_verified = email.strip().lower()
            trader.email_verified_at = timezone.now()
            trader.save(update_fields=["email_verified", "email_verified_at"])
            audit_event_record(
                category="trader", action="email_verified", outcome="ok", trader=trader, actor=trader.user
            )
    except IntegrityError:
        raise SignUpFailed(
            _("Someone took this username meanwhile. Sign up again with another one.")
        ) from None
    return trader, request
