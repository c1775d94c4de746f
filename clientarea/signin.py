"""Sign-in throttling rules for django-axes.

Failures are counted per username *and* client address, so one attacker guessing passwords locks only the
combinations it tried, never everyone behind the same proxy; a much higher limit per address alone stops
credential stuffing (many usernames from one address).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.timesince import timesince


def _address(request_or_attempt: Any) -> str | None:
    return getattr(request_or_attempt, "axes_ip_address", None) or getattr(
        request_or_attempt, "ip_address", None
    )


def address_failures(*, ip_address: str) -> int:
    since = timezone.now() - timedelta(hours=float(settings.AXES_COOLOFF_TIME))
    total = AccessAttempt.objects.filter(ip_address=ip_address, attempt_time__gte=since).aggregate(
        total=Sum("failures_since_start")
    )["total"]
    return int(total or 0)


def lockout_parameters(request_or_attempt: Any, credentials: dict[str, Any] | None = None) -> list[Any]:
    """The username and address together; the address alone once it passed its own, higher limit."""
    parameters: list[Any] = [["username", "ip_address"]]
    address = _address(request_or_attempt)
    if address and address_failures(ip_address=address) >= settings.AXES_ADDRESS_FAILURE_LIMIT:
        parameters.append("ip_address")
    return parameters


def wait_in_words(delta: timedelta) -> str:
    """ "15 minutes", "1 hour": how long a lock-out lasts, as people say it."""
    now = timezone.now()
    return timesince(now - delta, now)


def lockout_response(request: HttpRequest, credentials: dict[str, Any] | None = None) -> HttpResponse:
    """The lock-out page: how long to wait, in words, and the ways out (password reset, support)."""
    cool_off = get_cool_off(request)
    return render(
        request,
        settings.AXES_LOCKOUT_TEMPLATE,
        {"wait": wait_in_words(cool_off) if cool_off else "", "cooloff_timedelta": cool_off},
        status=429,
    )
