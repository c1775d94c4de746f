"""Authentication that keeps suspended traders out."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS

from clientarea import prepared

from .models import Trader


def is_suspended(user: Any) -> bool:
    trader = getattr(user, "trader", None) if user is not None else None
    return bool(trader is not None and trader.suspended)


_USER_FIELDS = tuple(User._meta.concrete_fields)
_TRADER_FIELDS = tuple(Trader._meta.concrete_fields)
_USER_ATTNAMES = [f.attname for f in _USER_FIELDS]
_TRADER_ATTNAMES = [f.attname for f in _TRADER_FIELDS]
# The user and its trader profile (None when it has none) in one row, as ``select_related("trader")`` reads
# them: every signed-in request loads them, through one statement prepared once per connection.
_USER_WITH_TRADER = prepared.CompiledQuery(
    lambda pk: User._default_manager.filter(pk=pk).values_list(
        *(f.name for f in _USER_FIELDS), *(f"trader__{f.name}" for f in _TRADER_FIELDS)
    )
)


def user_with_trader(user_id: int) -> User | None:
    """The user ``user_id`` with its trader profile loaded (``user.trader`` makes no query), or None."""
    rows = _USER_WITH_TRADER.rows(user_id)
    if not rows:
        return None
    row = rows[0]
    split = len(_USER_FIELDS)
    user = User.from_db(DEFAULT_DB_ALIAS, _USER_ATTNAMES, row[:split])
    trader = None
    if row[split] is not None:
        trader = Trader.from_db(DEFAULT_DB_ALIAS, _TRADER_ATTNAMES, row[split:])
        Trader.user.field.set_cached_value(trader, user)
    # As select_related leaves it: the profile, or None, which ``user.trader`` raises DoesNotExist for.
    User.trader.related.set_cached_value(user, trader)
    return user


class TraderModelBackend(ModelBackend):
    """The model backend, except that a suspended trader's existing sessions stop working.

    ``authenticate`` still accepts a suspended trader's correct password so the sign-in form can say
    "suspended" instead of "wrong password"; the form then refuses the sign-in.
    """

    def get_user(self, user_id: Any) -> User | None:
        try:
            pk = int(user_id)
        except (TypeError, ValueError):
            return None
        user = user_with_trader(pk)
        if user is None or not self.user_can_authenticate(user) or is_suspended(user):
            return None
        return user
