"""Reads shared by the trader-facing views and API. Every query starts from the signed-in user."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from accounts.models import Ctid, Trader, TradingAccount


def trader_for_user(*, user: Any) -> Trader | None:
    """The user's Trader profile, or None (staff users and anonymous users have none)."""
    if not user.is_authenticated:
        return None
    return Trader.objects.filter(user=user).first()


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


def openings_in_progress(*, trader: Trader) -> list[Any]:
    """The trader's account openings that are not finished, newest first."""
    from accounts.models import AccountOpening

    unfinished = [AccountOpening.State.DONE, AccountOpening.State.FAILED, AccountOpening.State.DECLINED]
    return list(
        AccountOpening.objects.filter(trader=trader)
        .exclude(state__in=unfinished)
        .select_related("account_type")
        .order_by("-created_at")[:5]
    )
