"""Staff reach the admin only with two-step sign-in when TWO_FACTOR_REQUIRED_FOR_STAFF is on (production)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django_otp import user_has_device


class StaffTwoFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            settings.TWO_FACTOR_REQUIRED_FOR_STAFF
            and request.path.startswith(reverse("admin:index"))
            and user.is_authenticated
            and user.is_staff
            and not getattr(user, "is_verified", lambda: False)()
        ):
            if user_has_device(user, confirmed=True):
                # Signed in some other way than our two-step sign-in: sign in again.
                logout(request)
                return redirect(f"{reverse('login')}?next={request.path}")
            messages.warning(request, _("Staff must turn on two-step sign-in before using the admin."))
            return redirect("two_factor")
        return self.get_response(request)
