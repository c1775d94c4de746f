"""The long-lived Open API gateway: one connection per environment that keeps every usable account authorized.

Django-free: everything it needs from the database goes through a ``GatewayStore`` (see
``accounts.services.gateway`` for the Django one). Per environment an ``EnvironmentGateway`` connects
(application auth first), authorizes each account of its environment at the paced rate, reads its trader
info, and then reacts to the server:

- ProtoOAAccountDisconnectEvent: re-authorize that account, with backoff if it keeps happening.
- ProtoOAClientDisconnectEvent or a dropped socket: reconnect with exponential backoff and jitter, then
  authorize every account again. A refused application auth stops the environment and raises an alert.
- ProtoOAAccountsTokenInvalidatedEvent: re-authorize with the stored token if it is newer than the one the
  session used, otherwise refresh through the single-flight service first.
- ProtoOATraderUpdatedEvent: store the new balance.

Every account has at most one authorization flow running at a time; events only mark what is needed and
start the flow. The socket is ordered, so an event received before an account's AccountAuthRes concerns an
older session and is ignored for that account (``Envelope.seq``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from ..backoff import backoff_delay
from .client import (
    PRIORITY_BULK,
    OpenApiConnection,
    OpenApiError,
    OpenApiErrorResponse,
    OpenApiTransportError,
    TraderInfo,
    execution_balance,
    trader_info,
)
from .messages import Envelope, ErrorKind, PayloadType, classify_error

logger = logging.getLogger(__name__)

Environment = Literal["live", "demo"]

EVENT_NAMES = {
    PayloadType.ACCOUNT_DISCONNECT_EVENT: "AccountDisconnect",
    PayloadType.CLIENT_DISCONNECT_EVENT: "ClientDisconnect",
    PayloadType.ACCOUNTS_TOKEN_INVALIDATED_EVENT: "AccountsTokenInvalidated",
    PayloadType.TRADER_UPDATED_EVENT: "TraderUpdated",
    PayloadType.EXECUTION_EVENT: "Execution",
}


@dataclass(frozen=True)
class AccountTarget:
    """An account the gateway should keep authorized, with the token to use."""

    ctid_trader_account_id: int
    ctid_id: int
    is_live: bool
    token_version: int
    access_token: str = field(repr=False)


class TokenRenewal(enum.Enum):
    """What the gateway learns from asking for a newer token of a cTID."""

    REFRESHED = "refreshed"  # a newer token is stored (by this refresh or by someone else)
    DEAD = "dead"  # the chain is dead; the cTID needs a new consent
    TRANSIENT = "transient"  # nothing changed; try again later


class GatewayStore(Protocol):
    """What the gateway reads and writes. Every method may do I/O; none may block the event loop."""

    async def snapshot(self) -> Hashable:
        """A cheap value that changes whenever the set of usable accounts or their tokens may have changed."""

    async def load_targets(
        self, environment: Environment, ctid_ids: set[int] | None = None
    ) -> dict[int, AccountTarget]:
        """Every usable account of the environment (of these cTIDs only, when given): token active, cTID
        connected, trader not suspended, account active. With leases, only the cTIDs this process holds."""

    async def load_target(self, ctid_trader_account_id: int) -> AccountTarget | None:
        """The current target of one account, or None when it is no longer usable."""

    async def refresh_token(self, *, ctid_id: int, seen_version: int, reason: str) -> TokenRenewal:
        """Refresh the cTID's token through the single-flight service (unless a newer one is stored)."""

    async def mark_ctid_needs_reconnect(self, *, ctid_id: int, reason: str) -> None: ...

    async def mark_account(self, *, ctid_trader_account_id: int, status: str, reason: str) -> None:
        """``status`` is "gone" or "disabled"."""

    async def save_trader(self, *, info: TraderInfo, currency: str) -> None: ...

    async def save_status(self, *, environment: Environment, **fields: Any) -> None: ...

    async def alert(self, *, environment: Environment, action: str, message: str) -> None:
        """Something staff must act on (the application was refused)."""


class ApplicationRefused(Exception):
    """The Open API refused the application and the gateway was told to stop on refusal."""

    def __init__(self, environment: str, error_code: str) -> None:
        self.environment = environment
        self.error_code = error_code
        super().__init__(f"application auth refused on {environment}: {error_code}")


@dataclass(frozen=True)
class LeasePlan:
    """What one lease tick decided (see ``accounts.services.gateway_leases``)."""

    held: frozenset[int]  # cTIDs (ids) this process holds
    release: tuple[int, ...] = ()  # cTIDs to hand back once their accounts are logged out
    processes: int = 1
    lost: bool = False  # the lease ran out: drop everything before anything else


