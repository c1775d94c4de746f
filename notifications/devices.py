"""Known devices: a random id in a long-lived, signed, HTTP-only cookie; the database keeps only its hash."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse

from preferences.models import KnownDevice

COOKIE = "device"
COOKIE_SALT = "notifications.device"
COOKIE_AGE = 400 * 24 * 3600


@dataclass(frozen=True)
class DeviceSeen:
    new: bool
    had_others: bool
    user_agent: str
    address: str


def _hash(device_id: str) -> str:
    return hashlib.sha256(f"{settings.SECRET_KEY}:{device_id}".encode()).hexdigest()


def device_seen(*, request: HttpRequest, user: Any) -> DeviceSeen:
    """Record the browser this sign-in came from; ``new`` when the user never signed in from it before."""
    raw = request.COOKIES.get(COOKIE, "")
    try:
        device_id = signing.loads(raw, salt=COOKIE_SALT) if raw else ""
    except signing.BadSignature:
        device_id = ""
    if not isinstance(device_id, str) or not device_id:
        device_id = secrets.token_urlsafe(24)
        request._device_cookie = signing.dumps(device_id, salt=COOKIE_SALT)  # type: ignore[attr-defined]
    agent = request.headers.get("User-Agent", "")[:300]
    had_others = KnownDevice.objects.filter(user_id=user.pk).exists()
    _, created = KnownDevice.objects.update_or_create(
        user_id=user.pk, device_hash=_hash(device_id), defaults={"user_agent": agent}
    )
    return DeviceSeen(
        new=created, had_others=had_others, user_agent=agent, address=request.META.get("REMOTE_ADDR", "")
    )


class DeviceCookieMiddleware:
    """Sets the device cookie chosen during a sign-in."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        value = getattr(request, "_device_cookie", None)
        if value:
            response.set_cookie(
                COOKIE,
                value,
                max_age=COOKIE_AGE,
                httponly=True,
                secure=not settings.DEBUG,
                samesite="Lax",
            )
        return response
