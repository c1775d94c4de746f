"""Reading a cTID's trading accounts over the Open API and storing them.

Live and demo are separate Open API hosts: an account is authorized only on the connection whose environment
matches its ``isLive``, so a sync opens at most one connection per environment. The network part runs first
and outside any transaction; the results are then written in one short transaction.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.ctrader.openapi.client import (
    AccountInfo,
    OpenApiConnection,
    OpenApiError,
    OpenApiErrorResponse,
    OpenApiTransportError,
)
from accounts.ctrader.openapi.messages import PASSING_ERROR_KINDS, ErrorKind, classify_error
from accounts.models import Ctid, CtidToken, Jurisdiction, TradingAccount
from accounts.services.tokens import RefreshOutcome, TokenRefreshTransient, ctid_token_refresh

logger = logging.getLogger(__name__)


class SyncError(Exception):
    """Base of account-sync failures; the message is safe to show to staff and to the trader."""


class SyncTransient(SyncError):
    """The Open API could not be reached or asked us to wait; retry later."""


class SyncNeedsReconnect(SyncError):
    """The cTID's token chain is dead: only a new consent helps."""


@dataclass(frozen=True)
class FetchedAccount:
    ctid_trader_account_id: int
    is_live: bool
    login: int
    broker_title: str
    broker_name: str = ""
    balance: Decimal | None = None
    balance_version: int | None = None
    currency: str = ""
    problem: str = ""  # "", "gone" or "disabled"
    problem_reason: str = ""


@dataclass(frozen=True)
class SyncResult:
    ctid_id: int
    active: int
    gone: int
    without_jurisdiction: int
    synced_at: datetime


def _url(is_live: bool) -> str:
    return settings.CTRADER_OPENAPI_LIVE_URL if is_live else settings.CTRADER_OPENAPI_DEMO_URL


async def _connect(is_live: bool) -> OpenApiConnection:
    return await OpenApiConnection.connect(
        _url(is_live),
        client_id=settings.CTRADER_CLIENT_ID,
        client_secret=settings.CTRADER_CLIENT_SECRET,
        request_timeout=settings.OPENAPI_REQUEST_TIMEOUT,
    )


async def _profile_user_id(access_token: str) -> int:
    # Token-only calls are answered on either host; the live one is the canonical place.
    async with await _connect(True) as conn:
        return await conn.get_ctid_user_id(access_token)


def openapi_ctid_user_id(*, access_token: str) -> int:
    """The cTID ``userId`` an access token belongs to (GetCtidProfileByToken)."""
    try:
        return async_to_sync(_profile_user_id)(access_token)
    except OpenApiErrorResponse as exc:
        if classify_error(exc.error_code) is ErrorKind.TOKEN:
            raise SyncNeedsReconnect("cTrader refused the new access token.") from None
        raise SyncTransient(f"The cTrader Open API answered {exc.error_code}.") from None
    except OpenApiError as exc:
        raise SyncTransient(f"The cTrader Open API is unreachable ({type(exc).__name__}).") from None


class _AssetNames:
    """Deposit asset names per broker, read once per connection (every account of a broker shares them)."""

    def __init__(self) -> None:
        self._by_broker: dict[str, asyncio.Future[dict[int, str]]] = {}

    async def name(self, conn: OpenApiConnection, account_id: int, broker: str, asset_id: int) -> str:
        future = self._by_broker.get(broker)
        if future is None:
            future = asyncio.ensure_future(conn.get_asset_names(account_id))
            self._by_broker[broker] = future
        try:
            names = await asyncio.shield(future)
        except OpenApiErrorResponse:
            self._by_broker.pop(broker, None)  # that account's read failed; another account tries again
            raise
        if asset_id not in names:
            names = await conn.get_asset_names(account_id)
        return names.get(asset_id, "")