class LeaseStore(Protocol):
    """How gateway processes divide the cTIDs among themselves, and the change feed."""

    async def lease_register(self, *, environments: list[str], lease_seconds: float) -> None: ...

    async def lease_tick(self, *, lease_seconds: float, claim: bool, stats: dict[str, Any]) -> LeasePlan: ...

    async def lease_release(self, ctid_ids: list[int]) -> None: ...

    async def lease_end(self) -> None: ...

    async def changes_start(self) -> int | None:
        """The current end of the change feed, or None where there is none (then poll the snapshot)."""

    async def changes(self, cursor: int) -> tuple[int, set[int]]:
        """cTIDs changed after ``cursor``, and the new cursor."""

    async def wait_for_change(self, timeout: float) -> None:
        """Return when a change is announced (LISTEN/NOTIFY) or after ``timeout`` seconds."""


@dataclass
class GatewayConfig:
    client_id: str
    client_secret: str = field(repr=False)
    request_timeout: float = 10.0
    heartbeat_interval: float = 10.0
    max_requests_per_second: int = 50
    reconnect_base: float = 0.5
    reconnect_max: float = 60.0
    account_retry_base: float = 1.0
    account_retry_max: float = 300.0
    db_poll_seconds: float = 5.0
    status_interval: float = 1.0
    # Every reconnect waits at least this long, whatever the backoff base or a past maintenance end says.
    reconnect_floor: float = 1.0
    # Spread of reconnections after a maintenance window or a retryAfter (seconds, uniform).
    reconnect_spread: float = 5.0
    # Maintenance announced without an end: wait at least this long.
    maintenance_default_seconds: float = 60.0
    # A refused application (CH_CLIENT_AUTH_FAILURE, CH_OA_CLIENT_NOT_FOUND) is retried from 60 s up to 15 min.
    refused_retry_base: float = 60.0
    refused_retry_max: float = 900.0
    # Raise ApplicationRefused (the command exits non-zero) instead of retrying, for supervisors that restart.
    exit_on_refusal: bool = False
    # The pacer aims this fraction below max_requests_per_second.
    pacer_margin: float = 0.1
    # A connection with no frame of any kind for this many heartbeat intervals is closed and reconnected.
    silence_heartbeats: float = 3.0
    # Leases between gateway processes: a dead process's cTIDs move to the others after this long.
    lease_seconds: float = 30.0
    # Connections per environment in one process; cTIDs are spread over them by id.
    connections_per_environment: int = 1
    # At most this many cTIDs are handed to a joining process per lease tick (gradual rebalancing).
    rebalance_batch: int = 200
    # A full reload of the held accounts this often, whatever the change feed says (a safety net).
    full_reload_seconds: float = 600.0


@dataclass
class _Account:
    target: AccountTarget
    authorized: bool = False
    auth_seq: int = 0  # receive position of the AccountAuthRes of the current session
    authorized_at: float = 0.0
    version_used: int = 0
    failures: int = 0
    check_token: bool = False  # a token invalidation is pending: newer stored token, else refresh
    again: bool = False  # another authorization was asked for while a flow was running
    stopped: str = ""  # why the gateway stopped trying (account gone, wrong host, link broken)
    task: asyncio.Task[None] | None = None


