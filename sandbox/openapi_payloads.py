"""The simulated broker's accounts and positions as the Open API JSON payloads carry them.

Pure functions of the World's records: the simulator in ``openapi_server`` decides who may see what and
sends these; keeping the wire shapes here keeps that module about the protocol.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sandbox.world import SimAccount, SimPosition

# Asset ids as the simulated broker numbers its deposit currencies.
ASSET_IDS = {"EUR": 1, "GBP": 2, "JPY": 4, "CHF": 6, "AUD": 8, "CAD": 10, "USD": 15, "BTC": 22}


def asset_id(name: str) -> int:
    return ASSET_IDS.get(name, 1000 + sum(ord(c) for c in name))


def account_id(payload: dict[str, Any]) -> int | None:
    """The request's ``ctidTraderAccountId``, or None when it is missing or not a number."""
    value = payload.get("ctidTraderAccountId")
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def trader(account: SimAccount) -> dict[str, Any]:
    """ProtoOATrader."""
    return {
        "ctidTraderAccountId": account.ctid_trader_account_id,
        "balance": account.balance,
        "balanceVersion": account.balance_version,
        "moneyDigits": account.money_digits,
        "depositAssetId": asset_id(account.deposit_asset),
        "brokerName": account.broker_name,
        "traderLogin": account.trader_login,
        "accessRights": "FULL_ACCESS",
        "accountType": "HEDGED",
    }


def deposit(account: SimAccount) -> dict[str, Any]:
    """The fields of a ProtoOAExecutionEvent for a deposit that left the account's current balance."""
    return {
        "executionType": "DEPOSIT_WITHDRAW",
        "depositWithdraw": {
            "balance": account.balance,
            "balanceVersion": account.balance_version,
            "moneyDigits": account.money_digits,
        },
    }


def assets(account: SimAccount) -> list[dict[str, Any]]:
    """The ProtoOAAsset list: the broker's currencies and the account's deposit asset."""
    return [
        {"assetId": asset_id(name), "name": name, "displayName": name, "digits": 2}
        for name in sorted({*ASSET_IDS, account.deposit_asset})
    ]


def listed_accounts(accounts: Iterable[SimAccount]) -> list[dict[str, Any]]:
    """ProtoOACtidTraderAccount entries of ProtoOAGetAccountListByAccessTokenRes."""
    return [
        {
            "ctidTraderAccountId": a.ctid_trader_account_id,
            "isLive": a.is_live,
            "traderLogin": a.trader_login,
            "brokerTitleShort": a.broker_title_short,
        }
        for a in accounts
    ]


def open_positions(account: SimAccount, positions: Iterable[SimPosition]) -> list[dict[str, Any]]:
    """ProtoOAPosition entries of ProtoOAReconcileRes."""
    return [
        {
            "positionId": p.position_id,
            "tradeData": {
                "symbolId": p.symbol_id,
                "volume": p.volume,
                "tradeSide": p.trade_side,
                "openTimestamp": int(p.opened_at * 1000),
            },
            "positionStatus": "POSITION_STATUS_OPEN",
            "swap": p.swap,
            "commission": p.commission,
            "usedMargin": p.used_margin,
            "moneyDigits": account.money_digits,
        }
        for p in positions
    ]


def unrealized_pnls(positions: Iterable[SimPosition], now: float) -> list[dict[str, Any]]:
    """ProtoOAPositionUnrealizedPnL entries: each position's P/L at ``now``."""
    pnls = []
    for p in positions:
        gross, net = p.pnl(now)
        pnls.append({"positionId": p.position_id, "grossUnrealizedPnL": gross, "netUnrealizedPnL": net})
    return pnls