async def _read_account(
    conn: OpenApiConnection, info: AccountInfo, access_token: str, assets: _AssetNames
) -> FetchedAccount:
    base = FetchedAccount(
        info.ctid_trader_account_id, info.is_live, info.trader_login, info.broker_title_short
    )
    try:
        await conn.authorize_account(info.ctid_trader_account_id, access_token)
        trader = await conn.get_trader(info.ctid_trader_account_id)
        currency = await assets.name(
            conn, info.ctid_trader_account_id, trader.broker_name, trader.deposit_asset_id
        )
    except OpenApiErrorResponse as exc:
        kind = classify_error(exc.error_code)
        if kind in (ErrorKind.ACCOUNT_GONE, ErrorKind.ACCOUNT_DISABLED):
            return _replace(base, problem=kind.value, problem_reason=f"cTrader: {exc.error_code}")
        raise
    return _replace(
        base,
        login=trader.trader_login or info.trader_login,
        broker_name=trader.broker_name,
        balance=trader.balance,
        balance_version=trader.balance_version,
        currency=currency,
    )


def _replace(account: FetchedAccount, **changes: object) -> FetchedAccount:
    from dataclasses import replace

    return replace(account, **changes)  # type: ignore[arg-type]


async def _read_environment(
    conn: OpenApiConnection, accounts: list[AccountInfo], access_token: str
) -> list[FetchedAccount]:
    """Every account of one environment on one connection, pipelined: the requests of all accounts are
    queued at once and leave at the pacer's rate, instead of one round trip after the other."""
    assets = _AssetNames()
    return list(await asyncio.gather(*(_read_account(conn, a, access_token, assets) for a in accounts)))


async def _fetch(access_token: str) -> list[FetchedAccount]:
    """Live and demo side by side, each on one connection of its own."""
    async with await _connect(True) as live:
        _scope, accounts = await live.get_accounts(access_token)
        demo_accounts = [a for a in accounts if not a.is_live]

        async def demo_part() -> list[FetchedAccount]:
            if not demo_accounts:
                return []
            async with await _connect(False) as demo:
                return await _read_environment(demo, demo_accounts, access_token)

        parts = await asyncio.gather(
            _read_environment(live, [a for a in accounts if a.is_live], access_token),
            demo_part(),
            return_exceptions=True,
        )
    for part in parts:
        if isinstance(part, BaseException):
            raise part
    return [account for part in parts if isinstance(part, list) for account in part]


def ctid_sync_accounts(*, ctid_id: int) -> SyncResult:
    """Read the cTID's accounts from the Open API and upsert them; accounts no longer listed become GONE.

    A refused access token is refreshed once through the single-flight refresh, then the read is repeated.
    """
    for attempt in (1, 2):
        token = CtidToken.objects.only("access_token", "version", "state").get(ctid_id=ctid_id)
        if token.state != CtidToken.State.ACTIVE:
            raise _record(ctid_id, SyncNeedsReconnect("The cTrader ID needs to be reconnected."))
        try:
            fetched = async_to_sync(_fetch)(token.access_token)
            break
        except OpenApiErrorResponse as exc:
            kind = classify_error(exc.error_code)
            if kind is ErrorKind.TOKEN and attempt == 1:
                _refresh_after_refusal(ctid_id=ctid_id, seen_version=token.version)
                continue
            if kind is ErrorKind.TOKEN:
                raise _record(ctid_id, SyncTransient("cTrader refused the refreshed access token.")) from None
            if kind in PASSING_ERROR_KINDS:
                raise _record(
                    ctid_id, SyncTransient(f"The cTrader Open API answered {exc.error_code}.")
                ) from None
            raise _record(ctid_id, SyncError(f"The cTrader Open API answered {exc.error_code}.")) from None
        except OpenApiTransportError as exc:
            raise _record(
                ctid_id, SyncTransient(f"The cTrader Open API is unreachable ({type(exc).__name__}).")
            ) from None
        except OpenApiError as exc:
            raise _record(
                ctid_id, SyncError(f"The cTrader Open API failed ({type(exc).__name__}).")
            ) from None
    return _store(ctid_id=ctid_id, fetched=fetched)


