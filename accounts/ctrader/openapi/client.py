"""An asyncio client for the cTrader Open API, JSON over WebSocket (port 5036).

One ``OpenApiConnection`` is one socket. Application auth happens inside ``connect()`` and nothing else is
sent before its response. All frames go through one writer task that reads an outgoing queue, so there is
never more than one writer on the socket, and the writer paces them under the per-connection rate limit.
Responses are matched to requests by ``clientMsgId``; everything else (events, server heartbeats, errors
nobody waits for) goes to the ``on_event`` callback, in order, from a task of its own so a callback may
itself send requests on the connection.

Tokens and the client secret are never logged: log lines carry payload types and clientMsgIds only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .messages import (
    ERROR_PAYLOAD_TYPES,
    Envelope,
    EnvelopeError,
    PayloadType,
    decode,
    encode,
    int64,
    maintenance_end,
)

logger = logging.getLogger(__name__)

EventCallback = Callable[[Envelope], Awaitable[None]]

# Account lists of large cTIDs and asset lists can exceed websockets' 1 MiB default.
MAX_FRAME_BYTES = 16 * 1024 * 1024
_ids = itertools.count(1)


class _NoFrameLogs(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs every frame at DEBUG, and Open API frames carry access tokens and the client secret.

    websockets decides once per connection, from ``isEnabledFor(DEBUG)``, whether to log frames: answering
    False keeps them out whatever the logging configuration, while its INFO and above still get through.
    """

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


def websockets_logger(name: str) -> logging.LoggerAdapter:  # type: ignore[type-arg]
    """The logger to give websockets for a socket that carries Open API frames (``websockets.client``...)."""
    return _NoFrameLogs(logging.getLogger(name), {})


class OpenApiError(Exception):
    """Base of every error this client raises."""


class OpenApiTransportError(OpenApiError):
    """Connecting failed, the socket closed, or a response did not come in time. Transient: reconnect."""


class OpenApiRequestTimeout(OpenApiTransportError):
    """No response to a request within its timeout."""


class OpenApiErrorResponse(OpenApiError):
    """The server answered with ProtoOAErrorRes (2142) or ProtoErrorRes (50)."""

    def __init__(
        self,
        error_code: str,
        description: str = "",
        *,
        payload_type: int = PayloadType.OA_ERROR_RES,
        ctid_trader_account_id: int | None = None,
        maintenance_end: datetime | None = None,
        retry_after: float | None = None,
        seq: int = 0,
    ) -> None:
        self.error_code = error_code
        self.seq = seq
        self.description = description
        self.payload_type = payload_type
        self.ctid_trader_account_id = ctid_trader_account_id
        self.maintenance_end = maintenance_end
        self.retry_after = retry_after
        super().__init__(f"{error_code}: {description}" if description else error_code)

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> OpenApiErrorResponse:
        payload = envelope.payload
        account_id = payload.get("ctidTraderAccountId")
        retry_after = payload.get("retryAfter")
        return cls(
            str(payload.get("errorCode") or "UNKNOWN_ERROR"),
            str(payload.get("description") or ""),
            payload_type=envelope.payload_type,
            ctid_trader_account_id=int64(account_id) if account_id not in (None, "") else None,
            maintenance_end=maintenance_end(payload),
            retry_after=float(retry_after) if retry_after is not None and retry_after != "" else None,
            seq=envelope.seq,
        )


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
    balance_version: int | None = None


def trader_info(payload: dict[str, Any]) -> TraderInfo:
    """A TraderInfo from the payload of ProtoOATraderRes or ProtoOATraderUpdatedEvent."""
    trader = payload.get("trader") or {}
    money_digits = int(trader.get("moneyDigits") or 0)
    login = trader.get("traderLogin")
    version = trader.get("balanceVersion")
    return TraderInfo(
        ctid_trader_account_id=int64(trader.get("ctidTraderAccountId") or payload["ctidTraderAccountId"]),
        balance=Decimal(int64(trader.get("balance") or 0)).scaleb(-money_digits),
        money_digits=money_digits,
        deposit_asset_id=int64(trader.get("depositAssetId") or 0),
        broker_name=str(trader.get("brokerName") or ""),
        trader_login=int64(login) if login not in (None, "") else None,
        balance_version=int64(version) if version not in (None, "") else None,
    )


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


