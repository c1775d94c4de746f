"""Reads shared by the trader-facing views and API. Every query starts from the signed-in user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import F, Prefetch, QuerySet, Window
from django.db.models.functions import RowNumber, Trunc
from django.http import Http404

from accounts.models import AccountSnapshot, Ctid, Trader, TradingAccount


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
                queryset=TradingAccount.objects.select_related("jurisdiction", "figures").order_by(
                    "-is_live", "login"
                ),
            )
        )
    )


def accounts_for_user(*, user: Any) -> QuerySet[TradingAccount]:
    """The user's trading accounts across all their cTIDs."""
    return (
        TradingAccount.objects.filter(ctid__trader__user=user)
        .select_related("ctid", "jurisdiction", "figures")
        .order_by("-is_live", "login")
    )


# --- account history ---
# Resolution name -> (truncation kind, seconds).
HISTORY_RESOLUTIONS: dict[str, tuple[str, int]] = {
    "minute": ("minute", 60),
    "hour": ("hour", 3600),
    "day": ("day", 86400),
}


@dataclass(frozen=True)
class HistoryPoint:
    at: datetime
    balance: Decimal
    equity: Decimal
    used_margin: Decimal


def auto_resolution(start: datetime, end: datetime) -> str:
    """The finest resolution the history keeps for a span: minutes for a day, hours for a month, else days."""
    span = end - start
    if span <= timedelta(days=2):
        return "minute"
    if span <= timedelta(days=45):
        return "hour"
    return "day"


def account_history(
    *, account: TradingAccount, start: datetime, end: datetime, resolution: str, with_prior: bool = False
) -> list[HistoryPoint]:
    """The account's history between ``start`` and ``end`` (inclusive), the last point of each bucket.

    ``account`` comes from ``accounts_for_user``, so the read is scoped to the signed-in trader. With
    ``with_prior`` the last point before ``start`` comes first (a chart starts from the value it had then).
    """
    kind, _seconds = HISTORY_RESOLUTIONS[resolution]
    rows = (
        AccountSnapshot.objects.filter(account_id=account.pk, at__gte=start, at__lte=end)
        .annotate(
            rank=Window(RowNumber(), partition_by=[Trunc("at", kind)], order_by=F("at").desc()),
        )
        .filter(rank=1)
        .order_by("at")
        .values_list("at", "balance", "equity", "used_margin")
    )
    points = [HistoryPoint(*row) for row in rows]
    if with_prior:
        prior = (
            AccountSnapshot.objects.filter(account_id=account.pk, at__lt=start)
            .order_by("-at")
            .values_list("at", "balance", "equity", "used_margin")
            .first()
        )
        if prior is not None:
            points.insert(0, HistoryPoint(*prior))
    return points
