"""Account figures as the trader sees them: formatted once per account, stale and margin-call flags, totals.

Built in Python from rows already loaded (``select_related("figures", "jurisdiction")``), so a page costs no
query per account and the template only prints prepared strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import formats, timezone

from accounts.models import AccountFigures, TradingAccount
from accounts.selectors import DashboardAccount


class NumberFormat:
    """Money and percentages with two places in the active language's separators, resolved once per page
    rather than once per number (a dashboard prints over a thousand of them)."""

    def __init__(self) -> None:
        self.decimal = str(formats.get_format("DECIMAL_SEPARATOR"))
        self.thousands = str(formats.get_format("THOUSAND_SEPARATOR"))
        self.plain = formats.get_format("NUMBER_GROUPING") in (3, (3, 0))
        self.table = str.maketrans({",": self.thousands, ".": self.decimal})

    def __call__(self, value: Decimal | None) -> str:
        if value is None:
            return ""
        if not self.plain:
            return formats.number_format(value, decimal_pos=2, use_l10n=True, force_grouping=True)
        text = f"{value:,.2f}"
        return text if (self.decimal, self.thousands) == (".", ",") else text.translate(self.table)


def money(value: Decimal | None) -> str:
    return NumberFormat()(value)


def margin_call_level(account: TradingAccount) -> Decimal:
    jurisdiction = account.jurisdiction
    return call_level(jurisdiction.margin_call_level if jurisdiction is not None else None)


def call_level(jurisdiction_level: Decimal | None) -> Decimal:
    """The margin-call level: the jurisdiction's own, else the setting."""
    if jurisdiction_level is not None:
        return jurisdiction_level
    return Decimal(settings.FIGURES_MARGIN_CALL_LEVEL)


@dataclass(frozen=True)
class FiguresView:
    currency: str
    balance: str
    equity: str
    used_margin: str
    free_margin: str
    unrealized_pnl: str
    pnl_negative: bool
    margin_level: str  # "" when no margin is used
    read_at: datetime
    stale: bool
    margin_call: bool
    margin_call_level: str
    positions_count: int | None
    positions_volume: str


def _figures_of(account: TradingAccount) -> AccountFigures | None:
    try:
        return account.figures
    except AccountFigures.DoesNotExist:
        return None


def figures_view(
    account: TradingAccount, *, now: datetime | None = None, number: NumberFormat | None = None
) -> FiguresView | None:
    figures = _figures_of(account)
    if figures is None:
        return None
    now = now or timezone.now()
    level = margin_call_level(account)
    money = percent = number or NumberFormat()
    return FiguresView(
        currency=figures.currency or account.currency,
        balance=money(figures.balance),
        equity=money(figures.equity),
        used_margin=money(figures.used_margin),
        free_margin=money(figures.free_margin),
        unrealized_pnl=money(figures.unrealized_pnl),
        pnl_negative=figures.unrealized_pnl < 0,
        margin_level=percent(figures.margin_level),
        read_at=figures.read_at,
        stale=is_stale(figures.read_at, now=now),
        margin_call=figures.margin_level is not None and figures.margin_level < level,
        margin_call_level=percent(level),
        positions_count=figures.positions_count,
        positions_volume=money(figures.positions_volume) if figures.positions_volume is not None else "",
    )


def is_stale(read_at: datetime, *, now: datetime | None = None) -> bool:
    return read_at < stale_before(now)


def stale_before(now: datetime | None = None) -> datetime:
    """Figures read before this time are out of date (``is_stale``): worked out once for a page of accounts."""
    return (now or timezone.now()) - timedelta(seconds=settings.FIGURES_STALE_SECONDS)


@dataclass
class CurrencyTotal:
    currency: str
    accounts: int = 0
    stale: int = 0
    balance: Decimal = Decimal(0)
    equity: Decimal = Decimal(0)
    used_margin: Decimal = Decimal(0)
    free_margin: Decimal = Decimal(0)
    unrealized_pnl: Decimal = Decimal(0)
    text: dict[str, str] = field(default_factory=dict)


def totals_per_currency(
    accounts: Iterable[DashboardAccount], *, now: datetime | None = None, number: NumberFormat | None = None
) -> list[CurrencyTotal]:
    """Sums of the figures per deposit currency, over active accounts that have figures."""
    before = stale_before(now)
    money = number or NumberFormat()
    totals: dict[str, CurrencyTotal] = {}
    for account in accounts:
        if account.read_at is None or account.status != TradingAccount.Status.ACTIVE:
            continue
        currency = account.figures_currency or account.currency
        total = totals.setdefault(currency, CurrencyTotal(currency))
        total.accounts += 1
        total.stale += account.read_at < before
        total.balance += account.figures_balance or 0
        total.equity += account.figures_equity or 0
        total.used_margin += account.figures_used_margin or 0
        total.free_margin += account.figures_free_margin or 0
        total.unrealized_pnl += account.figures_unrealized_pnl or 0
    for total in totals.values():
        total.text = {
            name: money(getattr(total, name))
            for name in ("balance", "equity", "used_margin", "free_margin", "unrealized_pnl")
        }
    return [totals[c] for c in sorted(totals)]