class RatePacer:
    """Spaces sends so that no window of ``window`` seconds carries more than ``limit`` of them.

    Two rules: a hard sliding window over the last ``limit`` send times (the guarantee), and an even
    spacing of ``window / limit`` with a little catch-up allowance (so a backlog leaves as a steady stream
    rather than as bursts at each window edge). The window is 5% longer than one second so that
    scheduling and network jitter (up to 50 ms) does not push a server-side one-second window over the limit.
    """

    def __init__(self, limit: int, *, window: float = 1.05, clock: Callable[[], float] = time.monotonic):
        if limit < 1:
            raise ValueError("the rate limit must be at least 1 per second")
        self.limit = limit
        self.window = window
        self.interval = window / limit
        self.tolerance = self.interval * 2
        self._clock = clock
        self._sent: deque[float] = deque(maxlen=limit)
        self._tat = 0.0  # theoretical arrival time of the next send (GCRA)

    def delay(self) -> float:
        now = self._clock()
        wait = self._tat - self.tolerance - now
        if len(self._sent) == self.limit:
            wait = max(wait, self._sent[0] + self.window - now)
        return max(wait, 0.0)

    def record(self) -> None:
        now = self._clock()
        self._sent.append(now)
        self._tat = max(self._tat, now) + self.interval

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (the server asked to slow down)."""
        self._tat = max(self._tat, self._clock() + seconds + self.tolerance)

    def slow_down(self, factor: float = 0.8) -> None:
        """Lower the rate for the rest of this connection, down to a floor of one per second."""
        self.limit = max(1, int(self.limit * factor))
        self.interval = self.window / self.limit
        self.tolerance = self.interval * 2
        self._sent = deque(list(self._sent)[-self.limit :], maxlen=self.limit)

    async def acquire(self) -> None:
        while (wait := self.delay()) > 0:
            await asyncio.sleep(wait)
        self.record()


# Priorities of the outgoing queue: lower goes first, FIFO within one priority.
PRIORITY_CONTROL = 0  # application auth, heartbeats
PRIORITY_DEFAULT = 1  # account auth and everything else
PRIORITY_BULK = 2  # reads that can wait behind a re-authorization wave (trader info, assets)


@dataclass(order=True)
class _Outgoing:
    priority: int
    order: int
    text: str = field(compare=False)
    payload_type: int = field(compare=False)
    client_msg_id: str = field(compare=False)
    sent: asyncio.Future[None] | None = field(default=None, compare=False)


def _quiet_future() -> asyncio.Future[Any]:
    """A future whose exception counts as seen even when its waiter was cancelled before it failed."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


