"""Reading account figures over the Open API, one cTID at a time.

Used when no WebServices manager credentials are configured, and for an account page opened right now. Per
account: account auth, ``ProtoOATraderReq`` (balance, ``balanceVersion``), ``ProtoOAReconcileReq`` (open
positions with their used margin) and ``ProtoOAGetPositionUnrealizedPnLReq`` (net P/L per position). The
account-level P/L subscriptions Spotware removed in 2025 are not used. The network part runs outside any
transaction; each account's figures are then stored with the time they were read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import async_to_sync
from django.conf import settings
from django.utils import timezone

from accounts.ctrader.figures import Figures, figures_from_openapi
from accounts.ctrader.openapi.client import (
    PRIORITY_BULK,
    OpenApiConnection,
    OpenApiError,
    OpenApiErrorResponse,
    OpenApiTransportError,
)
from accounts.ctrader.openapi.messages import ACCOUNT_GONE_ERRORS, TOKEN_ERRORS
from accounts.models import AccountFigures, CtidToken, TradingAccount
from accounts.services.figures import FigureRows, StoreResult, account_figures_store
from accounts.services.tokens import RefreshOutcome, TokenRefreshTransient, ctid_token_refresh

logger = logging.getLogger(__name__)


class FiguresError(Exception):
    """Base of figure-read failures; the message is safe to show to staff."""


class FiguresTransient(FiguresError):
    """The Open API could not be reached or asked us to wait; the next periodic run tries again."""


@dataclass(frozen=True)
class ReadFigures:
    ctid_trader_account_id: int
    figures: Figures
    read_at: datetime


@dataclass(frozen=True)
class _Target:
    ctid_trader_account_id: int
    is_live: bool


async def _read_environment(
    url: str, access_token: str, targets: list[_Target]
) -> tuple[list[ReadFigures], list[int]]:
    read: list[ReadFigures] = []
    skipped: list[int] = []
    async with await OpenApiConnection.connect(
        url,
        client_id=settings.CTRADER_CLIENT_ID,
        client_secret=settings.CTRADER_CLIENT_SECRET,
        request_timeout=settings.OPENAPI_REQUEST_TIMEOUT,
    ) as conn:
        for target in targets:
            account_id = target.ctid_trader_account_id
            try:
                await conn.authorize_account(account_id, access_token)
                trader = await conn.get_trader(account_id, priority=PRIORITY_BULK)
                positions = await conn.reconcile(account_id, priority=PRIORITY_BULK)
                pnls = await conn.unrealized_pnl(account_id, priority=PRIORITY_BULK) if positions else {}
            except OpenApiErrorResponse as exc:
                if exc.error_code in ACCOUNT_GONE_ERRORS or exc.error_code == "RET_ACCOUNT_DISABLED":
                    skipped.append(account_id)
                    continue
                raise
            read.append(
                ReadFigures(account_id, figures_from_openapi(trader, positions, pnls), timezone.now())
            )
    return read, skipped


async def _read(access_token: str, targets: list[_Target]) -> tuple[list[ReadFigures], list[int]]:
    read: list[ReadFigures] = []
    skipped: list[int] = []
    for is_live, url in (
        (True, settings.CTRADER_OPENAPI_LIVE_URL),
        (False, settings.CTRADER_OPENAPI_DEMO_URL),
    ):
        wanted = [t for t in targets if t.is_live == is_live]
        if wanted:
            got, gone = await _read_environment(url, access_token, wanted)
            read += got
            skipped += gone
    return read, skipped


def figures_rows(read: list[ReadFigures]) -> FigureRows:
    rows = FigureRows()
    for item in read:
        f = item.figures
        rows.keys.append(item.ctid_trader_account_id)
        rows.balance.append(f.balance)
        rows.equity.append(f.equity)
        rows.used_margin.append(f.used_margin)
        rows.free_margin.append(f.free_margin)
        rows.scale.append(0)
        rows.money_digits.append(f.money_digits)
        rows.currency.append("")
        rows.positions_count.append(f.positions_count)
        rows.positions_volume.append(f.positions_volume)
        rows.balance_version.append(f.balance_version)
    return rows


def ctid_figures_refresh(
    *, ctid_id: int, ctid_trader_account_ids: list[int] | None = None, environment: str | None = None
) -> StoreResult:
    """Read the figures of a cTID's active accounts (the listed ones, or those of one environment) and store them.

    A refused access token is refreshed once through the single-flight refresh, then the read is repeated.
    Accounts the Open API reports gone or disabled are skipped; the account sync records their state.
    """
    accounts = TradingAccount.objects.filter(ctid_id=ctid_id, status=TradingAccount.Status.ACTIVE)
    if ctid_trader_account_ids is not None:
        accounts = accounts.filter(ctid_trader_account_id__in=ctid_trader_account_ids)
    if environment is not None:
        accounts = accounts.filter(is_live=environment == "live")
    targets = [_Target(a, live) for a, live in accounts.values_list("ctid_trader_account_id", "is_live")]
    if not targets:
        return StoreResult(0, 0, 0)
    for attempt in (1, 2):
        token = CtidToken.objects.only("access_token", "version", "state").get(ctid_id=ctid_id)
        if token.state != CtidToken.State.ACTIVE:
            raise FiguresError("The cTrader ID needs to be reconnected.")
        try:
            read, _skipped = async_to_sync(_read)(token.access_token, targets)
            break
        except OpenApiErrorResponse as exc:
            if exc.error_code in TOKEN_ERRORS and attempt == 1:
                try:
                    outcome = ctid_token_refresh(
                        ctid_id=ctid_id, reason="figures: access token refused", seen_version=token.version
                    ).outcome
                except TokenRefreshTransient as refresh_exc:
                    raise FiguresTransient(
                        f"The access token could not be refreshed yet: {refresh_exc}"
                    ) from None
                if outcome in (RefreshOutcome.REJECTED, RefreshOutcome.NOT_ACTIVE):
                    raise FiguresError("The cTrader ID needs to be reconnected.") from None
                continue
            raise FiguresTransient(f"The cTrader Open API answered {exc.error_code}.") from None
        except OpenApiTransportError as exc:
            raise FiguresTransient(f"The cTrader Open API is unreachable ({type(exc).__name__}).") from None
        except OpenApiError as exc:
            raise FiguresError(f"The cTrader Open API failed ({type(exc).__name__}).") from None
    stored = snapshots = 0
    for item in read:
        result = account_figures_store(
            rows=figures_rows([item]),
            key="ctid_trader_account_id",
            source=AccountFigures.Source.OPENAPI,
            read_at=item.read_at,
        )
        stored += result.stored
        snapshots += result.snapshots
    logger.info(
        "account figures read over the Open API",
        extra={"ctid_id": ctid_id, "accounts": len(read), "snapshots": snapshots},
    )
    return StoreResult(len(targets), stored, snapshots)
