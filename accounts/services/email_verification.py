"""Email verification: a signed, expiring link mailed to the trader's address.

An account is opened (and a cTID created by email) only for a verified address: ``ctid/create`` answers the
cTID of whoever owns the email, so an unverified address could hand a stranger's cTID to this trader.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Trader
from accounts.services.audit import audit_event_record

logger = logging.getLogger(__name__)

SALT = "accounts.email_verification"


class VerificationFailed(Exception):
    """The link is not valid (any more); ``message`` is for the trader."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def email_verification_link(*, trader: Trader, next_url: str = "") -> str:
    token = signing.dumps(
        {"u": trader.user_id, "e": trader.user.email.strip().lower()}, salt=SALT, compress=True
    )
    link = settings.SITE_URL + reverse("email-verify", args=[token])
    if next_url:
        from urllib.parse import urlencode

        link += "?" + urlencode({"next": next_url})
    return link


def email_verification_send(*, trader: Trader, next_url: str = "") -> None:
    """Queue the mail with the verification link (a worker sends it, retrying while the server is down)."""
    if not trader.user.email:
        raise VerificationFailed(_("Your profile has no email address."))
    body = _(
        "Confirm your email address to open trading accounts:\n\n%(link)s\n\n"
        "The link works for %(hours)s hours. If you did not ask for it, ignore this email.\n"
    ) % {
        "link": email_verification_link(trader=trader, next_url=next_url),
        "hours": settings.EMAIL_VERIFICATION_TTL_SECONDS // 3600,
    }
    from accounts.services.opening import trader_mail_queue

    trader_mail_queue(trader=trader, subject=_("Confirm your email address"), body=body)
    logger.info("verification mail queued", extra={"trader_id": trader.pk})


def email_verification_confirm(*, token: str, trader: Trader) -> Trader:
    """Mark the trader's address verified when the link is theirs, unexpired and for their current address."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.EMAIL_VERIFICATION_TTL_SECONDS)
    except signing.SignatureExpired:
        raise VerificationFailed(_("This link has expired. Ask for a new one.")) from None
    except signing.BadSignature:
        raise VerificationFailed(_("This link is not valid.")) from None
    email = trader.user.email.strip().lower()
    if not isinstance(data, dict) or data.get("u") != trader.user_id or data.get("e") != email:
        raise VerificationFailed(_("This link is not for your current email address. Ask for a new one."))
    if trader.email_verified == email and trader.email_verified_at is not None:
        return trader
    trader.email_verified = email
    trader.email_verified_at = timezone.now()
    trader.save(update_fields=["email_verified", "email_verified_at"])
    audit_event_record(
        category="trader", action="email_verified", outcome="ok", trader=trader, actor=trader.user
    )
    return trader