def _refresh_after_refusal(*, ctid_id: int, seen_version: int) -> None:
    try:
        result = ctid_token_refresh(
            ctid_id=ctid_id, reason="sync: access token refused", seen_version=seen_version
        )
    except TokenRefreshTransient as exc:
        raise _record(ctid_id, SyncTransient(f"The access token could not be refreshed yet: {exc}")) from None
    if result.outcome in (RefreshOutcome.REJECTED, RefreshOutcome.NOT_ACTIVE):
        raise _record(ctid_id, SyncNeedsReconnect("The cTrader ID needs to be reconnected."))


def _record(ctid_id: int, error: SyncError) -> SyncError:
    Ctid.objects.filter(pk=ctid_id).update(last_sync_error=str(error)[:500])
    logger.warning("ctid account sync failed", extra={"ctid_id": ctid_id, "error": str(error)})
    return error


def _store(*, ctid_id: int, fetched: list[FetchedAccount]) -> SyncResult:
    now = timezone.now()
    names = {a.broker_name for a in fetched if a.broker_name}
    jurisdictions = {j.broker_name: j for j in Jurisdiction.objects.filter(broker_name__in=names)}
    seen_ids = [a.ctid_trader_account_id for a in fetched]
    active = without = 0
    with transaction.atomic():
        ctid = Ctid.objects.select_for_update().get(pk=ctid_id)
        # Balances stored meanwhile by the gateway with a higher balanceVersion are newer than this read.
        stored_versions = dict(
            TradingAccount.objects.select_for_update()
            .filter(ctid_trader_account_id__in=seen_ids, balance_version__isnull=False)
            .values_list("ctid_trader_account_id", "balance_version")
        )
        for account in fetched:
            defaults: dict[str, object] = {
                "ctid": ctid,
                "login": account.login,
                "is_live": account.is_live,
                "broker_title": account.broker_title[:200],
                "last_synced_at": now,
            }
            if account.problem == "gone":
                defaults.update(status=TradingAccount.Status.GONE, status_reason=account.problem_reason)
            elif account.problem == "disabled":
                defaults.update(status=TradingAccount.Status.DISABLED, status_reason=account.problem_reason)
            else:
                active += 1
                jurisdiction = jurisdictions.get(account.broker_name)
                without += jurisdiction is None
                defaults.update(
                    status=TradingAccount.Status.ACTIVE,
                    status_reason="",
                    broker_name=account.broker_name[:100],
                    jurisdiction=jurisdiction,
                    currency=account.currency[:20],
                )
                stored = stored_versions.get(account.ctid_trader_account_id)
                if stored is None or account.balance_version is None or account.balance_version >= stored:
                    defaults.update(
                        balance=account.balance,
                        balance_version=account.balance_version,
                        balance_updated_at=now if account.balance is not None else None,
                    )
            TradingAccount.objects.update_or_create(
                ctid_trader_account_id=account.ctid_trader_account_id, defaults=defaults
            )
        gone = (
            TradingAccount.objects.filter(ctid=ctid)
            .exclude(ctid_trader_account_id__in=seen_ids)
            .exclude(status=TradingAccount.Status.GONE)
            .update(
                status=TradingAccount.Status.GONE,
                status_reason="No longer in the account list granted to this application.",
            )
        )
        ctid.last_synced_at = now
        ctid.last_sync_error = ""
        ctid.save(update_fields=["last_synced_at", "last_sync_error"])
    if without:
        logger.warning(
            "trading accounts with a broker name that matches no jurisdiction",
            extra={"ctid_id": ctid_id, "count": without},
        )
    logger.info(
        "ctid accounts synced",
        extra={"ctid_id": ctid_id, "active": active, "gone": gone, "unmapped": without},
    )
    return SyncResult(ctid_id, active, gone, without, now)
