"""The Django side of the Open API gateway: what it reads from and writes to the database.

The functions are synchronous services; ``DjangoGatewayStore`` runs them off the event loop with
``sync_to_async`` so the gateway's asyncio loop never blocks on the database or on a token refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone

from accounts.ctrader.openapi.client import TraderInfo
from accounts.ctrader.openapi.gateway import (
    AccountTarget,
    Environment,
    GatewayConfig,
    LeasePlan,
    TokenRenewal,
)
from accounts.models import Ctid, CtidToken, GatewayStatus, TradingAccount
from accounts.services import gateway_leases as leases
from accounts.services.audit import audit_event_record
from accounts.services.gateway_leases import gateway_assigned_ctids
from accounts.signals import ctid_needs_reconnect

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_USABLE = Q(
    status=TradingAccount.Status.ACTIVE,
    ctid__state=Ctid.State.CONNECTED,
    ctid__token__state=CtidToken.State.ACTIVE,
    ctid__trader__suspended=False,
)


def gateway_config() -> GatewayConfig:
    return GatewayConfig(
        client_id=settings.CTRADER_CLIENT_ID,
        client_secret=settings.CTRADER_CLIENT_SECRET,
        request_timeout=settings.OPENAPI_REQUEST_TIMEOUT,
        heartbeat_interval=settings.OPENAPI_HEARTBEAT_SECONDS,
        max_requests_per_second=settings.OPENAPI_MAX_REQUESTS_PER_SECOND,
        reconnect_max=settings.OPENAPI_RECONNECT_MAX_SECONDS,
        db_poll_seconds=settings.OPENAPI_DB_POLL_SECONDS,
        reconnect_floor=settings.OPENAPI_RECONNECT_FLOOR_SECONDS,
        reconnect_spread=settings.OPENAPI_RECONNECT_SPREAD_SECONDS,
        refused_retry_base=settings.OPENAPI_REFUSED_RETRY_SECONDS,
        refused_retry_max=settings.OPENAPI_REFUSED_RETRY_MAX_SECONDS,
        exit_on_refusal=settings.OPENAPI_EXIT_ON_REFUSAL,
        pacer_margin=settings.OPENAPI_PACER_MARGIN,
        silence_heartbeats=settings.OPENAPI_SILENCE_HEARTBEATS,
        lease_seconds=settings.OPENAPI_GATEWAY_LEASE_SECONDS,
        connections_per_environment=settings.OPENAPI_CONNECTIONS_PER_ENVIRONMENT,
        rebalance_batch=settings.OPENAPI_GATEWAY_REBALANCE_BATCH,
        full_reload_seconds=settings.OPENAPI_GATEWAY_FULL_RELOAD_SECONDS,
    )


def _usable_accounts() -> QuerySet[TradingAccount]:
    return TradingAccount.objects.filter(_USABLE)


def gateway_snapshot() -> Hashable:
    """One aggregate query whose result moves whenever a usable account, a token or a link changes."""
    return tuple(
        _usable_accounts()
        .aggregate(
            accounts=Count("id"),
            ids=Sum("ctid_trader_account_id"),
            live=Count("id", filter=Q(is_live=True)),
            versions=Sum("ctid__token__version"),
            tokens_updated=Max("ctid__token__updated_at"),
        )
        .values()
    )


def _targets(accounts: QuerySet[TradingAccount]) -> dict[int, AccountTarget]:
    rows = list(accounts.values_list("ctid_trader_account_id", "ctid_id", "is_live"))
    # One decryption per cTID, however many accounts it has.
    tokens = {
        t.ctid_id: t
        for t in CtidToken.objects.filter(ctid_id__in={ctid_id for _, ctid_id, _ in rows}).only(
            "ctid_id", "access_token", "version"
        )
    }
    targets = {}
    for account_id, ctid_id, is_live in rows:
        token = tokens.get(ctid_id)
        if token is None:
            continue
        targets[account_id] = AccountTarget(account_id, ctid_id, is_live, token.version, token.access_token)
    return targets


def gateway_targets(
    *, environment: Environment, process: str | None = None, ctid_ids: set[int] | None = None
) -> dict[int, AccountTarget]:
    """Every account the gateway should keep authorized on one environment.

    ``process``: only the cTIDs that gateway process holds; ``ctid_ids``: only these cTIDs (a change).
    """
    accounts = _usable_accounts().filter(is_live=environment == "live")
    if process is not None:
        accounts = accounts.filter(gateway_assigned_ctids(name=process))
    if ctid_ids is not None:
        accounts = accounts.filter(ctid_id__in=ctid_ids)
    return _targets(accounts)


def gateway_target(*, ctid_trader_account_id: int) -> AccountTarget | None:
    return _targets(_usable_accounts().filter(ctid_trader_account_id=ctid_trader_account_id)).get(
        ctid_trader_account_id
    )


def _token_state(ctid_id: int) -> tuple[int, str, str] | None:
    row = CtidToken.objects.filter(ctid_id=ctid_id).values_list("version", "state", "ctid__state").first()
    return row


def gateway_token_refresh(*, ctid_id: int, seen_version: int, reason: str) -> TokenRenewal:
    """Refresh a cTID's token through the single-flight refresh service, unless a newer one is stored.

    The outcome is read back from the database, so it holds whatever the service returns and whoever won a
    concurrent refresh.
    """
    from accounts.services.tokens import ctid_token_refresh

    def outcome() -> TokenRenewal | None:
        row = _token_state(ctid_id)
        if row is None:
            return TokenRenewal.DEAD
        version, token_state, ctid_state = row
        if token_state != CtidToken.State.ACTIVE or ctid_state != Ctid.State.CONNECTED:
            return TokenRenewal.DEAD
        if version > seen_version:
            return TokenRenewal.REFRESHED
        return None

    before = outcome()
    if before is not None:
        return before
    logger.info("gateway refreshing token", extra={"ctid_id": ctid_id, "reason": reason})
    try:
        # ``seen_version``: a refresh (the sweep's, another environment's) that lands between the read above
        # and the claim makes this call SUPERSEDED instead of rotating the brand-new token a second time.
        ctid_token_refresh(ctid_id=ctid_id, reason=f"openapi gateway: {reason}", seen_version=seen_version)
    except Exception as exc:
        # The service records its own outcome; what the database holds now decides below.
        logger.warning(
            "gateway token refresh raised", extra={"ctid_id": ctid_id, "error": exc.__class__.__name__}
        )
    return outcome() or TokenRenewal.TRANSIENT


def gateway_ctid_needs_reconnect(*, ctid_id: int, reason: str) -> bool:
    """Mark a cTID whose token the Open API keeps refusing; the trader is asked to reconnect it."""
    with transaction.atomic():
        ctid = Ctid.objects.select_for_update().select_related("trader").filter(pk=ctid_id).first()
        if ctid is None or ctid.state != Ctid.State.CONNECTED:
            return False
        ctid.state = Ctid.State.NEEDS_RECONNECT
        ctid.state_reason = reason[:500]
        ctid.state_changed_at = timezone.now()
        ctid.save(update_fields=["state", "state_reason", "state_changed_at"])
        audit_event_record(
            trader=ctid.trader,
            category="ctid",
            action="needs_reconnect",
            outcome="openapi_gateway",
            message=reason[:500],
            detail={"ctid_user_id": ctid.user_id},
        )
        transaction.on_commit(lambda: ctid_needs_reconnect.send(sender=Ctid, ctid=ctid, reason=reason))
    logger.warning("gateway marked cTID needs_reconnect", extra={"ctid_id": ctid_id, "reason": reason})
    return True


def trading_account_mark_unavailable(*, ctid_trader_account_id: int, status: str, reason: str) -> None:
    """The Open API says the account no longer exists or is disabled: stop using it."""
    if status not in (TradingAccount.Status.GONE, TradingAccount.Status.DISABLED):
        raise ValueError(f"unexpected account status {status!r}")
    TradingAccount.objects.filter(ctid_trader_account_id=ctid_trader_account_id).update(
        status=status, status_reason=reason[:500], last_synced_at=timezone.now()
    )


def trading_account_balance_save(*, info: TraderInfo, currency: str) -> bool:
    """Store a balance read from the Open API, unless a newer one (higher ``balanceVersion``) is stored.

    One conditional UPDATE: a ProtoOATraderRes answered before a ProtoOAExecutionEvent but handled after
    it cannot put the older balance back. False when nothing was written.
    """
    now = timezone.now()
    fields: dict[str, Any] = {
        "balance": Decimal(info.balance),
        "balance_updated_at": now,
        "last_synced_at": now,
    }
    if currency:
        fields["currency"] = currency
    if info.broker_name:
        fields["broker_name"] = info.broker_name
    rows = TradingAccount.objects.filter(ctid_trader_account_id=info.ctid_trader_account_id)
    if info.balance_version is not None:
        fields["balance_version"] = info.balance_version
        rows = rows.filter(Q(balance_version__isnull=True) | Q(balance_version__lte=info.balance_version))
    return bool(rows.update(**fields))


def gateway_status_save(*, environment: Environment, **fields: Any) -> None:
    known = {f.name for f in GatewayStatus._meta.get_fields()}
    values = {k: v for k, v in fields.items() if k in known and k not in ("id", "environment")}
    GatewayStatus.objects.update_or_create(environment=environment, defaults=values)


def gateway_alert(*, environment: Environment, action: str, message: str) -> None:
    audit_event_record(
        category="gateway",
        action=action,
        outcome="alert",
        message=message[:500],
        detail={"environment": environment},
    )


def gateway_status_report() -> dict[str, Any]:
    """The per-environment status for staff (the same judgement as /readyz: ``gateway_health``)."""
    from accounts.selectors import gateway_health

    health = gateway_health()
    environments = {
        env: {k: v for k, v in status.items() if k != "stale"} for env, status in health.environments.items()
    }
    from accounts.selectors import gateway_processes

    return {"environments": environments, "processes": gateway_processes(), "checked_at": health.checked_at}


def _db(func: Callable[P, R], *, thread_sensitive: bool = True) -> Callable[P, Any]:
    """Run a database service off the event loop, on connections that are closed when stale."""

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        return func(*args, **kwargs)

    return sync_to_async(call, thread_sensitive=thread_sensitive)


class DjangoGatewayStore:
    """The GatewayStore of the gateway, on the Django models; with a process name also its LeaseStore."""

    def __init__(self, process: str | None = None, *, host: str = "", pid: int = 0) -> None:
        self.process = process
        self.host = host
        self.pid = pid
        self._seen: set[int] = set()
        self._listener: Any = None

    async def snapshot(self) -> Hashable:
        return await _db(gateway_snapshot)()

    async def load_targets(
        self, environment: Environment, ctid_ids: set[int] | None = None
    ) -> dict[int, AccountTarget]:
        return await _db(gateway_targets)(environment=environment, process=self.process, ctid_ids=ctid_ids)

    async def load_target(self, ctid_trader_account_id: int) -> AccountTarget | None:
        return await _db(gateway_target)(ctid_trader_account_id=ctid_trader_account_id)

    async def refresh_token(self, *, ctid_id: int, seen_version: int, reason: str) -> TokenRenewal:
        # An HTTP call: not on the shared database thread, so other accounts' writes go on meanwhile.
        return await _db(gateway_token_refresh, thread_sensitive=False)(
            ctid_id=ctid_id, seen_version=seen_version, reason=reason
        )

    async def mark_ctid_needs_reconnect(self, *, ctid_id: int, reason: str) -> None:
        await _db(gateway_ctid_needs_reconnect)(ctid_id=ctid_id, reason=reason)

    async def mark_account(self, *, ctid_trader_account_id: int, status: str, reason: str) -> None:
        await _db(trading_account_mark_unavailable)(
            ctid_trader_account_id=ctid_trader_account_id, status=status, reason=reason
        )

    async def save_trader(self, *, info: TraderInfo, currency: str) -> None:
        await _db(trading_account_balance_save)(info=info, currency=currency)

    async def save_status(self, *, environment: Environment, **fields: Any) -> None:
        await _db(gateway_status_save)(environment=environment, **fields)

    async def alert(self, *, environment: Environment, action: str, message: str) -> None:
        await _db(gateway_alert)(environment=environment, action=action, message=message)

    # --- LeaseStore ---
    def _name(self) -> str:
        if self.process is None:
            raise RuntimeError("a lease store needs a process name")
        return self.process

    async def lease_register(self, *, environments: list[str], lease_seconds: float) -> None:
        await _db(leases.gateway_process_register)(
            name=self._name(),
            host=self.host,
            pid=self.pid,
            environments=environments,
            lease_seconds=lease_seconds,
        )

    async def lease_tick(self, *, lease_seconds: float, claim: bool, stats: dict[str, Any]) -> LeasePlan:
        plan = await _db(leases.gateway_lease_tick)(
            name=self._name(),
            lease_seconds=lease_seconds,
            claim=claim,
            release_limit=settings.OPENAPI_GATEWAY_REBALANCE_BATCH,
            stats=stats,
        )
        return LeasePlan(plan.held, plan.release, plan.processes, plan.lost)

    async def lease_release(self, ctid_ids: list[int]) -> None:
        await _db(leases.gateway_lease_release)(name=self._name(), ctid_ids=ctid_ids)

    async def lease_end(self) -> None:
        await _db(leases.gateway_process_end)(name=self._name())
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await asyncio.to_thread(listener.close)

    async def changes_start(self) -> int | None:
        if not await _db(leases.gateway_changes_supported)():
            return None
        return await _db(leases.gateway_changes_cursor)()

    async def changes(self, cursor: int) -> tuple[int, set[int]]:
        return await _db(leases.gateway_changes_since)(cursor=cursor, seen=self._seen)

    async def wait_for_change(self, timeout: float) -> None:
        """LISTEN clientarea_gateway on a connection of its own; a plain sleep if that is not possible."""
        if settings.OPENAPI_GATEWAY_LISTEN and self._listener is None:
            with contextlib.suppress(Exception):
                self._listener = await asyncio.to_thread(_listen_connection)
        listener = self._listener
        if listener is None:
            await asyncio.sleep(timeout)
            return
        try:
            await asyncio.to_thread(_wait_notify, listener, timeout)
        except Exception:
            logger.warning("gateway LISTEN connection lost; polling until it is back")
            self._listener = None
            with contextlib.suppress(Exception):
                await asyncio.to_thread(listener.close)
            await asyncio.sleep(timeout)


def _listen_connection() -> Any:
    import psycopg
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.setdefault("connect_timeout", 5)
    listener = psycopg.connect(**params, autocommit=True)
    listener.execute("LISTEN clientarea_gateway")
    return listener


def _wait_notify(listener: Any, timeout: float) -> None:
    for _ in listener.notifies(timeout=timeout, stop_after=1):
        break
