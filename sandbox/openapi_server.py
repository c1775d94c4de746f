"""A simulated cTrader Open API host (JSON over WebSocket), one per environment, backed by a shared World.

It speaks the JSON envelope like Spotware's port 5036: application auth first (everything before it is
refused), token-only calls (cTID profile, account list), account auth only for accounts of its own
environment that the token grants, trader info, asset list, logout, in-band refresh and heartbeats. It
records every frame it receives (connection id and time) so tests can assert exactly what a client sent,
and it can be told to push each event, fail the next request of a type, drop a socket or refuse the app.

Run it inside an asyncio loop (``await sim.start()``) or in a thread of its own (``sim.start_in_thread()``,
``sim.stop()``) for synchronous tests and the sandbox process. Control methods are safe to call from any
thread: from another thread they wait until the simulator has acted.

Each request type has one handler, listed in the simulator's dispatch table; the bookkeeping of connections,
frames and planned failures is in ``openapi_state`` and the wire shapes of accounts and positions in
``openapi_payloads``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Literal

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from accounts.ctrader.openapi.client import websockets_logger
from accounts.ctrader.openapi.messages import EnvelopeError, PayloadType, decode, encode
from sandbox import openapi_payloads as payloads
from sandbox.openapi_state import Received, Session, SimulatorState
from sandbox.world import SimAccount, World

logger = logging.getLogger(__name__)

Environment = Literal["live", "demo"]


# Answers one request: (the connection, the request's payload, its clientMsgId).
_Handler = Callable[[Session, dict[str, Any], str | None], Awaitable[None]]


class OpenApiSimulator(SimulatorState):
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
        super().__init__()
        self.world = world
        self.environment: Environment = environment
        self.client_id = client_id
        self.client_secret = client_secret
        self.heartbeat_interval = heartbeat_interval
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        # While set, requests are recorded but not answered until release() (a slow Open API).
        self._held: asyncio.Event | None = None
        self.answers_sent = 0
        # What answers each request type; anything else is UNSUPPORTED_MESSAGE.
        self._handlers: dict[int, _Handler] = {
            PayloadType.APPLICATION_AUTH_REQ: self._application_auth,
            PayloadType.VERSION_REQ: self._version,
            PayloadType.GET_CTID_PROFILE_BY_TOKEN_REQ: self._ctid_profile,
            PayloadType.GET_ACCOUNTS_BY_ACCESS_TOKEN_REQ: self._account_list,
            PayloadType.ACCOUNT_AUTH_REQ: self._account_auth,
            PayloadType.ACCOUNT_LOGOUT_REQ: self._account_logout,
            PayloadType.TRADER_REQ: self._trader_info,
            PayloadType.ASSET_LIST_REQ: self._asset_list,
            PayloadType.REFRESH_TOKEN_REQ: self._refresh_token,
            PayloadType.RECONCILE_REQ: self._reconcile,
            PayloadType.GET_POSITION_UNREALIZED_PNL_REQ: self._unrealized_pnl,
        }

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

    # --- control ---
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
        return self._account_event(
            ctid_trader_account_id,
            PayloadType.TRADER_UPDATED_EVENT,
            lambda account: {"trader": payloads.trader(account)},
        )

    def execution_event(self, ctid_trader_account_id: int) -> Any:
        """ProtoOAExecutionEvent of a deposit carrying the World's current balance and balanceVersion."""
        return self._account_event(ctid_trader_account_id, PayloadType.EXECUTION_EVENT, payloads.deposit)

    def _account_event(
        self,
        ctid_trader_account_id: int,
        payload_type: int,
        fields: Callable[[SimAccount], dict[str, Any]],
    ) -> Any:
        """An event about one account of the World, on every connection where it has a session."""

        async def act() -> None:
            account = self.world.account(ctid_trader_account_id)
            if account is None:
                return
            payload = {"ctidTraderAccountId": ctid_trader_account_id, **fields(account)}
            for session in self._sessions_with([ctid_trader_account_id]):
                await self._send(session, payload_type, payload)

        return self._call(act)

    def hold(self) -> Any:
        """Answer nothing until release(): requests wait, as on a slow or overloaded Open API."""

        async def act() -> None:
            self._held = asyncio.Event()

        return self._call(act)

    def release(self) -> Any:
        async def act() -> None:
            held, self._held = self._held, None
            if held is not None:
                held.set()

        return self._call(act)

    def go_silent(self, *, connection_id: int | None = None) -> Any:
        """Stop sending anything on the connection(s), heartbeats included, and keep the socket open."""

        async def act() -> None:
            for session in self._sessions_matching(connection_id):
                session.silent = True

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
        session = self._open_session(ws)
        heartbeat = asyncio.create_task(self._heartbeat(session)) if self.heartbeat_interval else None
        try:
            async for frame in ws:
                at = time.monotonic()
                try:
                    envelope = decode(frame)
                except EnvelopeError as exc:
                    await self._error(session, None, "INVALID_REQUEST", str(exc), common=True)
                    continue
                self._record(
                    Received(session.id, at, envelope.payload_type, envelope.client_msg_id, envelope.payload)
                )
                held = self._held
                if held is not None and envelope.payload_type != PayloadType.HEARTBEAT_EVENT:
                    await held.wait()
                await self._respond(session, envelope.payload_type, envelope.payload, envelope.client_msg_id)
        except ConnectionClosed:
            pass
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            self._close_session(session)

    async def _heartbeat(self, session: Session) -> None:
        assert self.heartbeat_interval is not None
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.heartbeat_interval)
                await self._send(session, PayloadType.HEARTBEAT_EVENT, {})

    async def _send(
        self, session: Session, payload_type: int, payload: dict[str, Any], client_msg_id: str | None = None
    ) -> None:
        if session.silent:
            return
        if client_msg_id is not None:
            self.answers_sent += 1
        with contextlib.suppress(ConnectionClosed):
            await session.ws.send(encode(payload_type, payload, client_msg_id))

    async def _error(
        self,
        session: Session,
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
        self, session: Session, payload_type: int, payload: dict[str, Any], msg_id: str | None
    ) -> None:
        if payload_type == PayloadType.HEARTBEAT_EVENT:
            return
        failure = self._next_failure(payload_type)
        if failure is not None:
            await self._error(
                session,
                msg_id,
                failure.error_code,
                failure.description,
                common=failure.common,
                account_id=payloads.account_id(payload),
                retry_after=failure.retry_after,
                maintenance_end=failure.maintenance_end,
            )
            return
        if not session.app_authorized and payload_type != PayloadType.APPLICATION_AUTH_REQ:
            await self._error(session, msg_id, "CH_CLIENT_NOT_AUTHENTICATED", "Application is not authorized")
            return
        handler = self._handlers.get(payload_type)
        if handler is None:
            await self._error(
                session, msg_id, "UNSUPPORTED_MESSAGE", f"payloadType {payload_type}", common=True
            )
            return
        await handler(session, payload, msg_id)

    # --- one handler a request type ---
    async def _application_auth(self, session: Session, payload: dict[str, Any], msg_id: str | None) -> None:
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

    async def _version(self, session: Session, payload: dict[str, Any], msg_id: str | None) -> None:
        await self._send(session, PayloadType.VERSION_RES, {"version": "sandbox"}, msg_id)

    async def _ctid_profile(self, session: Session, payload: dict[str, Any], msg_id: str | None) -> None:
        grant = self.world.grant_for_access_token(str(payload.get("accessToken") or ""))
        if grant is None:
            await self._error(session, msg_id, "CH_ACCESS_TOKEN_INVALID", "Invalid access token")
            return
        profile = {"profile": {"userId": grant.user_id}}
        await self._send(session, PayloadType.GET_CTID_PROFILE_BY_TOKEN_RES, profile, msg_id)

    async def _account_list(self, session: Session, payload: dict[str, Any], msg_id: str | None) -> None:
        access_token = str(payload.get("accessToken") or "")
        grant = self.world.grant_for_access_token(access_token)
        if grant is None:
            await self._error(session, msg_id, "CH_ACCESS_TOKEN_INVALID", "Invalid access token")
            return
        with self.world.lock:
            ctid = self.world.ctids.get(grant.user_id)
            listed = payloads.listed_accounts(
                a for a in (ctid.accounts if ctid else []) if a.ctid_trader_account_id in grant.account_ids
            )
        answer = {
            "accessToken": access_token,
            "permissionScope": "SCOPE_TRADE" if grant.scope == "trading" else "SCOPE_VIEW",
            "ctidTraderAccount": listed,
        }
        await self._send(session, PayloadType.GET_ACCOUNTS_BY_ACCESS_TOKEN_RES, answer, msg_id)

    async def _account_auth(self, session: Session, payload: dict[str, Any], msg_id: str | None) -> None:
        account_id = payloads.account_id(payload)
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
                for other in self._sessions.values():
                    if other is not session and account_id in other.accounts:
                        self.double_holds.append((account_id, other.id, session.id))
                session.accounts[account_id] = access_token
            await self._answer(session, msg_id, PayloadType.ACCOUNT_AUTH_RES, account_id)

    async def _account_logout(self, session: Session, payload: dict[str, Any], msg_id: str | None) -> None:
        account_id = payloads.account_id(payload)
        if account_id is None or account_id not in session.accounts:
            await self._error(session, msg_id, "ACCOUNT_NOT_AUTHORIZED", account_id=account_id)
            return
        with self._lock:
            session.accounts.pop(account_id, None)
        await self._answer(session, msg_id, PayloadType.ACCOUNT_LOGOUT_RES, account_id)
        await self._send(session, PayloadType.ACCOUNT_DISCONNECT_EVENT, {"ctidTraderAccountId": account_id})

    async def _trader_info(self, session: Session, payload: dict[str, Any], msg_id: str | None) -> None:
        if found := await self._authorized_account(session, payload, msg_id):
            account_id, account = found
            trader = payloads.trader(account)
            await self._answer(session, msg_id, PayloadType.TRADER_RES, account_id, trader=trader)

    async def _asset_list(self, session: Session, payload: dict[str, Any], msg_id: str | None) -> None:
        if found := await self._authorized_account(session, payload, msg_id):
            account_id, account = found
            asset = payloads.assets(account)
            await self._answer(session, msg_id, PayloadType.ASSET_LIST_RES, account_id, asset=asset)

    async def _refresh_token(self, session: Session, payload: dict[str, Any], msg_id: str | None) -> None:
        issued = self.world.rotate(str(payload.get("refreshToken") or ""))
        if issued is None:
            await self._error(session, msg_id, "CH_ACCESS_TOKEN_INVALID", "Invalid refresh token")
            return
        answer = {
            "accessToken": issued["accessToken"],
            "refreshToken": issued["refreshToken"],
            "expiresIn": issued["expiresIn"],
            "tokenType": "bearer",
        }
        await self._send(session, PayloadType.REFRESH_TOKEN_RES, answer, msg_id)

    async def _reconcile(self, session: Session, payload: dict[str, Any], msg_id: str | None) -> None:
        """ProtoOAReconcileReq on the World's open positions."""
        if found := await self._authorized_account(session, payload, msg_id):
            account_id, account = found
            with self.world.lock:
                position = payloads.open_positions(account, list(account.positions))
            await self._answer(
                session, msg_id, PayloadType.RECONCILE_RES, account_id, position=position, order=[]
            )

    async def _unrealized_pnl(self, session: Session, payload: dict[str, Any], msg_id: str | None) -> None:
        """ProtoOAGetPositionUnrealizedPnLReq on the World's open positions, at the World's clock."""
        if found := await self._authorized_account(session, payload, msg_id):
            account_id, account = found
            now = self.world.clock()
            with self.world.lock:
                positions = list(account.positions)
            await self._answer(
                session,
                msg_id,
                PayloadType.GET_POSITION_UNREALIZED_PNL_RES,
                account_id,
                positionUnrealizedPnL=payloads.unrealized_pnls(positions, now),
                moneyDigits=account.money_digits,
            )

    async def _authorized_account(
        self, session: Session, payload: dict[str, Any], msg_id: str | None
    ) -> tuple[int, SimAccount] | None:
        """The account a request names if this connection has authorized it; else the error is sent."""
        account_id = payloads.account_id(payload)
        account = self.world.account(account_id) if account_id is not None else None
        if account is None or account_id not in session.accounts:
            await self._error(
                session, msg_id, "ACCOUNT_NOT_AUTHORIZED", "Trading account is not authorized",
                account_id=account_id,
            )  # fmt: skip
            return None
        assert account_id is not None
        return account_id, account

    async def _answer(
        self, session: Session, msg_id: str | None, payload_type: int, account_id: int, **fields: Any
    ) -> None:
        """A response about one account: its ``ctidTraderAccountId`` first, then ``fields``."""
        await self._send(session, payload_type, {"ctidTraderAccountId": account_id, **fields}, msg_id)