class EnvironmentGateway:
    def __init__(
        self,
        environment: Environment,
        url: str,
        store: GatewayStore,
        config: GatewayConfig,
        *,
        connect: Callable[..., Awaitable[OpenApiConnection]] = OpenApiConnection.connect,
        slot: tuple[int, int] = (0, 1),
        leased: bool = False,
    ) -> None:
        self.environment: Environment = environment
        self.slot = slot  # (index, count): this connection serves the cTIDs whose id % count == index
        # With leases, only the cTIDs of ``held`` are served; None serves every account of the environment.
        self.held: frozenset[int] | None = frozenset() if leased else None
        self._changed: set[int] = set()  # cTIDs to reload from the store
        self._reload_all = False
        self._wake = asyncio.Event()
        self.url = url
        self.store = store
        self.config = config
        self._connect = connect
        self.conn: OpenApiConnection | None = None
        self.accounts: dict[int, _Account] = {}
        self._by_ctid: dict[int, set[int]] = {}  # cTID id -> its account ids in ``accounts``
        self.state = "starting"
        self.connected_since: datetime | None = None
        self.connections = 0
        self.maintenance_until: datetime | None = None
        self._refreshes: dict[int, asyncio.Task[TokenRenewal]] = {}
        self._assets: dict[str, dict[int, str]] = {}  # brokerName -> assetId -> name
        self._stopping = asyncio.Event()
        self._status_dirty = True
        self._status: dict[str, Any] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._closed_on_purpose = (
            False  # after ClientDisconnect or maintenance: the reason is already recorded
        )

    def _spawn(self, awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run in the background, keeping a reference so the task is not collected mid-way."""
        task = asyncio.ensure_future(awaitable)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --- lifecycle ---
    def stop(self) -> None:
        self._stopping.set()
        if self.conn is not None:
            self._spawn(self.conn.close())

    @property
    def authorized_count(self) -> int:
        return sum(1 for a in self.accounts.values() if a.authorized)

    async def run(self) -> None:
        status_task = asyncio.create_task(self._status_loop(), name=f"gateway-status-{self.environment}")
        poll_task = asyncio.create_task(self._poll_loop(), name=f"gateway-poll-{self.environment}")
        try:
            await self._connection_loop()
        finally:
            poll_task.cancel()
            await self._close_connection()
            if self.state != "app_auth_refused":
                self.state = "stopped"
            self._set_status(state=self.state, connected_since=None, authorized_accounts=0)
            status_task.cancel()
            await asyncio.gather(status_task, poll_task, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.store.save_status(environment=self.environment, **self._status)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; True when the gateway is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), max(seconds, 0))
        return self._stopping.is_set()

    async def _connection_loop(self) -> None:
        """Connect, serve, and after any end go through one backoff: no path reconnects at once.

        The wait before the next attempt is the exponential backoff with jitter (never below
        ``reconnect_floor``), stretched to the end of a maintenance window or a ``retryAfter`` plus a random
        spread, so processes and environments that leave maintenance together do not reconnect together.
        A refused application is retried slowly (``refused_retry_base`` growing to ``refused_retry_max``).
        """
        attempt = 0
        refusals = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            wait_at_least = 0.0
            try:
                self.conn = await self._connect(
                    self.url,
                    client_id=self.config.client_id,
                    client_secret=self.config.client_secret,
                    request_timeout=self.config.request_timeout,
                    heartbeat_interval=self.config.heartbeat_interval,
                    max_requests_per_second=self.config.max_requests_per_second,
                    pacer_margin=self.config.pacer_margin,
                    silence_heartbeats=self.config.silence_heartbeats,
                    on_event=self._on_event,
                )
            except OpenApiErrorResponse as exc:
                kind = classify_error(exc.error_code)
                if kind is ErrorKind.APP_REFUSED:
                    await self._app_auth_refused(exc, first=refusals == 0)
                    if self.config.exit_on_refusal:
                        raise ApplicationRefused(self.environment, exc.error_code) from None
                    delay = backoff_delay(
                        refusals, base=self.config.refused_retry_base, cap=self.config.refused_retry_max
                    )
                    refusals += 1
                    logger.warning(
                        "openapi application refused: retrying later",
                        extra={"environment": self.environment, "delay": round(delay, 1)},
                    )
                    if await self._sleep(delay):
                        return
                    continue
                self._record_error(f"application auth failed: {exc.error_code}")
                if kind is ErrorKind.MAINTENANCE:
                    self.maintenance_until = exc.maintenance_end
                    wait_at_least = self.config.maintenance_default_seconds
                if kind is ErrorKind.RATE_LIMIT and exc.retry_after:
                    wait_at_least = exc.retry_after
            except OpenApiTransportError as exc:
                self._record_error(str(exc))
                logger.warning(
                    "openapi connect failed", extra={"environment": self.environment, "error": str(exc)}
                )
            else:
                refusals = 0
                self.connections += 1
                await self._serve(self.conn)
                lived = time.monotonic() - started
                if lived >= self.config.reconnect_max:
                    attempt = 0
            if self._stopping.is_set():
                return
            self.state = "reconnecting"
            self._set_status(state="reconnecting", connected_since=None, authorized_accounts=0)
            delay = backoff_delay(
                attempt,
                base=self.config.reconnect_base,
                cap=self.config.reconnect_max,
                floor=self.config.reconnect_floor,
            )
            attempt += 1
            until, self.maintenance_until = self.maintenance_until, None
            if until is not None:
                wait_at_least = (until - datetime.now(UTC)).total_seconds()
                self._set_status(last_error=f"maintenance until {until.isoformat()}")
                logger.warning(
                    "openapi maintenance: waiting",
                    extra={"environment": self.environment, "until": until.isoformat()},
                )
            if wait_at_least > 0:
                # A window that ends for everyone at once: spread the reconnections over a few seconds.
                delay = max(delay, wait_at_least + random.uniform(0, self.config.reconnect_spread))
            logger.info(
                "openapi reconnecting",
                extra={"environment": self.environment, "delay": round(delay, 3), "attempt": attempt},
            )
            if await self._sleep(delay):
                return

    async def _app_auth_refused(self, exc: OpenApiErrorResponse, *, first: bool) -> None:
        self.state = "app_auth_refused"
        message = (
            f"Application auth refused on {self.environment}: {exc.error_code}. "
            "Check the Open API application (client id, secret, status); retrying slowly."
        )
        logger.critical(
            "openapi application auth refused",
            extra={"environment": self.environment, "error_code": exc.error_code},
        )
        self._record_error(message)
        self._set_status(state="app_auth_refused", connected_since=None, authorized_accounts=0)
        if first:
            await self.store.alert(environment=self.environment, action="app_auth_refused", message=message)

    async def _serve(self, conn: OpenApiConnection) -> None:
        self.state = "connected"
        self._closed_on_purpose = False
        self.connected_since = datetime.now(UTC)
        self._assets.clear()
        logger.info("openapi connected", extra={"environment": self.environment, "url": self.url})
        self._set_status(state="connected", connected_since=self.connected_since, authorized_accounts=0)
        try:
            targets = self._mine(await self.store.load_targets(self.environment))
        except Exception:
            logger.exception(
                "openapi gateway could not load accounts", extra={"environment": self.environment}
            )
            targets = {}
        self._apply_targets(targets, fresh_connection=True)
        stop_wait = asyncio.create_task(self._stopping.wait())
        closed_wait = asyncio.create_task(conn.wait_closed())
        await asyncio.wait({stop_wait, closed_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        closed_wait.cancel()
        if conn.close_reason and not self._stopping.is_set() and not self._closed_on_purpose:
            logger.warning(
                "openapi connection closed",
                extra={"environment": self.environment, "reason": conn.close_reason},
            )
            self._record_error(f"connection closed: {conn.close_reason}")
        await self._close_connection()

    async def _close_connection(self) -> None:
        conn, self.conn = self.conn, None
        tasks = [a.task for a in self.accounts.values() if a.task is not None and not a.task.done()]
        for task in tasks:
            task.cancel()
        for account in self.accounts.values():
            account.authorized = False
            account.task = None
        if conn is not None:
            await conn.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.connected_since = None

    # --- the set of accounts ---
    def _apply_targets(
        self,
        targets: dict[int, AccountTarget],
        *,
        fresh_connection: bool = False,
        only_ctids: set[int] | None = None,
    ) -> None:
        """Make the accounts match ``targets``; with ``only_ctids``, only the accounts of those cTIDs."""
        if only_ctids is None:
            candidates: list[int] = list(self.accounts)
        else:
            # Only the accounts of the changed cTIDs: the cost follows the change, not the accounts held.
            candidates = [a for ctid in only_ctids for a in self._by_ctid.get(ctid, ())]
        for account_id in candidates:
            if account_id not in targets:
                self._forget(account_id)
        for account_id, target in targets.items():
            account = self.accounts.get(account_id)
            if account is None:
                self.accounts[account_id] = _Account(target)
                self._by_ctid.setdefault(target.ctid_id, set()).add(account_id)
                self._want(account_id)
                continue
            token_moved = target.token_version != account.target.token_version
            self._retarget(account, target)
            if fresh_connection or (token_moved and not account.authorized):
                # A new connection, or a new token (refreshed elsewhere or a new consent) for an account that
                # has no session: start over. A session on the old token is left alone: the rotation ends it
                # with ProtoOAAccountsTokenInvalidatedEvent, and re-authorizing before that would only earn
                # ALREADY_LOGGED_IN and a wasted request under the rate limit.
                account.stopped = ""
                account.failures = 0
                self._want(account_id)

    def _retarget(self, account: _Account, target: AccountTarget) -> None:
        """Point an account at a newer target, keeping the cTID index right if the account moved."""
        old = account.target.ctid_id
        if target.ctid_id != old:
            account_id = target.ctid_trader_account_id
            self._by_ctid.get(old, set()).discard(account_id)
            if not self._by_ctid.get(old, True):
                self._by_ctid.pop(old, None)
            self._by_ctid.setdefault(target.ctid_id, set()).add(account_id)
        account.target = target

    def _mine(self, targets: dict[int, AccountTarget]) -> dict[int, AccountTarget]:
        """The targets this connection serves: its slot of the cTIDs, and with leases only those held."""
        index, count = self.slot
        held = self.held
        return {
            account_id: target
            for account_id, target in targets.items()
            if target.ctid_id % count == index and (held is None or target.ctid_id in held)
        }

    def set_held(self, held: frozenset[int]) -> None:
        """The lease tick changed what this process holds: forget what went, load what came."""
        before = self.held or frozenset()
        self.held = held
        for account_id in [a for a, acc in self.accounts.items() if acc.target.ctid_id not in held]:
            self._forget(account_id)
        self.changed(held - before)

    def changed(self, ctid_ids: set[int] | frozenset[int], *, everything: bool = False) -> None:
        """Reload these cTIDs (or every held one) from the store soon."""
        self._changed.update(ctid_ids)
        self._reload_all = self._reload_all or everything
        if ctid_ids or everything:
            self._wake.set()

    async def release(self, ctid_ids: set[int]) -> None:
        """Stop holding these cTIDs: log their accounts out and wait for it, so that the cTIDs can be
        handed to another process without an account ever being authorized twice."""
        if self.held is not None:
            self.held = self.held - ctid_ids
        logouts = []
        for account_id in [a for a, acc in self.accounts.items() if acc.target.ctid_id in ctid_ids]:
            logout = self._forget(account_id)
            if logout is not None:
                logouts.append(logout)
        if logouts:
            await asyncio.gather(*logouts, return_exceptions=True)

    def _forget(self, account_id: int) -> asyncio.Future[Any] | None:
        """The account is no longer usable (cTID disconnected, trader suspended, account gone): log it out."""
        account = self.accounts.pop(account_id)
        same_ctid = self._by_ctid.get(account.target.ctid_id)
        if same_ctid is not None:
            same_ctid.discard(account_id)
            if not same_ctid:
                del self._by_ctid[account.target.ctid_id]
        if account.task is not None and not account.task.done():
            account.task.cancel()
        conn = self.conn
        logout: asyncio.Future[Any] | None = None
        if account.authorized and conn is not None and not conn.closed:
            logger.info(
                "openapi account logout", extra={"environment": self.environment, "account": account_id}
            )
            logout = self._spawn(self._logout(conn, account_id))
        self._set_status(authorized_accounts=self.authorized_count)
        return logout

    async def _logout(self, conn: OpenApiConnection, account_id: int) -> None:
        try:
            await conn.logout_account(account_id)
        except OpenApiError:
            # No answer: the session may still be up. Closing the socket ends every session on it for sure
            # (the connection loop reconnects and authorizes the accounts still held).
            if not conn.closed:
                logger.warning(
                    "openapi logout not confirmed: reconnecting",
                    extra={"environment": self.environment, "account": account_id},
                )
                await conn.close()

    async def _poll_loop(self) -> None:
        if self.held is not None:
            await self._change_loop()
            return
        last: Hashable = None
        while not self._stopping.is_set():
            if await self._sleep(self.config.db_poll_seconds):
                return
            if self.conn is None or self.conn.closed:
                continue
            try:
                snapshot = await self.store.snapshot()
                if snapshot == last:
                    continue
                targets = self._mine(await self.store.load_targets(self.environment))
            except Exception:
                logger.exception("openapi gateway poll failed", extra={"environment": self.environment})
                continue
            # Applied on the first poll too: a change between the connection's own load and this first
            # snapshot (a refresh refused right after connecting) must not become the baseline unseen.
            if self.conn is not None:
                self._apply_targets(targets)
            last = snapshot

    async def _change_loop(self) -> None:
        """With leases: reload only the cTIDs the change feed or the lease tick named."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.db_poll_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                return
            if self.conn is None or self.conn.closed or self.held is None:
                continue  # a new connection loads everything it holds
            everything, self._reload_all = self._reload_all, False
            wanted, self._changed = set(self._changed), set()
            if everything:
                wanted = set(self.held)
            wanted &= self.held
            if not wanted:
                continue
            try:
                loaded = self._mine(await self.store.load_targets(self.environment, ctid_ids=wanted))
            except Exception:
                logger.exception("openapi gateway reload failed", extra={"environment": self.environment})
                self._changed |= wanted
                continue
            if self.conn is not None and self.held is not None:
                self._apply_targets(loaded, only_ctids=wanted & self.held)

    # --- authorization flow, one per account at a time ---
    def _want(self, account_id: int, *, check_token: bool = False) -> None:
        account = self.accounts.get(account_id)
        conn = self.conn
        if account is None or conn is None or conn.closed:
            return
        account.check_token = account.check_token or check_token
        if account.task is not None and not account.task.done():
            account.again = True
            return
        account.again = False
        account.task = asyncio.create_task(self._authorize(conn, account), name=f"auth-{account_id}")

    async def _authorize(self, conn: OpenApiConnection, account: _Account) -> None:
        account_id = account.target.ctid_trader_account_id
        token_retried = False
        try:
            while not conn.closed and self.accounts.get(account_id) is account:
                account.again = False
                if (
                    account.authorized
                    and not account.check_token
                    and account.version_used >= account.target.token_version
                ):
                    return  # asked again while this flow authorized with the newest token: nothing left to do
                if account.failures:
                    delay = backoff_delay(
                        account.failures - 1,
                        base=self.config.account_retry_base,
                        cap=self.config.account_retry_max,
                    )
                    await asyncio.sleep(delay)
                if account.check_token:
                    account.check_token = False
                    step = await self._use_newest_token(
                        account, tried_version=account.version_used, reason="token invalidated"
                    )
                    if step == "stop":
                        return
                    if step == "retry":
                        continue
                    token_retried = token_retried or step == "refreshed"
                try:
                    response = await conn.request_envelope(
                        PayloadType.ACCOUNT_AUTH_REQ,
                        {"ctidTraderAccountId": account_id, "accessToken": account.target.access_token},
                    )
                    self._authorized(account, response.seq, account.target.token_version)
                except OpenApiErrorResponse as exc:
                    if classify_error(exc.error_code) is ErrorKind.ALREADY_LOGGED_IN:
                        # The live session may be on an older token: keep the version it was opened with, so
                        # the invalidation of that token adopts the stored one instead of refreshing it.
                        self._authorized(account, exc.seq, account.version_used)
                    elif classify_error(exc.error_code) is ErrorKind.TOKEN:
                        if token_retried:
                            # Refused again with a token refreshed for this very flow.
                            await self._link_broken(account, f"account auth refused: {exc.error_code}")
                            return
                        step = await self._use_newest_token(
                            account, tried_version=account.target.token_version, reason=exc.error_code
                        )
                        if step == "stop":
                            return
                        token_retried = step == "refreshed"
                        continue
                    elif await self._handle_error(account, exc, "account auth"):
                        continue
                    else:
                        return
                except OpenApiTransportError:
                    if conn.closed:
                        return  # the connection loop reconnects and authorizes everything again
                    account.failures += 1  # a timeout on a live connection: try again later
                    continue
                await self._read_trader(conn, account)
                if not account.again:
                    return
        except OpenApiTransportError:
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "openapi account flow failed", extra={"environment": self.environment, "account": account_id}
            )

    def _authorized(self, account: _Account, seq: int, version: int) -> None:
        account.authorized = True
        account.auth_seq = seq
        account.authorized_at = time.monotonic()
        account.version_used = version
        self._status_dirty = True

    async def _handle_error(self, account: _Account, exc: OpenApiErrorResponse, what: str) -> bool:
        """React to an error by name; True to try again, False when the flow must end."""
        account_id = account.target.ctid_trader_account_id
        log_extra = {"environment": self.environment, "account": account_id, "error_code": exc.error_code}
        kind = classify_error(exc.error_code)
        if kind in (ErrorKind.ACCOUNT_GONE, ErrorKind.ACCOUNT_DISABLED):
            status = kind.value
            logger.warning(f"openapi {what}: account {status}", extra=log_extra)
            account.stopped = exc.error_code
            self._record_error(f"account {account_id}: {exc.error_code}")
            await self.store.mark_account(
                ctid_trader_account_id=account_id, status=status, reason=exc.error_code
            )
            return False
        if kind is ErrorKind.RATE_LIMIT:
            logger.warning(
                f"openapi {what}: rate limited", extra={**log_extra, "retry_after": exc.retry_after}
            )
            self._record_error(f"rate limited ({exc.error_code})")
            conn = self.conn
            if conn is not None:
                conn.pacer.slow_down()
                conn.pacer.hold(exc.retry_after or 1.0)
            return True
        if kind is ErrorKind.MAINTENANCE:
            logger.warning(f"openapi {what}: maintenance", extra=log_extra)
            self.maintenance_until = exc.maintenance_end or datetime.fromtimestamp(time.time() + 60, UTC)
            self._record_error(f"maintenance until {self.maintenance_until.isoformat()}")
            self._closed_on_purpose = True
            if self.conn is not None:
                self._spawn(self.conn.close())
            return False
        if kind is ErrorKind.ROUTING:
            logger.error(f"openapi {what}: account is not on this host", extra=log_extra)
            account.stopped = exc.error_code
            self._record_error(f"account {account_id}: {exc.error_code} on {self.environment}")
            return False
        account.failures += 1
        logger.warning(f"openapi {what} failed", extra={**log_extra, "failures": account.failures})
        self._record_error(f"account {account_id}: {exc.error_code}")
        return True

    async def _use_newest_token(
        self, account: _Account, *, tried_version: int, reason: str
    ) -> Literal["use", "refreshed", "retry", "stop"]:
        """Adopt a stored token newer than ``tried_version``, or refresh when there is none.

        "use": a newer token was already stored, authorize with ``account.target`` now; "refreshed": the same
        after a refresh this call waited for; "retry": nothing changed, try again after backoff; "stop": the
        account is no longer usable or its cTID needs a new consent.
        """
        account_id = account.target.ctid_trader_account_id
        stored = await self.store.load_target(account_id)
        if stored is None:
            self._forget_later(account_id)
            return "stop"
        if stored.token_version <= tried_version:
            outcome = await self._refresh(stored, reason=reason)
            if outcome is TokenRenewal.DEAD:
                await self._link_broken(account, f"token refresh failed after {reason}")
                return "stop"
            if outcome is TokenRenewal.TRANSIENT:
                account.failures += 1
                account.check_token = True
                return "retry"
            stored = await self.store.load_target(account_id)
            if stored is None:
                self._forget_later(account_id)
                return "stop"
            self._retarget(account, stored)
            return "refreshed"
        self._retarget(account, stored)
        return "use"

    async def _refresh(self, target: AccountTarget, *, reason: str) -> TokenRenewal:
        """One refresh per cTID at a time: accounts of the same cTID share it."""
        running = self._refreshes.get(target.ctid_id)
        if running is None or running.done():
            running = asyncio.create_task(
                self.store.refresh_token(
                    ctid_id=target.ctid_id, seen_version=target.token_version, reason=reason
                )
            )
            self._refreshes[target.ctid_id] = running
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("openapi token refresh failed", extra={"environment": self.environment})
            return TokenRenewal.TRANSIENT

    async def _link_broken(self, account: _Account, reason: str) -> None:
        account.stopped = "needs_reconnect"
        account.authorized = False
        self._record_error(f"cTID link broken: {reason}")
        await self.store.mark_ctid_needs_reconnect(ctid_id=account.target.ctid_id, reason=reason)

    def _forget_later(self, account_id: int) -> None:
        def forget() -> None:
            if account_id in self.accounts:
                self._forget(account_id)

        asyncio.get_running_loop().call_soon(forget)

    async def _read_trader(self, conn: OpenApiConnection, account: _Account) -> None:
        account_id = account.target.ctid_trader_account_id
        try:
            info = await conn.get_trader(account_id, priority=PRIORITY_BULK)
            currency = await self._currency(conn, info)
            await self.store.save_trader(info=info, currency=currency)
        except OpenApiErrorResponse as exc:
            if exc.error_code == "ACCOUNT_NOT_AUTHORIZED":
                account.authorized = False
                account.again = True
            elif await self._handle_error(account, exc, "trader read"):
                return
        except OpenApiTransportError:
            raise
        except Exception:
            logger.exception("openapi trader info not stored", extra={"account": account_id})

    async def _currency(self, conn: OpenApiConnection, info: TraderInfo) -> str:
        assets = self._assets.get(info.broker_name)
        if assets is None or info.deposit_asset_id not in assets:
            assets = await conn.get_asset_names(info.ctid_trader_account_id, priority=PRIORITY_BULK)
            self._assets[info.broker_name] = assets
        return assets.get(info.deposit_asset_id, "")

    # --- events ---
    async def _on_event(self, envelope: Envelope) -> None:
        kind = envelope.payload_type
        if kind in (PayloadType.HEARTBEAT_EVENT, PayloadType.VERSION_RES):
            return  # keep-alive traffic (the watchdog's probe is answered with VERSION_RES)
        name = EVENT_NAMES.get(PayloadType(kind)) if kind in EVENT_NAMES else f"payloadType {kind}"
        self._set_status(last_event=name, last_event_at=datetime.now(UTC))
        payload = envelope.payload
        if kind == PayloadType.ACCOUNT_DISCONNECT_EVENT:
            self._account_ended(envelope, [payload.get("ctidTraderAccountId")], check_token=False)
        elif kind == PayloadType.ACCOUNTS_TOKEN_INVALIDATED_EVENT:
            logger.info(
                "openapi accounts token invalidated",
                extra={"environment": self.environment, "reason": payload.get("reason", "")},
            )
            self._account_ended(envelope, payload.get("ctidTraderAccountIds") or [], check_token=True)
        elif kind == PayloadType.CLIENT_DISCONNECT_EVENT:
            reason = str(payload.get("reason") or "")
            logger.error(
                "openapi client disconnected by server",
                extra={"environment": self.environment, "reason": reason},
            )
            self._record_error(f"ClientDisconnect: {reason}" if reason else "ClientDisconnect")
            self._closed_on_purpose = True
            if self.conn is not None:
                self._spawn(self.conn.close())
        elif kind == PayloadType.TRADER_UPDATED_EVENT:
            try:
                info = trader_info(payload)
            except (KeyError, TypeError, ValueError):
                return
            if info.ctid_trader_account_id in self.accounts:
                self._spawn(self._save_update(info))
        elif kind == PayloadType.EXECUTION_EVENT:
            try:
                update = execution_balance(payload)
            except (KeyError, TypeError, ValueError):
                return
            if update is not None and update.ctid_trader_account_id in self.accounts:
                self._spawn(self._save_update(update))
        elif kind in (PayloadType.ERROR_RES, PayloadType.OA_ERROR_RES):
            self._record_error(f"server error: {payload.get('errorCode')}")

    async def _save_update(self, info: TraderInfo) -> None:
        assets = self._assets.get(info.broker_name, {})
        try:
            await self.store.save_trader(info=info, currency=assets.get(info.deposit_asset_id, ""))
        except Exception:
            logger.exception(
                "openapi balance update not stored", extra={"account": info.ctid_trader_account_id}
            )

    def _account_ended(self, envelope: Envelope, ids: list[Any], *, check_token: bool) -> None:
        for raw in ids:
            try:
                account_id = int(raw)
            except (TypeError, ValueError):
                continue
            account = self.accounts.get(account_id)
            if account is None or not account.authorized or envelope.seq < account.auth_seq:
                continue  # unknown, no session on our side, or about a session older than the current one
            if account.authorized and time.monotonic() - account.authorized_at < 30:
                account.failures += 1  # dropped right after authorizing: back off
            elif account.authorized:
                account.failures = 0
            account.authorized = False
            self._status_dirty = True
            self._want(account_id, check_token=check_token)

    # --- status ---
    def _record_error(self, message: str) -> None:
        self._set_status(last_error=message[:500], last_error_at=datetime.now(UTC))

    def _set_status(self, **fields: Any) -> None:
        self._status.update(fields)
        self._status_dirty = True

    async def _status_loop(self) -> None:
        last_write = 0.0
        while True:
            await asyncio.sleep(self.config.status_interval)
            now = time.monotonic()
            alive = self.conn is not None and not self.conn.closed
            if not self._status_dirty and not (alive and now - last_write >= self.config.heartbeat_interval):
                continue
            self._status_dirty = False
            self._status["authorized_accounts"] = self.authorized_count
            if alive:
                self._status["heartbeat_at"] = datetime.now(UTC)
            try:
                if self.slot[0] == 0:  # the first connection of an environment reports for it
                    await self.store.save_status(environment=self.environment, **self._status)
                last_write = now
            except Exception:
                logger.exception("openapi gateway status not stored", extra={"environment": self.environment})


