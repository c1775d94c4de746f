"""A simulated cTrader Open API host (JSON over WebSocket), one per environment, backed by a shared World.

It speaks the JSON envelope like Spotware's port 5036: application auth first (everything before it is
refused), token-only calls (cTID profile, account list), account auth only for accounts of its own
environment that the token grants, trader info, asset list, logout, in-band refresh and heartbeats. It
records every frame it receives (connection id and time) so tests can assert exactly what a client sent,
and it can be told to push each event, fail the next request of a type, drop a socket or refuse the app.

Run it inside an asyncio loop (``await sim.start()``) or in a thread of its own (``sim.start_in_thread()``,
``sim.stop()``) for synchronous tests and the sandbox process. Control methods are safe to call from any
thread: from another thread they wait until the simulator has acted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from accounts.ctrader.openapi.client import websockets_logger
from accounts.ctrader.openapi.messages import EnvelopeError, PayloadType, decode, encode
from sandbox.world import SimAccount, World

logger = logging.getLogger(__name__)

Environment = Literal["live", "demo"]

# Asset ids as the simulated broker numbers its deposit currencies.
ASSET_IDS = {"EUR": 1, "GBP": 2, "JPY": 4, "CHF": 6, "AUD": 8, "CAD": 10, "USD": 15, "BTC": 22}


@dataclass(frozen=True)
class Received:
    """One frame the simulator received."""

    connection_id: int
    at: float  # time.monotonic()
    payload_type: int
    client_msg_id: str | None
    payload: dict[str, Any]


@dataclass
class _Failure:
    error_code: str
    description: str
    retry_after: float | None
    maintenance_end: float | None  # epoch seconds
    common: bool  # ProtoErrorRes (50) instead of ProtoOAErrorRes (2142)


@dataclass
class _Session:
    id: int
    ws: ServerConnection
    app_authorized: bool = False
    accounts: dict[int, str] = field(default_factory=dict)  # ctidTraderAccountId -> access token used


def asset_id(name: str) -> int:
    return ASSET_IDS.get(name, 1000 + sum(ord(c) for c in name))


class OpenApiSimulator:
    def __init__(
        self,
        world: World,
        environment: Environment,
        *,
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",  # noqa: S107 - the sandbox's published credentials
        heartbeat_interval: float | None = 10.0,
    ) -> None:
        if environment not in ("live", "demo"):
            raise ValueError("environment must be 'live' or 'demo'")
        self.world = world
        self.environment: Environment = environment
        self.client_id = client_id
        self.client_secret = client_secret
        self.heartbeat_interval = heartbeat_interval
        self.url = ""
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._sessions: dict[int, _Session] = {}
        self._ids = itertools.count(1)
        self._failures: dict[int, deque[_Failure]] = defaultdict(deque)
        self._refuse_app_auth = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.connections_opened = 0

    # --- start and stop ---
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._loop = asyncio.get_running_loop()
        self._server = await serve(
            self._handle,
            host,
            port,
            compression=None,
            max_size=16 * 1024 * 1024,
            ping_interval=None,
            logger=websockets_logger("websockets.server"),
        )
        bound_port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://{host}:{bound_port}"
        self.world.rotation_listeners.append(self._on_rotation)
        logger.info("openapi simulator listening", extra={"environment": self.environment, "url": self.url})
        return self.url

    async def aclose(self) -> None:
        with contextlib.suppress(ValueError):
            self.world.rotation_listeners.remove(self._on_rotation)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> str:
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                ready.set_result(loop.run_until_complete(self.start(host, port)))
            except BaseException as exc:
                ready.set_exception(exc)
                loop.close()
                return
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"openapi-sim-{self.environment}", daemon=True)
        self._thread.start()
        return ready.result(timeout=10)

    def stop(self) -> None:
        """Stop a simulator started with start_in_thread()."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None

    # --- what was received ---
    def received(
        self, payload_type: int | None = None, *, connection_id: int | None = None
    ) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self._received
                if (payload_type is None or r.payload_type == payload_type)
                and (connection_id is None or r.connection_id == connection_id)
            ]

    def clear_received(self) -> None:
        with self._lock:
            self._received.clear()

    def connection_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._sessions)

    def authorized_accounts(self, connection_id: int | None = None) -> set[int]:
        with self._lock:
            return {
                account_id
                for session in self._sessions.values()
                if connection_id is None or session.id == connection_id
                for account_id in session.accounts
            }

    def summary(self) -> dict[str, Any]:
        """A view for the sandbox control page, without any token."""
        with self._lock:
            return {
                "environment": self.environment,
                "url": self.url,
                "connections": [
                    {"id": s.id, "app_authorized": s.app_authorized, "accounts": sorted(s.accounts)}
                    for s in self._sessions.values()
                ],
                "received": len(self._received),
                "refusing_app_auth": self._refuse_app_auth,
            }

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the simulator did not reach the expected state")
            await asyncio.sleep(0.01)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the simulator did not reach the expected state")
            time.sleep(0.01)

    # --- control ---
    def fail_next(
        self,
        payload_type: int,
        error_code: str,
        *,
        description: str = "",
        retry_after: float | None = None,
        maintenance_end: float | None = None,
        common: bool = False,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests of ``payload_type`` with this error instead of serving them."""
        failure = _Failure(error_code, description, retry_after, maintenance_end, common)
        with self._lock:
            self._failures[int(payload_type)].extend([failure] * times)

    def refuse_app_auth(self, refuse: bool = True) -> None:
        with self._lock:
            self._refuse_app_auth = refuse

    def account_disconnect(self, ctid_trader_account_id: int) -> Any:
        """ProtoOAAccountDisconnectEvent on every connection where the account has a session."""

        async def act() -> None:
            for session in self._sessions_with([ctid_trader_account_id]):
                with self._lock:
                    session.accounts.pop(ctid_trader_account_id, None)
                await self._send(
                    session,
                    PayloadType.ACCOUNT_DISCONNECT_EVENT,
                    {"ctidTraderAccountId": ctid_trader_account_id},
                )

        return self._call(act)

    def client_disconnect(self, reason: str = "", *, connection_id: int | None = None) -> Any:
        """ProtoOAClientDisconnectEvent, then close the socket (all connections unless one is named)."""

        async def act() -> None:
            for session in self._sessions_matching(connection_id):
                with self._lock:
                    session.accounts.clear()
                payload = {"reason": reason} if reason else {}
                await self._send(session, PayloadType.CLIENT_DISCONNECT_EVENT, payload)
                await session.ws.close(1000, "client disconnected")

        return self._call(act)

    def tokens_invalidated(
        self, ctid_trader_account_ids: Iterable[int], reason: str = "Access token was invalidated"
    ) -> Any:
        """ProtoOAAccountsTokenInvalidatedEvent for the listed accounts, on the connections that have them."""
        ids = list(ctid_trader_account_ids)

        async def act() -> None:
            await self._invalidate(ids, reason)

        return self._call(act)

    def trader_updated(self, ctid_trader_account_id: int) -> Any:
        """ProtoOATraderUpdatedEvent with the World's current balance."""

        async def act() -> None:
            account = self.world.account(ctid_trader_account_id)
            if account is None:
                return
            for session in self._sessions_with([ctid_trader_account_id]):
                await self._send(
                    session,
                    PayloadType.TRADER_UPDATED_EVENT,
                    {"ctidTraderAccountId": ctid_trader_account_id, "trader": self._trader(account)},
                )

        return self._call(act)

    def drop(self, *, connection_id: int | None = None) -> Any:
        """Cut the TCP connection without any event or close frame."""

        async def act() -> None:
            for session in self._sessions_matching(connection_id):
                with self._lock:
                    session.accounts.clear()
                transport = session.ws.transport
                if transport is not None:
                    transport.abort()

        return self._call(act)

    def _call(self, act: Callable[[], Coroutine[Any, Any, None]]) -> Any:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the simulator is not running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return asyncio.ensure_future(act())
        return asyncio.run_coroutine_threadsafe(act(), loop).result(timeout=10)

    def _sessions_matching(self, connection_id: int | None) -> list[_Session]:
        with self._lock:
            return [s for s in self._sessions.values() if connection_id is None or s.id == connection_id]

    def _sessions_with(self, account_ids: Iterable[int]) -> list[_Session]:
        wanted = set(account_ids)
        with self._lock:
            return [s for s in self._sessions.values() if wanted & set(s.accounts)]

    async def _invalidate(self, account_ids: list[int], reason: str) -> None:
        for session in self._sessions_with(account_ids):
            with self._lock:
                ended = [a for a in account_ids if session.accounts.pop(a, None) is not None]
            if not ended:
                continue
            await self._send(
                session,
                PayloadType.ACCOUNTS_TOKEN_INVALIDATED_EVENT,
                {"ctidTraderAccountIds": ended, "reason": reason},
            )

    def _on_rotation(self, user_id: int) -> None:
        """A refresh ended the old access token: its sessions end, as Spotware announces with event 2147."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self.world.lock:
            ctid = self.world.ctids.get(user_id)
            owned = {a.ctid_trader_account_id for a in ctid.accounts} if ctid else set()
        with self._lock:
            ids = sorted({a for s in self._sessions.values() for a in s.accounts if a in owned})
        if ids:
            asyncio.run_coroutine_threadsafe(self._invalidate(ids, "Access token was refreshed"), loop)

    # --- the protocol ---
    async def _handle(self, ws: ServerConnection) -> None:
        session = _Session(next(self._ids), ws)
        with self._lock:
            self._sessions[session.id] = session
            self.connections_opened += 1
        heartbeat = asyncio.create_task(self._heartbeat(session)) if self.heartbeat_interval else None
        try:
            async for frame in ws:
                at = time.monotonic()
                try:
                    envelope = decode(frame)
                except EnvelopeError as exc:
                    await self._error(session, None, "INVALID_REQUEST", str(exc), common=True)
                    continue
                with self._lock:
                    self._received.append(
                        Received(
                            session.id, at, envelope.payload_type, envelope.client_msg_id, envelope.payload
                        )
                    )
                await self._respond(session, envelope.payload_type, envelope.payload, envelope.client_msg_id)
        except ConnectionClosed:
            pass
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            with self._lock:
                self._sessions.pop(session.id, None)

    async def _heartbeat(self, session: _Session) -> None:
        assert self.heartbeat_interval is not None
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.heartbeat_interval)
                await self._send(session, PayloadType.HEARTBEAT_EVENT, {})

    async def _send(
        self, session: _Session, payload_type: int, payload: dict[str, Any], client_msg_id: str | None = None
    ) -> None:
        with contextlib.suppress(ConnectionClosed):
            await session.ws.send(encode(payload_type, payload, client_msg_id))

    async def _error(
        self,
        session: _Session,
        client_msg_id: str | None,
        error_code: str,
        description: str = "",
        *,
        common: bool = False,
        account_id: int | None = None,
        retry_after: float | None = None,
        maintenance_end: float | None = None,
    ) -> None:
        payload: dict[str, Any] = {"errorCode": error_code}
        if description:
            payload["description"] = description
        if common:
            if maintenance_end is not None:
                payload["maintenanceEndTimestamp"] = int(
                    maintenance_end * 1000
                )  # milliseconds in ProtoErrorRes
            await self._send(session, PayloadType.ERROR_RES, payload, client_msg_id)
            return
        if account_id is not None:
            payload["ctidTraderAccountId"] = account_id
        if maintenance_end is not None:
            payload["maintenanceEndTimestamp"] = int(maintenance_end)  # seconds in ProtoOAErrorRes
        if retry_after is not None:
            payload["retryAfter"] = int(retry_after) if float(retry_after).is_integer() else retry_after
        await self._send(session, PayloadType.OA_ERROR_RES, payload, client_msg_id)

    async def _respond(
        self, session: _Session, payload_type: int, payload: dict[str, Any], msg_id: str | None
    ) -> None:
        if payload_type == PayloadType.HEARTBEAT_EVENT:
            return
        with self._lock:
            queue = self._failures.get(payload_type)
            failure = queue.popleft() if queue else None
        if failure is not None:
            await self._error(
                session,
                msg_id,
                failure.error_code,
                failure.description,
                common=failure.common,
                account_id=_account_id(payload),
                retry_after=failure.retry_after,
                maintenance_end=failure.maintenance_end,
            )
            return

        if payload_type == PayloadType.APPLICATION_AUTH_REQ:
            with self._lock:
                refused = self._refuse_app_auth
            if session.app_authorized:
                await self._error(session, msg_id, "CH_CLIENT_ALREADY_AUTHENTICATED", "Already authenticated")
            elif refused or (payload.get("clientId"), payload.get("clientSecret")) != (
                self.client_id,
                self.client_secret,
            ):
                await self._error(session, msg_id, "CH_CLIENT_AUTH_FAILURE", "Client authentication failure")
            else:
                session.app_authorized = True
                await self._send(session, PayloadType.APPLICATION_AUTH_RES, {}, msg_id)
            return
        if not session.app_authorized:
            await self._error(session, msg_id, "CH_CLIENT_NOT_AUTHENTICATED", "Application is not authorized")
            return

        if payload_type == PayloadType.VERSION_REQ:
            await self._send(session, PayloadType.VERSION_RES, {"version": "sandbox"}, msg_id)
        elif payload_type == PayloadType.GET_CTID_PROFILE_BY_TOKEN_REQ:
            grant = self.world.grant_for_access_token(str(payload.get("accessToken") or ""))
            if grant is None:
                await self._error(session, msg_id, "CH_ACCESS_TOKEN_INVALID", "Invalid access token")
            else:
                await self._send(
                    session,
                    PayloadType.GET_CTID_PROFILE_BY_TOKEN_RES,
                    {"profile": {"userId": grant.user_id}},
                    msg_id,
                )
        elif payload_type == PayloadType.GET_ACCOUNTS_BY_ACCESS_TOKEN_REQ:
            await self._account_list(session, payload, msg_id)
        elif payload_type == PayloadType.ACCOUNT_AUTH_REQ:
            await self._account_auth(session, payload, msg_id)
        elif payload_type == PayloadType.ACCOUNT_LOGOUT_REQ:
            account_id = _account_id(payload)
            if account_id is None or account_id not in session.accounts:
                await self._error(session, msg_id, "ACCOUNT_NOT_AUTHORIZED", account_id=account_id)
                return
            with self._lock:
                session.accounts.pop(account_id, None)
            await self._send(
                session, PayloadType.ACCOUNT_LOGOUT_RES, {"ctidTraderAccountId": account_id}, msg_id
            )
            await self._send(
                session, PayloadType.ACCOUNT_DISCONNECT_EVENT, {"ctidTraderAccountId": account_id}
            )
        elif payload_type in (PayloadType.TRADER_REQ, PayloadType.ASSET_LIST_REQ):
            account_id = _account_id(payload)
            account = self.world.account(account_id) if account_id is not None else None
            if account is None or account_id not in session.accounts:
                await self._error(
                    session, msg_id, "ACCOUNT_NOT_AUTHORIZED", "Trading account is not authorized",
                    account_id=account_id,
                )  # fmt: skip
            elif payload_type == PayloadType.TRADER_REQ:
                await self._send(
                    session,
                    PayloadType.TRADER_RES,
                    {"ctidTraderAccountId": account_id, "trader": self._trader(account)},
                    msg_id,
                )
            else:
                assets = [
                    {"assetId": asset_id(name), "name": name, "displayName": name, "digits": 2}
                    for name in sorted({*ASSET_IDS, account.deposit_asset})
                ]
                await self._send(
                    session,
                    PayloadType.ASSET_LIST_RES,
                    {"ctidTraderAccountId": account_id, "asset": assets},
                    msg_id,
                )
        elif payload_type == PayloadType.REFRESH_TOKEN_REQ:
            issued = self.world.rotate(str(payload.get("refreshToken") or ""))
            if issued is None:
                await self._error(session, msg_id, "CH_ACCESS_TOKEN_INVALID", "Invalid refresh token")
            else:
                await self._send(
                    session,
                    PayloadType.REFRESH_TOKEN_RES,
                    {
                        "accessToken": issued["accessToken"],
                        "refreshToken": issued["refreshToken"],
                        "expiresIn": issued["expiresIn"],
                        "tokenType": "bearer",
                    },
                    msg_id,
                )
        elif payload_type in (PayloadType.RECONCILE_REQ, PayloadType.GET_POSITION_UNREALIZED_PNL_REQ):
            await self._positions_request(session, payload_type, payload, msg_id)
        else:
            await self._error(
                session, msg_id, "UNSUPPORTED_MESSAGE", f"payloadType {payload_type}", common=True
            )

    async def _account_list(self, session: _Session, payload: dict[str, Any], msg_id: str | None) -> None:
        access_token = str(payload.get("accessToken") or "")
        grant = self.world.grant_for_access_token(access_token)
        if grant is None:
            await self._error(session, msg_id, "CH_ACCESS_TOKEN_INVALID", "Invalid access token")
            return
        with self.world.lock:
            ctid = self.world.ctids.get(grant.user_id)
            accounts = [
                a for a in (ctid.accounts if ctid else []) if a.ctid_trader_account_id in grant.account_ids
            ]
            listed = [
                {
                    "ctidTraderAccountId": a.ctid_trader_account_id,
                    "isLive": a.is_live,
                    "traderLogin": a.trader_login,
                    "brokerTitleShort": a.broker_title_short,
                }
                for a in accounts
            ]
        await self._send(
            session,
            PayloadType.GET_ACCOUNTS_BY_ACCESS_TOKEN_RES,
            {
                "accessToken": access_token,
                "permissionScope": "SCOPE_TRADE" if grant.scope == "trading" else "SCOPE_VIEW",
                "ctidTraderAccount": listed,
            },
            msg_id,
        )

    async def _account_auth(self, session: _Session, payload: dict[str, Any], msg_id: str | None) -> None:
        account_id = _account_id(payload)
        access_token = str(payload.get("accessToken") or "")
        grant = self.world.grant_for_access_token(access_token)
        account = self.world.account(account_id) if account_id is not None else None
        if grant is None:
            await self._error(
                session, msg_id, "CH_ACCESS_TOKEN_INVALID", "Invalid access token", account_id=account_id
            )
        elif account is None or account_id not in grant.account_ids:
            await self._error(
                session, msg_id, "CH_CTID_TRADER_ACCOUNT_NOT_FOUND", "Trading account not found",
                account_id=account_id,
            )  # fmt: skip
        elif account.is_live != (self.environment == "live"):
            await self._error(
                session,
                msg_id,
                "CANT_ROUTE_REQUEST",
                f"Account is not on the {self.environment} host",
                common=True,
            )
        elif not account.enabled:
            await self._error(
                session, msg_id, "RET_ACCOUNT_DISABLED", "Account is disabled", account_id=account_id
            )
        elif account_id in session.accounts:
            await self._error(
                session, msg_id, "ALREADY_LOGGED_IN", "Already logged in", account_id=account_id
            )
        else:
            assert account_id is not None
            with self._lock:
                session.accounts[account_id] = access_token
            await self._send(
                session, PayloadType.ACCOUNT_AUTH_RES, {"ctidTraderAccountId": account_id}, msg_id
            )

    async def _positions_request(
        self, session: _Session, payload_type: int, payload: dict[str, Any], msg_id: str | None
    ) -> None:
        """ProtoOAReconcileReq and ProtoOAGetPositionUnrealizedPnLReq on the World's open positions."""
        account_id = _account_id(payload)
        account = self.world.account(account_id) if account_id is not None else None
        if account is None or account_id not in session.accounts:
            await self._error(
                session, msg_id, "ACCOUNT_NOT_AUTHORIZED", "Trading account is not authorized",
                account_id=account_id,
            )  # fmt: skip
            return
        now = self.world.clock()
        with self.world.lock:
            positions = list(account.positions)
        if payload_type == PayloadType.RECONCILE_REQ:
            listed = [
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
            await self._send(
                session,
                PayloadType.RECONCILE_RES,
                {"ctidTraderAccountId": account_id, "position": listed, "order": []},
                msg_id,
            )
            return
        pnls = []
        for p in positions:
            gross, net = p.pnl(now)
            pnls.append({"positionId": p.position_id, "grossUnrealizedPnL": gross, "netUnrealizedPnL": net})
        await self._send(
            session,
            PayloadType.GET_POSITION_UNREALIZED_PNL_RES,
            {
                "ctidTraderAccountId": account_id,
                "positionUnrealizedPnL": pnls,
                "moneyDigits": account.money_digits,
            },
            msg_id,
        )

    @staticmethod
    def _trader(account: SimAccount) -> dict[str, Any]:
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


def _account_id(payload: dict[str, Any]) -> int | None:
    value = payload.get("ctidTraderAccountId")
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def received_as_json(records: Iterable[Received]) -> str:
    """The recorded frames as JSON lines with access tokens and secrets masked (for a control page)."""
    masked = {"accessToken", "clientSecret", "refreshToken"}
    return "\n".join(
        json.dumps(
            {
                "connection": r.connection_id,
                "payloadType": r.payload_type,
                "clientMsgId": r.client_msg_id,
                "payload": {k: ("***" if k in masked else v) for k, v in r.payload.items()},
            }
        )
        for r in records
    )
