"""An asyncio client for the cTrader Open API, JSON over WebSocket (port 5036).

One ``OpenApiConnection`` is one socket. Application auth happens inside ``connect()`` and nothing else is
sent before its response. All frames go through one writer task that reads an outgoing queue, so there is
never more than one writer on the socket, and the writer paces them under the per-connection rate limit.
Responses are matched to requests by ``clientMsgId``; everything else (events, server heartbeats, errors
nobody waits for) goes to the ``on_event`` callback, in order, from a task of its own so a callback may
itself send requests on the connection.

Tokens and the client secret are never logged: log lines carry payload types and clientMsgIds only.

The typed requests and their answers' records are in ``calls.py``, the errors in ``errors.py``, the rate
pacing and queue priorities in ``pacing.py``; every name is importable from here as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, Unpack

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .calls import (
    AccountInfo,
    OpenApiCalls,
    PositionInfo,
    PositionPnl,
    RequestOptions,
    TraderInfo,
    execution_balance,
    position_info,
    trader_info,
    unrealized_pnls,
)
from .errors import OpenApiError, OpenApiErrorResponse, OpenApiRequestTimeout, OpenApiTransportError
from .messages import ERROR_PAYLOAD_TYPES, Envelope, EnvelopeError, PayloadType, decode, encode
from .pacing import PRIORITY_BULK, PRIORITY_CONTROL, PRIORITY_DEFAULT, RatePacer

# The names callers import from here: the connection, its errors, its pacing and its answers' records.
__all__ = [
    "MAX_FRAME_BYTES",
    "PRIORITY_BULK",
    "PRIORITY_CONTROL",
    "PRIORITY_DEFAULT",
    "AccountInfo",
    "EventCallback",
    "OpenApiConnection",
    "OpenApiError",
    "OpenApiErrorResponse",
    "OpenApiRequestTimeout",
    "OpenApiTransportError",
    "PositionInfo",
    "PositionPnl",
    "RatePacer",
    "TraderInfo",
    "execution_balance",
    "position_info",
    "trader_info",
    "unrealized_pnls",
    "websockets_logger",
]

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


class OpenApiConnection(OpenApiCalls):
    def __init__(
        self,
        ws: ClientConnection,
        *,
        request_timeout: float,
        heartbeat_interval: float,
        max_requests_per_second: int,
        on_event: EventCallback | None,
        pacer_margin: float = 0.1,
        silence_heartbeats: float = 3.0,
    ) -> None:
        self._ws = ws
        self.request_timeout = request_timeout
        self.heartbeat_interval = heartbeat_interval
        self.silence_limit = heartbeat_interval * silence_heartbeats
        self.last_received = time.monotonic()
        self.pacer = RatePacer(max_requests_per_second, margin=pacer_margin)
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
        pacer_margin: float = 0.1,
        silence_heartbeats: float = 3.0,
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
            pacer_margin=pacer_margin,
            silence_heartbeats=silence_heartbeats,
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
        connection._tasks.append(asyncio.create_task(connection._watchdog(), name="openapi-watchdog"))
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
            if (
                task.get_name() in ("openapi-heartbeat", "openapi-watchdog")
                and task is not asyncio.current_task()
            ):
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
        self, payload_type: int, payload: dict[str, Any], **options: Unpack[RequestOptions]
    ) -> dict[str, Any]:
        """Send one request and return the payload of its response.

        The timeout runs from the moment the frame is written, not while it waits for its turn under the
        rate limit, so a long paced backlog does not time out.
        """
        return (await self.request_envelope(payload_type, payload, **options)).payload

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
                self.last_received = time.monotonic()
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

    async def _watchdog(self) -> None:
        """Close a connection that has gone silent, whatever the WebSocket library's pings say.

        Spotware sends heartbeats; a socket that delivers no frame of any kind for ``silence_heartbeats``
        heartbeat intervals is dead in practice (a half-open TCP connection, a stuck proxy). After one silent
        interval a cheap request probes it, so a server that stays quiet while healthy still answers.
        """
        probed = False
        while not self._closed.is_set():
            await asyncio.sleep(min(self.heartbeat_interval, self.silence_limit) / 2)
            silent = time.monotonic() - self.last_received
            if silent >= self.silence_limit:
                logger.warning(
                    "openapi connection silent: closing", extra={"silent_seconds": round(silent, 1)}
                )
                self._shutdown(f"no frame for {silent:.1f} s")
                with contextlib.suppress(Exception):
                    await self._ws.close()
                return
            if silent >= self.heartbeat_interval and not probed:
                probed = True
                with contextlib.suppress(OpenApiTransportError):
                    self._enqueue(PayloadType.VERSION_REQ, {}, track=False, priority=PRIORITY_CONTROL)
            elif silent < self.heartbeat_interval:
                probed = False
