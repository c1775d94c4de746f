"""Reads shared by the trader-facing views and API. Every query starts from the signed-in user."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from accounts.models import Ctid, Trader, TradingAccount


def trader_for_user(*, user: Any) -> Trader | None:
    """The signed-in user's Trader profile, or None (staff users and anonymous users have none).

    The authentication backend loads the profile with the user (and refuses a suspended trader's session), so
    every page and endpoint gets the same trader without a query of its own.
    """
    if not user.is_authenticated:
        return None
    trader = getattr(user, "trader", None)
    return trader if isinstance(trader, Trader) else None


def trader_for_user_or_404(*, user: Any) -> Trader:
    """``trader_for_user`` for pages that exist only for traders: anyone else gets a 404."""
    trader = trader_for_user(user=user)
    if trader is None:
        raise Http404("No trader profile.")
    return trader


def ctids_for_user(*, user: Any) -> QuerySet[Ctid]:
    """The user's cTIDs, each with its trading accounts (and their jurisdictions) prefetched."""
    return (
        Ctid.objects.filter(trader__user=user)
        .order_by("created_at")
        .prefetch_related(
            Prefetch(
                "accounts",
                queryset=TradingAccount.objects.select_related("jurisdiction").order_by("-is_live", "login"),
            )
        )
    )


def accounts_for_user(*, user: Any) -> QuerySet[TradingAccount]:
    """The user's trading accounts across all their cTIDs."""
    return (
        TradingAccount.objects.filter(ctid__trader__user=user)
        .select_related("ctid", "jurisdiction")
        .order_by("-is_live", "login")
    )
