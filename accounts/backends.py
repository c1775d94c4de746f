"""Authentication that keeps suspended traders out."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User


def is_suspended(user: Any) -> bool:
    trader = getattr(user, "trader", None) if user is not None else None
    return bool(trader is not None and trader.suspended)


class TraderModelBackend(ModelBackend):
    """The model backend, except that a suspended trader's existing sessions stop working.

    ``authenticate`` still accepts a suspended trader's correct password so the sign-in form can say
    "suspended" instead of "wrong password"; the form then refuses the sign-in.
    """

    def get_user(self, user_id: Any) -> User | None:
        try:
            user = User._default_manager.select_related("trader").get(pk=user_id)
        except User.DoesNotExist:
            return None
        if not self.user_can_authenticate(user) or is_suspended(user):
            return None
        return user