class OpenApiConnection:
    def __init__(
        self,
        ws: ClientConnection,
        *,
        request_timeout: float,
        heartbeat_interval: float,
        max_requests_per_second: int,
        on_event: EventCallback | None,
    ) -> None:
        self._ws = ws
        self.request_timeout = request_timeout
        self.heartbeat_interval = heartbeat_interval
        self.pacer = RatePacer(max_requests_per_second)
        self._on_event = on_event
        self._outgoing: asyncio.PriorityQueue[_Outgoing] = asyncio.PriorityQueue()
        self._events: asyncio.Queue[Envelope | None] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[Envelope]] = {}
        self._prefix = f"c{next(_ids)}-"
        self._counter = itertools.count(1)
        self._closed = asyncio.Event()
        self._current: _Outgoing | None = None  # taken off the queue by the writer, not yet written
        self.close_reason = ""
        self.messages_received = 0
        self.messages_sent = 0
        self._tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(self._reader(), name="openapi-reader"),
            asyncio.create_task(self._writer(), name="openapi-writer"),
            asyncio.create_task(self._dispatcher(), name="openapi-events"),
        ]

    # --- lifecycle ---
    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        client_id: str,
        client_secret: str,
        request_timeout: float = 10.0,
        heartbeat_interval: float = 10.0,
        max_requests_per_second: int = 50,
        on_event: EventCallback | None = None,
    ) -> OpenApiConnection:
        """Open the socket and authorize the application; raise OpenApiErrorResponse if it is refused."""
        ssl_context = ssl.create_default_context() if url.startswith("wss://") else None
        try:
            ws = await ws_connect(
                url,
                ssl=ssl_context,
                open_timeout=request_timeout,
                max_size=MAX_FRAME_BYTES,
                compression=None,
                proxy=None,
                logger=websockets_logger("websockets.client"),
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise OpenApiTransportError(f"cannot connect to {url}: {exc.__class__.__name__}: {exc}") from exc
        connection = cls(
            ws,
            request_timeout=request_timeout,
            heartbeat_interval=heartbeat_interval,
            max_requests_per_second=max_requests_per_second,
            on_event=on_event,
        )
        try:
            await connection.request(
                PayloadType.APPLICATION_AUTH_REQ,
                {"clientId": client_id, "clientSecret": client_secret},
                priority=PRIORITY_CONTROL,
            )
        except BaseException:
            await connection.close()
            raise
        connection._tasks.append(asyncio.create_task(connection._heartbeat(), name="openapi-heartbeat"))
        logger.info("openapi application authorized", extra={"url": url})
        return connection

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self) -> None:
        if not self._closed.is_set():
            self._shutdown("closed by client")
        with contextlib.suppress(Exception):
            await self._ws.close()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            if task.get_name() != "openapi-events":
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t.get_name() != "openapi-events"), return_exceptions=True)
        # The dispatcher ends by itself at the end marker, after delivering the events received before the
        # close; a handler still busy after a grace period is cancelled.
        for task in tasks:
            if task.get_name() == "openapi-events":
                with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(task), 5.0)
                task.cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _shutdown(self, reason: str) -> None:
        if self._closed.is_set():
            return
        self.close_reason = reason
        self._closed.set()
        error = OpenApiTransportError(f"connection closed: {reason}")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        waiting = [self._outgoing.get_nowait() for _ in range(self._outgoing.qsize())]
        if self._current is not None:
            waiting.append(self._current)
        for item in waiting:
            if item.sent is not None and not item.sent.done():
                item.sent.set_exception(error)
        self._events.put_nowait(None)
        for task in self._tasks:
            if task.get_name() == "openapi-heartbeat":
                task.cancel()

    # --- requests ---
    def _enqueue(
        self, payload_type: int, payload: dict[str, Any], *, track: bool, priority: int
    ) -> _Outgoing:
        if self._closed.is_set():
            raise OpenApiTransportError(f"connection closed: {self.close_reason}")
        order = next(self._counter)
        client_msg_id = f"{self._prefix}{order}"
        sent = _quiet_future() if track else None
        item = _Outgoing(
            priority,
            order,
            encode(payload_type, payload, client_msg_id),
            int(payload_type),
            client_msg_id,
            sent,
        )
        self._outgoing.put_nowait(item)
        return item

    async def request(
        self,
        payload_type: int,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
        priority: int = PRIORITY_DEFAULT,
    ) -> dict[str, Any]:
        """Send one request and return the payload of its response.

        The timeout runs from the moment the frame is written, not while it waits for its turn under the
        rate limit, so a long paced backlog does not time out.
        """
        return (
            await self.request_envelope(payload_type, payload, timeout=timeout, priority=priority)
        ).payload

    async def request_envelope(
        self,
        payload_type: int,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
        priority: int = PRIORITY_DEFAULT,
    ) -> Envelope:
        """Like request(), returning the whole response envelope (with its receive position ``seq``)."""
        item = self._enqueue(payload_type, payload, track=True, priority=priority)
        response: asyncio.Future[Envelope] = _quiet_future()
        self._pending[item.client_msg_id] = response
        try:
            assert item.sent is not None
            await item.sent
            try:
                envelope = await asyncio.wait_for(
                    asyncio.shield(response), timeout if timeout is not None else self.request_timeout
                )
            except TimeoutError:
                raise OpenApiRequestTimeout(
                    f"no response to payloadType {int(payload_type)} ({item.client_msg_id})"
                ) from None
        finally:
            self._pending.pop(item.client_msg_id, None)
        if envelope.is_error:
            raise OpenApiErrorResponse.from_envelope(envelope)
        return envelope

    def send_event(self, payload_type: int, payload: dict[str, Any] | None = None) -> None:
        """Queue a frame that has no response (heartbeat), ahead of queued requests."""
        self._enqueue(payload_type, payload or {}, track=False, priority=PRIORITY_CONTROL)

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

    # --- tasks ---
    async def _writer(self) -> None:
        try:
            while True:
                item = self._current = await self._outgoing.get()
                await self.pacer.acquire()
                if self._closed.is_set():
                    break
                await self._ws.send(item.text)
                self._current = None
                self.messages_sent += 1
                logger.debug(
                    "openapi sent",
                    extra={"payload_type": item.payload_type, "client_msg_id": item.client_msg_id},
                )
                if item.sent is not None and not item.sent.done():
                    item.sent.set_result(None)
        except ConnectionClosed as exc:
            self._shutdown(f"send failed: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("openapi writer failed")
            self._shutdown(f"writer failed: {exc.__class__.__name__}")
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def _reader(self) -> None:
        reason = "socket closed"
        try:
            async for frame in self._ws:
                self.messages_received += 1
                try:
                    envelope = decode(frame, seq=self.messages_received)
                except EnvelopeError as exc:
                    logger.warning("openapi frame ignored", extra={"error": str(exc)})
                    continue
                future = self._pending.get(envelope.client_msg_id or "")
                if future is not None and not future.done():
                    future.set_result(envelope)
                    continue
                if envelope.payload_type in ERROR_PAYLOAD_TYPES:
                    logger.warning(
                        "openapi unsolicited error",
                        extra={
                            "error_code": envelope.payload.get("errorCode"),
                            "client_msg_id": envelope.client_msg_id,
                        },
                    )
                self._events.put_nowait(envelope)
        except ConnectionClosed as exc:
            reason = f"socket closed: {exc}"
        except asyncio.CancelledError:
            reason = "closed by client"
            raise
        finally:
            if reason == "socket closed" and self._ws.close_code is not None:
                reason = f"socket closed: {self._ws.close_code} {self._ws.close_reason or ''}".strip()
            self._shutdown(reason)

    async def _dispatcher(self) -> None:
        while True:
            envelope = await self._events.get()
            if envelope is None:
                return
            if self._on_event is None:
                continue
            try:
                await self._on_event(envelope)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "openapi event handler failed", extra={"payload_type": envelope.payload_type}
                )

    async def _heartbeat(self) -> None:
        while not self._closed.is_set():
            await asyncio.sleep(self.heartbeat_interval)
            with contextlib.suppress(OpenApiTransportError):
                self.send_event(PayloadType.HEARTBEAT_EVENT)
