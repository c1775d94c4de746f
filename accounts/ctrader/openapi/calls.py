"""The typed Open API calls: what each request sends, and what its answer becomes.

The answers' records (accounts, trader, positions) and the readers that build them from JSON payloads live
here with the requests, so the gateway can read the same records from events. ``OpenApiConnection``
(``client.py``) carries the frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypedDict, Unpack

from .messages import PayloadType, int64
from .pacing import PRIORITY_DEFAULT


@dataclass(frozen=True)
class AccountInfo:
    ctid_trader_account_id: int
    is_live: bool
    trader_login: int
    broker_title_short: str


@dataclass(frozen=True)
class TraderInfo:
    ctid_trader_account_id: int
    balance: Decimal
    money_digits: int
    deposit_asset_id: int
    broker_name: str
    trader_login: int | None
    # ProtoOATrader.balanceVersion: a later balance has a higher one; None when the server did not send it.
    balance_version: int | None = None


def _optional_int64(value: Any) -> int | None:
    return int64(value) if value not in (None, "") else None


def trader_info(payload: dict[str, Any]) -> TraderInfo:
    """A TraderInfo from the payload of ProtoOATraderRes or ProtoOATraderUpdatedEvent."""
    trader = payload.get("trader") or {}
    money_digits = int(trader.get("moneyDigits") or 0)
    login = trader.get("traderLogin")
    return TraderInfo(
        ctid_trader_account_id=int64(trader.get("ctidTraderAccountId") or payload["ctidTraderAccountId"]),
        balance=Decimal(int64(trader.get("balance") or 0)).scaleb(-money_digits),
        money_digits=money_digits,
        deposit_asset_id=int64(trader.get("depositAssetId") or 0),
        broker_name=str(trader.get("brokerName") or ""),
        trader_login=int64(login) if login not in (None, "") else None,
        balance_version=_optional_int64(trader.get("balanceVersion")),
    )


def execution_balance(payload: dict[str, Any]) -> TraderInfo | None:
    """The new balance a ProtoOAExecutionEvent carries, if any.

    A closing deal carries it in ``deal.closePositionDetail`` and a deposit or withdrawal in
    ``depositWithdraw``, each with ``balance``, ``balanceVersion`` and ``moneyDigits``. The result has no
    broker name nor deposit asset: only the balance and its version are known.
    """
    deal = payload.get("deal") or {}
    for source in (deal.get("closePositionDetail"), payload.get("depositWithdraw")):
        if not isinstance(source, dict) or source.get("balance") in (None, ""):
            continue
        digits = int(source.get("moneyDigits") or deal.get("moneyDigits") or 0)
        return TraderInfo(
            ctid_trader_account_id=int64(payload["ctidTraderAccountId"]),
            balance=Decimal(int64(source["balance"])).scaleb(-digits),
            money_digits=digits,
            deposit_asset_id=0,
            broker_name="",
            trader_login=None,
            balance_version=_optional_int64(source.get("balanceVersion")),
        )
    return None


@dataclass(frozen=True)
class PositionInfo:
    """One open position of ProtoOAReconcileRes; money already scaled by the position's ``moneyDigits``."""

    position_id: int
    symbol_id: int
    volume: int  # in cents of units, as on the wire
    trade_side: str
    used_margin: Decimal
    swap: Decimal
    commission: Decimal


@dataclass(frozen=True)
class PositionPnl:
    position_id: int
    gross: Decimal
    net: Decimal