class Gateway:
    """Both environments in one process, ``connections_per_environment`` connections each.

    With a ``LeaseStore`` the process holds only the cTIDs its lease gives it (several processes divide
    them), follows the change feed, and fences itself: when it could not renew its lease in time it drops
    every account before another process may take them over.
    """

    def __init__(
        self,
        store: GatewayStore,
        config: GatewayConfig,
        urls: dict[Environment, str],
        *,
        connect: Callable[..., Awaitable[OpenApiConnection]] = OpenApiConnection.connect,
        leases: LeaseStore | None = None,
    ) -> None:
        self.config = config
        self.leases = leases
        count = max(1, config.connections_per_environment)
        self.environments: dict[str, EnvironmentGateway] = {}
        for env, url in urls.items():
            if not url:
                continue
            for index in range(count):
                key = env if index == 0 else f"{env}#{index + 1}"
                self.environments[key] = EnvironmentGateway(
                    env, url, store, config, connect=connect, slot=(index, count), leased=leases is not None
                )
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.held: frozenset[int] = frozenset()
        self.processes = 0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        for environment in self.environments.values():
            environment.stop()

    async def run(self) -> None:
        self.tasks = {
            key: asyncio.create_task(e.run(), name=f"gateway-{key}") for key, e in self.environments.items()
        }
        helpers: list[asyncio.Task[None]] = []
        if self.leases is not None:
            helpers = [
                asyncio.create_task(self._lease_loop(self.leases), name="gateway-leases"),
                asyncio.create_task(self._feed_loop(self.leases), name="gateway-changes"),
            ]
        try:
            await asyncio.gather(*self.tasks.values())
        except ApplicationRefused:
            # Told to exit on refusal: stop the other environment cleanly, then let the caller exit non-zero.
            self.stop()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            raise
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if self.leases is not None:
                # Every connection is closed (their sessions ended): hand everything back at once.
                with contextlib.suppress(Exception):
                    await self.leases.lease_end()

    async def _sleep(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), max(seconds, 0))
        return self._stopping.is_set()

    def _set_held(self, held: frozenset[int]) -> None:
        self.held = held
        for environment in self.environments.values():
            environment.set_held(held)

    def stats(self) -> dict[str, Any]:
        accounts = sum(len(e.accounts) for e in self.environments.values())
        authorized = sum(e.authorized_count for e in self.environments.values())
        status = {key: _jsonable(e._status) for key, e in self.environments.items()}
        return {
            "ctids_held": len(self.held),
            "accounts_held": accounts,
            "accounts_authorized": authorized,
            "status": status,
        }

    async def _lease_loop(self, leases: LeaseStore) -> None:
        lease = self.config.lease_seconds
        tick = max(min(lease / 6, 5.0), 0.1)
        # Renewed in time if a tick succeeds before this (monotonic); past it the lease may be gone.
        fence_at = time.monotonic() + lease - tick
        environments: list[str] = sorted({e.environment for e in self.environments.values()})
        while True:
            try:
                await leases.lease_register(environments=environments, lease_seconds=lease)
                break
            except Exception:
                logger.exception("openapi gateway could not register its lease; trying again")
                if await self._sleep(tick):
                    return
        # Let processes started together see each other before the first claim.
        first = True
        if await self._sleep(min(tick, 2.0)):
            return
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                plan = await leases.lease_tick(lease_seconds=lease, claim=True, stats=self.stats())
            except Exception:
                logger.exception("openapi gateway lease not renewed")
                if time.monotonic() >= fence_at and self.held:
                    logger.error("openapi gateway lease about to run out: dropping every account")
                    self._set_held(frozenset())
            else:
                fence_at = started + lease - tick
                self.processes = plan.processes
                if plan.lost:
                    logger.error("openapi gateway lease was lost: dropping every account")
                    self._set_held(frozenset())
                    await leases.lease_register(
                        environments=environments,
                        lease_seconds=lease,
                    )
                else:
                    if plan.held != self.held or first:
                        self._set_held(plan.held - set(plan.release))
                        first = False
                    if plan.release:
                        await self._release(leases, set(plan.release))
            if await self._sleep(tick - (time.monotonic() - started)):
                return

    async def _release(self, leases: LeaseStore, ctid_ids: set[int]) -> None:
        self.held = self.held - ctid_ids
        await asyncio.gather(*(e.release(ctid_ids) for e in self.environments.values()))
        await leases.lease_release(sorted(ctid_ids))
        logger.info("openapi gateway handed cTIDs back", extra={"count": len(ctid_ids)})

    async def _feed_loop(self, leases: LeaseStore) -> None:
        cursor = await leases.changes_start()
        last_full = time.monotonic()
        while not self._stopping.is_set():
            if cursor is None:
                # No change feed (SQLite): reload everything held now and then.
                if await self._sleep(self.config.db_poll_seconds):
                    return
                for environment in self.environments.values():
                    environment.changed(set(), everything=True)
                continue
            await leases.wait_for_change(self.config.db_poll_seconds)
            if self._stopping.is_set():
                return
            try:
                cursor, changed = await leases.changes(cursor)
            except Exception:
                logger.exception("openapi gateway change feed not read")
                continue
            everything = time.monotonic() - last_full >= self.config.full_reload_seconds
            if everything:
                last_full = time.monotonic()
            mine = changed & self.held
            if mine or everything:
                for environment in self.environments.values():
                    environment.changed(mine, everything=everything)


def _jsonable(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in status.items()}
