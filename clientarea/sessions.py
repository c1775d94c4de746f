"""Idle timeouts for signed-in sessions, besides the absolute ``SESSION_COOKIE_AGE``.

A staff session ends after ``SESSION_IDLE_TIMEOUT_STAFF_SECONDS`` without a request, a trader's after
``SESSION_IDLE_TIMEOUT_SECONDS``. The last-seen time is written at most once a minute, so an active session
costs no extra database write per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

LAST_SEEN_KEY = "_last_seen"
_WRITE_EVERY_SECONDS = 60


def idle_limit(user: object) -> int:
    staff = bool(getattr(user, "is_staff", False))
    return settings.SESSION_IDLE_TIMEOUT_STAFF_SECONDS if staff else settings.SESSION_IDLE_TIMEOUT_SECONDS


class IdleTimeoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            last_seen = request.session.get(LAST_SEEN_KEY)
            if isinstance(last_seen, int | float) and now - last_seen > idle_limit(user):
                # Signed out: the request goes on as anonymous, so protected pages ask to sign in again.
                logout(request)
            elif not isinstance(last_seen, int | float) or now - last_seen >= _WRITE_EVERY_SECONDS:
                request.session[LAST_SEEN_KEY] = int(now)
        return self.get_response(request)
