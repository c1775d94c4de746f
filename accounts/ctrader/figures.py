"""Account figures from Spotware's numbers: the formulas, on Decimal, never float.

Money travels as integers scaled by 10^moneyDigits. The Open API sends no equity or margin totals, so they are
computed from the open positions: equity = balance + Σ net unrealized P/L; free margin = equity - Σ used
margin; margin level = equity / used margin x 100, and none when no margin is used. The WebServices trader
reads send balance, equity, used and free margin directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from accounts.ctrader.openapi.client import PositionInfo, PositionPnl, TraderInfo

HUNDRED = Decimal(100)
MARGIN_LEVEL_PLACES = Decimal("0.0001")


def scaled(units: int, money_digits: int) -> Decimal:
    """An integer money field of Spotware as a Decimal: 10053099944 with 8 digits is 100.53099944."""
    return Decimal(int(units)).scaleb(-int(money_digits))


def margin_level(equity: Decimal, used_margin: Decimal) -> Decimal | None:
    """Equity / used margin x 100, to four places; None when no margin is used."""
    if used_margin <= 0:
        return None
    return (equity * HUNDRED / used_margin).quantize(MARGIN_LEVEL_PLACES)


@dataclass(frozen=True)
class Figures:
    balance: Decimal
    equity: Decimal
    used_margin: Decimal
    free_margin: Decimal
    money_digits: int
    positions_count: int | None = None
    positions_volume: Decimal | None = None  # units (the wire's volume is in cents of units)
    balance_version: int | None = None

    @property
    def unrealized_pnl(self) -> Decimal:
        return self.equity - self.balance

    @property
    def margin_level(self) -> Decimal | None:
        return margin_level(self.equity, self.used_margin)


def figures_from_openapi(
    trader: TraderInfo, positions: Iterable[PositionInfo], pnls: Mapping[int, PositionPnl]
) -> Figures:
    """The figures of one account from TraderRes, ReconcileRes and GetPositionUnrealizedPnLRes.

    A position the P/L answer does not list (opened between the two requests) counts with no P/L until the
    next read; its margin still counts.
    """
    positions = list(positions)
    used = sum((p.used_margin for p in positions), Decimal(0))
    pnl = sum((pnls[p.position_id].net for p in positions if p.position_id in pnls), Decimal(0))
    equity = trader.balance + pnl
    return Figures(
        balance=trader.balance,
        equity=equity,
        used_margin=used,
        free_margin=equity - used,
        money_digits=trader.money_digits,
        positions_count=len(positions),
        positions_volume=sum((Decimal(p.volume) for p in positions), Decimal(0)).scaleb(-2),
        balance_version=trader.balance_version,
    )


def figures_from_webservices(trader: Mapping[str, object]) -> Figures:
    """The figures of one trader of the WebServices reads (``GET /v2/webserv/traders/…``)."""
    digits = int(trader.get("moneyDigits") or 0)  # type: ignore[call-overload]

    def money(name: str) -> Decimal:
        return scaled(int(trader.get(name) or 0), digits)  # type: ignore[call-overload]

    return Figures(
        balance=money("balance"),
        equity=money("equity"),
        used_margin=money("usedMargin"),
        free_margin=money("freeMargin"),
        money_digits=digits,
    )