def _side(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return {1: "BUY", 2: "SELL"}.get(value, str(value))
    return str(value or "")


def position_info(item: dict[str, Any]) -> PositionInfo:
    digits = int(item.get("moneyDigits") or 0)
    trade = item.get("tradeData") or {}
    return PositionInfo(
        position_id=int64(item["positionId"]),
        symbol_id=int64(trade.get("symbolId") or 0),
        volume=int64(trade.get("volume") or 0),
        trade_side=_side(trade.get("tradeSide")),
        used_margin=Decimal(int64(item.get("usedMargin") or 0)).scaleb(-digits),
        swap=Decimal(int64(item.get("swap") or 0)).scaleb(-digits),
        commission=Decimal(int64(item.get("commission") or 0)).scaleb(-digits),
    )


def unrealized_pnls(payload: dict[str, Any]) -> dict[int, PositionPnl]:
    digits = int(payload.get("moneyDigits") or 0)
    result = {}
    for item in payload.get("positionUnrealizedPnL") or []:
        position_id = int64(item["positionId"])
        result[position_id] = PositionPnl(
            position_id,
            Decimal(int64(item.get("grossUnrealizedPnL") or 0)).scaleb(-digits),
            Decimal(int64(item.get("netUnrealizedPnL") or 0)).scaleb(-digits),
        )
    return result


class RequestOptions(TypedDict, total=False):
    """How one request is sent: ``timeout`` (seconds, from the moment it is written) and ``priority``."""

    timeout: float | None
    priority: int


class OpenApiCalls:
    """The typed requests of a connection, on top of its ``request``."""

    async def request(
        self, payload_type: int, payload: dict[str, Any], **options: Unpack[RequestOptions]
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def get_ctid_user_id(self, access_token: str) -> int:
        payload = await self.request(PayloadType.GET_CTID_PROFILE_BY_TOKEN_REQ, {"accessToken": access_token})
        return int64(payload["profile"]["userId"])

    async def get_accounts(self, access_token: str) -> tuple[str, list[AccountInfo]]:
        payload = await self.request(
            PayloadType.GET_ACCOUNTS_BY_ACCESS_TOKEN_REQ, {"accessToken": access_token}
        )
        scope = payload.get("permissionScope", "SCOPE_VIEW")
        if isinstance(scope, int):
            scope = {0: "SCOPE_VIEW", 1: "SCOPE_TRADE"}.get(scope, str(scope))
        accounts = [
            AccountInfo(
                ctid_trader_account_id=int64(item["ctidTraderAccountId"]),
                is_live=bool(item.get("isLive", False)),
                trader_login=int64(item.get("traderLogin") or 0),
                broker_title_short=str(item.get("brokerTitleShort") or ""),
            )
            for item in payload.get("ctidTraderAccount") or []
        ]
        return str(scope), accounts

    async def authorize_account(self, ctid_trader_account_id: int, access_token: str) -> None:
        await self.request(
            PayloadType.ACCOUNT_AUTH_REQ,
            {"ctidTraderAccountId": ctid_trader_account_id, "accessToken": access_token},
        )

    async def logout_account(self, ctid_trader_account_id: int) -> None:
        await self.request(PayloadType.ACCOUNT_LOGOUT_REQ, {"ctidTraderAccountId": ctid_trader_account_id})

    async def get_trader(
        self, ctid_trader_account_id: int, *, priority: int = PRIORITY_DEFAULT
    ) -> TraderInfo:
        payload = await self.request(
            PayloadType.TRADER_REQ, {"ctidTraderAccountId": ctid_trader_account_id}, priority=priority
        )
        return trader_info(payload)

    async def get_asset_names(
        self, ctid_trader_account_id: int, *, priority: int = PRIORITY_DEFAULT
    ) -> dict[int, str]:
        payload = await self.request(
            PayloadType.ASSET_LIST_REQ, {"ctidTraderAccountId": ctid_trader_account_id}, priority=priority
        )
        return {
            int64(asset["assetId"]): str(asset.get("name") or asset.get("displayName") or "")
            for asset in payload.get("asset") or []
        }

    async def reconcile(
        self, ctid_trader_account_id: int, *, priority: int = PRIORITY_DEFAULT
    ) -> list[PositionInfo]:
        """The account's open positions (ProtoOAReconcileReq), each with its used margin, swap and commission."""
        payload = await self.request(
            PayloadType.RECONCILE_REQ, {"ctidTraderAccountId": ctid_trader_account_id}, priority=priority
        )
        return [position_info(item) for item in payload.get("position") or []]

    async def unrealized_pnl(
        self, ctid_trader_account_id: int, *, priority: int = PRIORITY_DEFAULT
    ) -> dict[int, PositionPnl]:
        """Gross and net unrealized P/L per open position (ProtoOAGetPositionUnrealizedPnLReq), by position id."""
        payload = await self.request(
            PayloadType.GET_POSITION_UNREALIZED_PNL_REQ,
            {"ctidTraderAccountId": ctid_trader_account_id},
            priority=priority,
        )
        return unrealized_pnls(payload)
