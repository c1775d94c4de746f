"""Reads shared by the trader-facing views and API. Every query starts from the signed-in user."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db.models import CharField, Exists, F, Func, OuterRef, Q, QuerySet, Window
from django.db.models.functions import RowNumber, Trunc
from django.http import Http404
from django.utils import timezone

from accounts.models import (
    AccountSnapshot,
    Ctid,
    CtidJob,
    CtidToken,
    GatewayProcess,
    GatewayStatus,
    Trader,
    TradingAccount,
)
from clientarea import prepared


def trader_for_user(*, user: Any) -> Trader | None:
    """The signed-in user's Trader profile, or None (staff users and anonymous users have none).

    The authentication backend loads the profile with the user (and refuses a suspended trader's session), so
    every page and endpoint gets the same trader without a query of its own.
    """
    if not user.is_authenticated:
        return None
    trader = getattr(user, "trader", None)
    return trader if isinstance(trader, Trader) else None


def trader_for_user_or_404(*, user: Any) -> Trader:
    """``trader_for_user`` for pages that exist only for traders: anyone else gets a 404."""
    trader = trader_for_user(user=user)
    if trader is None:
        raise Http404("No trader profile.")
    return trader


def ctids_for_user(*, user: Any) -> QuerySet[Ctid]:
    """The user's cTIDs, oldest first (their accounts: ``dashboard_ctids``, ``accounts_for_user``)."""
    return Ctid.objects.filter(trader__user=user).order_by("created_at")


class DashboardAccount(NamedTuple):
    """A trading account as the dashboard shows it: its own columns, its broker's and its latest figures
    (``read_at`` is None when it has none), read as plain values rather than as three model instances each."""

    ctid_id: int
    ctid_trader_account_id: int
    login: int
    is_live: bool
    is_tradingview: bool
    status: str
    broker_title: str
    balance: Decimal | None
    currency: str
    broker_display_name: str | None  # None: no jurisdiction
    margin_call_level: Decimal | None  # the jurisdiction's own, if any
    figures_currency: str | None
    figures_balance: Decimal | None
    figures_equity: Decimal | None
    figures_used_margin: Decimal | None
    figures_free_margin: Decimal | None
    figures_unrealized_pnl: Decimal | None
    figures_margin_level: Decimal | None
    balance_updated_at: datetime | None
    read_at: datetime | None


_DASHBOARD_COLUMNS = (
    "ctid_id",
    "ctid_trader_account_id",
    "login",
    "is_live",
    "is_tradingview",
    "status",
    "broker_title",
    "balance",
    "currency",
    "jurisdiction__display_name",
    "jurisdiction__margin_call_level",
    "figures__currency",
    "figures__balance",
    "figures__equity",
    "figures__used_margin",
    "figures__free_margin",
    "figures__unrealized_pnl",
    "figures__margin_level",
)


class UtcText(Func):
    """A ``timestamptz`` as UTC text, ``YYYY-MM-DD HH:MM:SS.ffffff``, whatever the session's DateStyle.

    Django reads ``timestamptz`` through a loader of its own that runs in Python (some 9 µs a value, the
    largest part of reading 200 accounts); as text, parsed once per distinct value, the times cost little.
    """

    template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    output_field = CharField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        # The embedded database already stores these times as UTC text in that form.
        return self.as_sql(compiler, connection, template="CAST(%(expressions)s AS TEXT)", **extra_context)


def utc_times() -> Callable[[str | None], datetime | None]:
    """A parser of ``UtcText`` values that parses each distinct text once (figures read in one refresh share
    their time)."""
    parsed: dict[str, datetime] = {}

    def parse(text: str | None) -> datetime | None:
        if text is None:
            return None
        value = parsed.get(text)
        if value is None:
            value = parsed[text] = datetime.fromisoformat(text).replace(tzinfo=UTC)
        return value

    return parse


class DashboardCtid(NamedTuple):
    """A cTID as the dashboard shows it."""

    pk: int
    user_id: int
    state: str
    last_sync_error: str
    last_synced_at: datetime | None


def _dashboard_rows(user_id: int) -> QuerySet[Any]:
    return (
        Ctid.objects.filter(trader__user_id=user_id)
        .order_by("created_at", "pk", "-accounts__is_live", "accounts__login")
        .values_list(
            "pk",
            "user_id",
            "state",
            "last_sync_error",
            UtcText("last_synced_at"),
            *(f"accounts__{column}" for column in _DASHBOARD_COLUMNS),
            UtcText("accounts__balance_updated_at"),
            UtcText("accounts__figures__read_at"),
        )
    )


# Every dashboard runs it: compiled once, prepared once per connection (clientarea/prepared.py).
_DASHBOARD_ROWS = prepared.CompiledQuery(_dashboard_rows)


def dashboard_ctids(*, user: Any) -> list[tuple[DashboardCtid, list[DashboardAccount]]]:
    """The user's cTIDs, oldest first, each with its trading accounts (live first, then by login).

    One query whatever the number of accounts (the cTIDs joined to their accounts), reading only the columns
    the dashboard prints: for 200 accounts, plain values instead of 600 model instances with all their
    columns take a quarter of the time.
    """
    time = utc_times()
    ctids: dict[int, tuple[DashboardCtid, list[DashboardAccount]]] = {}
    for pk, user_id, state, error, synced_at, *values, updated_at, read_at in _DASHBOARD_ROWS.rows(user.pk):
        listed = ctids.get(pk)
        if listed is None:
            listed = ctids[pk] = (DashboardCtid(pk, user_id, state, error, time(synced_at)), [])
        account = DashboardAccount._make((*values, time(updated_at), time(read_at)))
        if account.ctid_trader_account_id is not None:  # else a cTID without accounts, joined to nothing
            listed[1].append(account)
    return list(ctids.values())


class DashboardNotices(NamedTuple):
    """What the dashboard has to tell the trader besides their accounts, each a yes or a no."""

    openings: bool  # account openings in progress (``openings_in_progress``)
    jobs: bool  # cTID jobs running or finished and not shown yet (``ctid_jobs_to_show``)
    two_factor: bool  # an authenticator app confirmed


def _dashboard_notices(user_id: int) -> QuerySet[Any]:
    from django.contrib.auth import get_user_model

    from twofactor.models import authenticators_confirmed

    user = OuterRef("pk")
    return (
        get_user_model()
        .objects.filter(pk=user_id)
        .values_list(
            Exists(unfinished_openings(trader__user=user)),
            Exists(ctid_jobs_to_show(trader__user=user)),
            Exists(authenticators_confirmed(user=user)),
        )
    )


_DASHBOARD_NOTICES = prepared.CompiledQuery(_dashboard_notices)


def dashboard_notices(*, user: Any) -> DashboardNotices:
    """In one statement, whether the user's trader has account openings or cTID jobs in progress and whether
    two-step sign-in is on, so that the lists are read only when there is something in them (most dashboards:
    never)."""
    rows = _DASHBOARD_NOTICES.rows(user.pk)
    return DashboardNotices._make(rows[0]) if rows else DashboardNotices(False, False, False)


def accounts_for_user(*, user: Any) -> QuerySet[TradingAccount]:
    """The user's trading accounts across all their cTIDs."""
    return (
        TradingAccount.objects.filter(ctid__trader__user=user)
        .select_related("ctid", "jurisdiction", "figures")
        .order_by("-is_live", "login")
    )


class AccountValues(NamedTuple):
    """A trading account as the account list API gives it, with its cTID's id, its jurisdiction and its latest
    figures (``read_at`` is None when it has none), as plain values."""

    ctid_trader_account_id: int
    login: int
    is_live: bool
    ctid_user_id: int
    broker_name: str
    broker_title: str
    jurisdiction_id: int | None
    jurisdiction_broker_name: str | None
    jurisdiction_display_name: str | None
    jurisdiction_tradingview_enabled: bool | None
    margin_call_level: Decimal | None  # the jurisdiction's own, if any
    is_tradingview: bool
    status: str
    balance: Decimal | None
    currency: str
    figures_currency: str | None
    figures_balance: Decimal | None
    figures_equity: Decimal | None
    figures_used_margin: Decimal | None
    figures_free_margin: Decimal | None
    figures_unrealized_pnl: Decimal | None
    figures_margin_level: Decimal | None
    figures_positions_count: int | None
    figures_positions_volume: Decimal | None
    figures_source: str | None
    balance_updated_at: datetime | None
    last_synced_at: datetime | None
    read_at: datetime | None


_ACCOUNT_LIST_COLUMNS = (
    "ctid_trader_account_id",
    "login",
    "is_live",
    "ctid__user_id",
    "broker_name",
    "broker_title",
    "jurisdiction_id",
    "jurisdiction__broker_name",
    "jurisdiction__display_name",
    "jurisdiction__tradingview_enabled",
    "jurisdiction__margin_call_level",
    "is_tradingview",
    "status",
    "balance",
    "currency",
    "figures__currency",
    "figures__balance",
    "figures__equity",
    "figures__used_margin",
    "figures__free_margin",
    "figures__unrealized_pnl",
    "figures__margin_level",
    "figures__positions_count",
    "figures__positions_volume",
    "figures__source",
)


def _account_list(user_id: int) -> QuerySet[Any]:
    return accounts_for_user(user=user_id).values_list(
        *_ACCOUNT_LIST_COLUMNS,
        UtcText("balance_updated_at"),
        UtcText("last_synced_at"),
        UtcText("figures__read_at"),
    )


# Every page of the account list API runs it: compiled once, prepared once per connection.
_ACCOUNT_LIST = prepared.CompiledQuery(_account_list)


class AccountListRows:
    """The user's accounts as ``accounts_for_user`` orders them, as rows of plain values for
    ``account_values``, for a paginator: counted and sliced by prepared statements (a page of 200 accounts
    without 800 model instances, with its times read as text, and without building the query again)."""

    ordered = True

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id

    def count(self) -> int:
        return _ACCOUNT_LIST.count(self.user_id)

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[tuple[Any, ...]]:
        start, stop, step = index.indices(2**62)
        if step != 1:
            raise ValueError("account rows are read in pages")
        return _ACCOUNT_LIST.rows(self.user_id, limit=max(stop - start, 0), offset=start)


def account_list_for_user(*, user: Any) -> AccountListRows:
    """``accounts_for_user`` (same accounts, same order) as rows of plain values, for a paginator."""
    return AccountListRows(user.pk)


def account_values(rows: Iterable[tuple[Any, ...]]) -> list[AccountValues]:
    time = utc_times()
    return [
        AccountValues._make((*values, time(updated_at), time(synced_at), time(read_at)))
        for *values, updated_at, synced_at, read_at in rows
    ]


@dataclass(frozen=True)
class GatewayHealth:
    """What the Open API gateway last reported, judged by one rule for the status API and for /readyz.

    An environment is healthy when its connection is up and its heartbeat is at most
    ``HEALTH_GATEWAY_STALE_SECONDS`` old.
    """

    environments: dict[str, dict[str, Any]]
    refused: list[str]
    checked_at: datetime

    @property
    def healthy(self) -> bool:
        return bool(self.environments) and all(e["healthy"] for e in self.environments.values())

    def problems(self, *, expected: list[str]) -> list[str]:
        """Why the environments in ``expected`` are not all healthy (empty when they are)."""
        found = []
        for environment in expected:
            status = self.environments.get(environment)
            if status is None or status["heartbeat_at"] is None:
                found.append(f"{environment}: no heartbeat yet")
            elif status["stale"]:
                age = int((self.checked_at - status["heartbeat_at"]).total_seconds())
                found.append(f"{environment}: last heartbeat {age} s ago")
            elif not status["healthy"]:
                found.append(f"{environment}: {status['state']}")
        return found


def gateway_health(*, stale_after: timedelta | None = None) -> GatewayHealth:
    now = timezone.now()
    if stale_after is None:
        stale_after = timedelta(seconds=settings.HEALTH_GATEWAY_STALE_SECONDS)
    environments: dict[str, dict[str, Any]] = {}
    for status in GatewayStatus.objects.order_by("environment"):
        stale = status.heartbeat_at is None or now - status.heartbeat_at > stale_after
        environments[status.environment] = {
            "state": status.state,
            "healthy": status.state == GatewayStatus.State.CONNECTED and not stale,
            "stale": stale,
            "connected_since": status.connected_since,
            "authorized_accounts": status.authorized_accounts,
            "last_event": status.last_event,
            "last_event_at": status.last_event_at,
            "last_error": status.last_error,
            "last_error_at": status.last_error_at,
            "heartbeat_at": status.heartbeat_at,
            "updated_at": status.updated_at,
        }
    refused = sorted(e for e, s in environments.items() if s["state"] == GatewayStatus.State.APP_AUTH_REFUSED)
    return GatewayHealth(environments=environments, refused=refused, checked_at=now)


def ctid_jobs_to_show(**trader: Any) -> QuerySet[CtidJob]:
    """The trader's jobs still running, and those finished that the trader has not been shown yet
    (``trader=`` a trader, or ``trader__user=`` a reference to its user)."""
    return CtidJob.objects.filter(**trader).exclude(
        state__in=(CtidJob.State.DONE, CtidJob.State.FAILED), seen=True
    )


def unfinished_openings(**trader: Any) -> QuerySet[Any]:
    """The trader's account openings that are not finished (``trader=`` a trader, or ``trader__user=`` a
    reference to its user)."""
    from accounts.models import AccountOpening

    unfinished = [AccountOpening.State.DONE, AccountOpening.State.FAILED, AccountOpening.State.DECLINED]
    return AccountOpening.objects.filter(**trader).exclude(state__in=unfinished)


def openings_in_progress(*, trader: Trader) -> list[Any]:
    """The trader's account openings that are not finished, newest first."""
    return list(unfinished_openings(trader=trader).select_related("account_type").order_by("-created_at")[:5])


# --- account history ---
# Resolution name -> (truncation kind, seconds).
HISTORY_RESOLUTIONS: dict[str, tuple[str, int]] = {
    "minute": ("minute", 60),
    "hour": ("hour", 3600),
    "day": ("day", 86400),
}


@dataclass(frozen=True)
class HistoryPoint:
    at: datetime
    balance: Decimal
    equity: Decimal
    used_margin: Decimal


def auto_resolution(start: datetime, end: datetime) -> str:
    """The finest resolution the history keeps for a span: minutes for a day, hours for a month, else days."""
    span = end - start
    if span <= timedelta(days=2):
        return "minute"
    if span <= timedelta(days=45):
        return "hour"
    return "day"


def account_history(
    *, account: TradingAccount, start: datetime, end: datetime, resolution: str, with_prior: bool = False
) -> list[HistoryPoint]:
    """The account's history between ``start`` and ``end`` (inclusive), the last point of each bucket.

    ``account`` comes from ``accounts_for_user``, so the read is scoped to the signed-in trader. With
    ``with_prior`` the last point before ``start`` comes first (a chart starts from the value it had then).
    """
    kind, _seconds = HISTORY_RESOLUTIONS[resolution]
    rows = (
        AccountSnapshot.objects.filter(account_id=account.pk, at__gte=start, at__lte=end)
        .annotate(
            rank=Window(RowNumber(), partition_by=[Trunc("at", kind)], order_by=F("at").desc()),
        )
        .filter(rank=1)
        .order_by("at")
        .values_list("at", "balance", "equity", "used_margin")
    )
    points = [HistoryPoint(*row) for row in rows]
    if with_prior:
        prior = (
            AccountSnapshot.objects.filter(account_id=account.pk, at__lt=start)
            .order_by("-at")
            .values_list("at", "balance", "equity", "used_margin")
            .first()
        )
        if prior is not None:
            points.insert(0, HistoryPoint(*prior))
    return points


def keyset_batches(
    queryset: QuerySet[Any], *, batch_size: int, value: str = "pk", key: str = "pk"
) -> Iterator[list[Any]]:
    """The ``value`` of every row of ``queryset`` in lists of ``batch_size``, in ``key`` order.

    Keyset paging: each batch is one query that starts after the last key seen, so every batch costs the
    same on a large table (no OFFSET) and rows added behind the cursor meanwhile are not read twice.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    after: Any = None
    while True:
        page = queryset if after is None else queryset.filter(**{f"{key}__gt": after})
        rows = list(page.order_by(key).values_list(key, value)[:batch_size])
        if rows:
            yield [row[1] for row in rows]
            after = rows[-1][0]
        if len(rows) < batch_size:
            return


def gateway_processes() -> list[dict[str, Any]]:
    """Every Open API gateway process that has a lease row: where it runs, what it holds, its connections.

    ``alive`` is false once the lease has run out (the process is dead or cut off; the next lease tick of
    another process removes it and takes its cTIDs over).
    """
    now = timezone.now()
    return [
        {
            "host": p.host,
            "pid": p.pid,
            "environments": p.environments,
            "started_at": p.started_at,
            "alive": p.lease_until >= now,
            "lease_until": p.lease_until,
            "heartbeat_at": p.heartbeat_at,
            "ctids_held": p.ctids_held,
            "accounts_held": p.accounts_held,
            "accounts_authorized": p.accounts_authorized,
            "connections": {
                name: {
                    key: status.get(key)
                    for key in (
                        "state",
                        "connected_since",
                        "authorized_accounts",
                        "last_event",
                        "last_event_at",
                        "last_error",
                        "last_error_at",
                        "heartbeat_at",
                    )
                }
                for name, status in sorted((p.status or {}).items())
            },
        }
        for p in GatewayProcess.objects.order_by("started_at", "pk")
    ]


def ctid_job_for_user(*, user: Any, public_id: Any) -> CtidJob | None:
    """One of the user's own cTID jobs by its public id, or None (another trader's job is not found)."""
    return CtidJob.objects.filter(trader__user=user, public_id=public_id).first()


def ctid_tokens_lost_refreshes(*, older_than_seconds: float, limit: int = 1000) -> list[tuple[int, int]]:
    """(cTID id, version) of active tokens whose last refresh answer was lost and is not being retried."""
    now = timezone.now()
    return list(
        CtidToken.objects.filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now),
            state=CtidToken.State.ACTIVE,
            last_refresh_outcome=CtidToken.Outcome.TRANSIENT,
            last_refresh_error__startswith="ambiguous",
            last_refresh_at__lt=now - timedelta(seconds=older_than_seconds),
        )
        .order_by("last_refresh_at")
        .values_list("ctid_id", "version")[:limit]
    )
