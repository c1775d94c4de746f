"""Storing account figures in bulk, with their history, and keeping the history bounded.

One statement per batch: the latest figures of every account in the batch are upserted and, for each account
whose figures moved enough since its last history point, a history row is added. A figure never goes back in
time: an update older than the stored one (``read_at``), or with a lower ``balanceVersion``, is ignored.

On PostgreSQL the batch travels as arrays (``unnest``) and the scaling by ``moneyDigits`` is done by the
database, so a page of the WebServices list is stored without a Decimal being built in Python; other
databases (the embedded SQLite) take a portable path with the same rules.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber, Trunc
from django.utils import timezone

from accounts.ctrader.figures import margin_level, scaled
from accounts.models import AccountFigures, AccountSnapshot, TradingAccount

logger = logging.getLogger(__name__)

Key = Literal["ctid_trader_account_id", "login"]


@dataclass
class FigureRows:
    """A batch of figures as columns. Money is ``value / 10^scale``: raw integers from the wire with
    ``scale`` = moneyDigits, or Decimals with ``scale`` 0."""

    keys: list[int] = field(default_factory=list)
    balance: list[int | Decimal] = field(default_factory=list)
    equity: list[int | Decimal] = field(default_factory=list)
    used_margin: list[int | Decimal] = field(default_factory=list)
    free_margin: list[int | Decimal] = field(default_factory=list)
    scale: list[int] = field(default_factory=list)
    money_digits: list[int] = field(default_factory=list)
    currency: list[str] = field(default_factory=list)
    positions_count: list[int | None] = field(default_factory=list)
    positions_volume: list[Decimal | None] = field(default_factory=list)
    balance_version: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class StoreResult:
    received: int
    stored: int
    snapshots: int


def _snapshot_rule() -> tuple[float, Decimal]:
    return float(settings.FIGURES_SNAPSHOT_SECONDS), Decimal(str(settings.FIGURES_SIGNIFICANT_CHANGE_PERCENT))


_PG_STORE = """
WITH incoming AS (
    SELECT * FROM unnest(
        %(keys)s::bigint[], %(balance)s::numeric[], %(equity)s::numeric[], %(used)s::numeric[],
        %(free)s::numeric[], %(scale)s::int[], %(digits)s::int[], %(currency)s::text[],
        %(pcount)s::int[], %(pvolume)s::numeric[], %(bversion)s::bigint[]
    ) AS t(key, balance, equity, used, free, scale, digits, currency, pcount, pvolume, bversion)
), scaled AS (
    SELECT ta.id AS account_id,
           i.balance / power(10::numeric, i.scale) AS balance,
           i.equity / power(10::numeric, i.scale) AS equity,
           i.used / power(10::numeric, i.scale) AS used,
           i.free / power(10::numeric, i.scale) AS free,
           i.digits, COALESCE(NULLIF(i.currency, ''), ta.currency) AS currency, i.pcount, i.pvolume, i.bversion
    FROM incoming i JOIN {accounts} ta ON ta.{key} = i.key {account_filter}
), upserted AS (
    INSERT INTO {figures} AS f (
        account_id, source, currency, money_digits, balance, equity, used_margin, free_margin,
        unrealized_pnl, margin_level, positions_count, positions_volume, balance_version, read_at,
        snapshot_at, snapshot_balance, snapshot_equity
    )
    SELECT account_id, %(source)s, currency, digits, balance, equity, used, free, equity - balance,
           CASE WHEN used > 0 THEN round(equity * 100 / used, 4) END, pcount, pvolume, bversion,
           %(read_at)s, %(read_at)s, balance, equity
    FROM scaled
    ON CONFLICT (account_id) DO UPDATE SET
        source = EXCLUDED.source, currency = EXCLUDED.currency, money_digits = EXCLUDED.money_digits,
        balance = EXCLUDED.balance, equity = EXCLUDED.equity, used_margin = EXCLUDED.used_margin,
        free_margin = EXCLUDED.free_margin, unrealized_pnl = EXCLUDED.unrealized_pnl,
        margin_level = EXCLUDED.margin_level, positions_count = EXCLUDED.positions_count,
        positions_volume = EXCLUDED.positions_volume,
        balance_version = COALESCE(EXCLUDED.balance_version, f.balance_version),
        read_at = EXCLUDED.read_at,
        snapshot_at = CASE WHEN {due} THEN EXCLUDED.read_at ELSE f.snapshot_at END,
        snapshot_balance = CASE WHEN {due} THEN EXCLUDED.balance ELSE f.snapshot_balance END,
        snapshot_equity = CASE WHEN {due} THEN EXCLUDED.equity ELSE f.snapshot_equity END
    WHERE EXCLUDED.read_at >= f.read_at
      AND (f.balance_version IS NULL OR EXCLUDED.balance_version IS NULL
           OR EXCLUDED.balance_version >= f.balance_version)
    RETURNING f.account_id, f.snapshot_at = f.read_at AS due, f.read_at, f.balance, f.equity, f.used_margin
), added AS (
    INSERT INTO {snapshots} (account_id, at, resolution, balance, equity, used_margin)
    SELECT account_id, read_at, 0, balance, equity, used_margin FROM upserted WHERE due
    ON CONFLICT (account_id, at) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM upserted), (SELECT count(*) FROM added)
"""

# A history row is due when the balance moved (a deposit, a withdrawal, a closed trade), or the equity moved
# and either the minimum spacing has passed or the move is significant.
_DUE = (
    "(f.snapshot_at IS NULL OR EXCLUDED.balance <> f.snapshot_balance"
    " OR (EXCLUDED.equity <> f.snapshot_equity AND (EXCLUDED.read_at - f.snapshot_at >= %(spacing)s"
    " OR abs(EXCLUDED.equity - f.snapshot_equity) * 100 >= %(significant)s * abs(f.snapshot_equity))))"
)


def account_figures_store(
    *,
    rows: FigureRows,
    key: Key,
    source: str,
    read_at: datetime,
    is_live: bool | None = None,
    broker_accounts_only: bool = False,
) -> StoreResult:
    """Upsert the latest figures of a batch of accounts and add their due history rows, in one transaction.

    ``key`` names the account column the batch is keyed by: ``ctid_trader_account_id`` (Open API) or
    ``login`` with ``is_live`` (WebServices, whose logins are unique per environment of the broker's server;
    ``broker_accounts_only`` then leaves out accounts of brokers that have no jurisdiction here). Keys that
    match no account are skipped.
    """
    if key not in ("ctid_trader_account_id", "login"):
        raise ValueError(f"unknown account key {key!r}")
    if not len(rows):
        return StoreResult(0, 0, 0)
    if connection.vendor == "postgresql":
        return _store_postgresql(rows, key, source, read_at, is_live, broker_accounts_only)
    return _store_portable(rows, key, source, read_at, is_live, broker_accounts_only)


def _store_postgresql(
    rows: FigureRows, key: Key, source: str, read_at: datetime, is_live: bool | None, broker_only: bool
) -> StoreResult:
    spacing, significant = _snapshot_rule()
    account_filter = ""
    if is_live is not None:
        account_filter += " AND ta.is_live = %(is_live)s"
    if broker_only:
        account_filter += " AND ta.jurisdiction_id IS NOT NULL"
    sql = _PG_STORE.format(
        accounts=TradingAccount._meta.db_table,
        figures=AccountFigures._meta.db_table,
        snapshots=AccountSnapshot._meta.db_table,
        key=key,
        account_filter=account_filter,
        due=_DUE,
    )
    params: dict[str, Any] = {
        "keys": _pg_array(rows.keys),
        "balance": _pg_array(rows.balance),
        "equity": _pg_array(rows.equity),
        "used": _pg_array(rows.used_margin),
        "free": _pg_array(rows.free_margin),
        "scale": _pg_array(rows.scale),
        "digits": _pg_array(rows.money_digits),
        "currency": _pg_array(rows.currency, text=True),
        "pcount": _pg_array(rows.positions_count),
        "pvolume": _pg_array(rows.positions_volume),
        "bversion": _pg_array(rows.balance_version),
        "source": source,
        "read_at": read_at,
        "is_live": is_live,
        "spacing": timedelta(seconds=spacing),
        "significant": significant,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        # Figures are read again at the next refresh: a crash may lose the last page's write, never corrupt
        # it, so this transaction does not wait for its WAL flush.
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute(sql, params)
        stored, added = cursor.fetchone()
    return StoreResult(len(rows), int(stored), int(added))


def _pg_array(values: Sequence[object], *, text: bool = False) -> str:
    """A PostgreSQL array literal (cast in the statement). Django's client-side parameter binding would dump
    a 10,000-element list item by item, several times slower than the statement itself."""
    if not text and None not in values:
        return "{" + ",".join(map(str, values)) + "}"
    if text:
        items = (
            "NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in values
        )
    else:
        items = ("NULL" if v is None else str(v) for v in values)
    return "{" + ",".join(items) + "}"


def _store_portable(
    rows: FigureRows, key: Key, source: str, read_at: datetime, is_live: bool | None, broker_only: bool
) -> StoreResult:
    spacing, significant = _snapshot_rule()
    accounts = TradingAccount.objects.filter(**{f"{key}__in": rows.keys})
    if is_live is not None:
        accounts = accounts.filter(is_live=is_live)
    if broker_only:
        accounts = accounts.filter(jurisdiction__isnull=False)
    by_key: dict[int, list[tuple[int, str]]] = {}
    for account_id, key_value, currency in accounts.values_list("id", key, "currency"):
        by_key.setdefault(key_value, []).append((account_id, currency))
    stored: list[AccountFigures] = []
    snapshots: list[AccountSnapshot] = []
    with transaction.atomic():
        existing = {
            f.account_id: f
            for f in AccountFigures.objects.select_for_update().filter(
                account_id__in=[a for matches in by_key.values() for a, _ in matches]
            )
        }
        for i, key_value in enumerate(rows.keys):
            for account_id, account_currency in by_key.get(key_value, []):
                balance = scaled_value(rows.balance[i], rows.scale[i])
                equity = scaled_value(rows.equity[i], rows.scale[i])
                used = scaled_value(rows.used_margin[i], rows.scale[i])
                version = rows.balance_version[i]
                old = existing.get(account_id)
                if old is not None and (
                    read_at < old.read_at
                    or (
                        version is not None
                        and old.balance_version is not None
                        and version < old.balance_version
                    )
                ):
                    continue
                due = (
                    old is None
                    or old.snapshot_at is None
                    or balance != old.snapshot_balance
                    or (
                        equity != old.snapshot_equity
                        and (
                            (read_at - old.snapshot_at).total_seconds() >= spacing
                            or abs(equity - (old.snapshot_equity or Decimal(0))) * 100
                            >= significant * abs(old.snapshot_equity or Decimal(0))
                        )
                    )
                )
                figures = AccountFigures(
                    account_id=account_id,
                    source=source,
                    currency=rows.currency[i] or account_currency,
                    money_digits=rows.money_digits[i],
                    balance=balance,
                    equity=equity,
                    used_margin=used,
                    free_margin=scaled_value(rows.free_margin[i], rows.scale[i]),
                    unrealized_pnl=equity - balance,
                    margin_level=margin_level(equity, used),
                    positions_count=rows.positions_count[i],
                    positions_volume=rows.positions_volume[i],
                    balance_version=version if version is not None or old is None else old.balance_version,
                    read_at=read_at,
                    snapshot_at=read_at if due or old is None else old.snapshot_at,
                    snapshot_balance=balance if due or old is None else old.snapshot_balance,
                    snapshot_equity=equity if due or old is None else old.snapshot_equity,
                )
                stored.append(figures)
                if due:
                    snapshots.append(
                        AccountSnapshot(
                            account_id=account_id,
                            at=read_at,
                            balance=balance,
                            equity=equity,
                            used_margin=used,
                        )
                    )
        AccountFigures.objects.bulk_create(
            stored,
            update_conflicts=True,
            unique_fields=["account"],
            update_fields=[
                f.name
                for f in AccountFigures._meta.concrete_fields
                if f.name != "account" and not f.primary_key
            ],
        )
        AccountSnapshot.objects.bulk_create(snapshots, ignore_conflicts=True)
    return StoreResult(len(rows), len(stored), len(snapshots))


def scaled_value(value: int | Decimal, scale: int) -> Decimal:
    if isinstance(value, Decimal):
        return value.scaleb(-scale) if scale else value
    return scaled(value, scale)


# --- retention and downsampling ---
@dataclass(frozen=True)
class RetentionResult:
    hourly: int
    daily: int
    deleted: int


def _downsample(
    *, from_resolution: int, to_resolution: int, older_than: datetime, kind: str, batch_size: int
) -> tuple[int, int]:
    """Keep the last row of each ``kind`` bucket (hour or day) of rows older than ``older_than``.

    Only whole buckets are touched (``older_than`` is rounded down to a bucket boundary), one batch of
    accounts per transaction, so the task can stop at any point and resume.
    """
    kept = deleted = 0
    after = 0
    while True:
        account_ids = list(
            AccountSnapshot.objects.filter(
                resolution=from_resolution, at__lt=older_than, account_id__gt=after
            )
            .order_by("account_id")
            .values_list("account_id", flat=True)
            .distinct()[:batch_size]
        )
        if not account_ids:
            return kept, deleted
        after = account_ids[-1]
        rows = AccountSnapshot.objects.filter(
            resolution=from_resolution, at__lt=older_than, account_id__in=account_ids
        )
        last_of_bucket = (
            rows.annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("account_id"), Trunc("at", kind)],
                    order_by=F("at").desc(),
                )
            )
            .filter(rank=1)
            .values_list("id", flat=True)
        )
        with transaction.atomic():
            keep = list(last_of_bucket)
            kept += AccountSnapshot.objects.filter(id__in=keep).update(resolution=to_resolution)
            deleted += rows.exclude(id__in=keep).delete()[0]


def account_snapshots_retention(*, now: datetime | None = None, batch_size: int = 500) -> RetentionResult:
    """Downsample and bound the history: full resolution for ``FIGURES_RAW_RETENTION_HOURS``, then hourly
    for ``FIGURES_HOURLY_RETENTION_DAYS``, then daily for ``FIGURES_DAILY_RETENTION_DAYS``; older rows go."""
    now = now or timezone.now()
    hour_cut = (now - timedelta(hours=settings.FIGURES_RAW_RETENTION_HOURS)).replace(
        minute=0, second=0, microsecond=0
    )
    day_cut = (now - timedelta(days=settings.FIGURES_HOURLY_RETENTION_DAYS)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    # Past the horizon first: nothing is downsampled only to be deleted.
    horizon = now - timedelta(days=settings.FIGURES_DAILY_RETENTION_DAYS)
    deleted_old = AccountSnapshot.objects.filter(at__lt=horizon).delete()[0]
    hourly, deleted_raw = _downsample(
        from_resolution=AccountSnapshot.Resolution.RAW,
        to_resolution=AccountSnapshot.Resolution.HOUR,
        older_than=hour_cut,
        kind="hour",
        batch_size=batch_size,
    )
    # Raw rows that fell past the daily cut-off in one go (a long pause of the task) are downsampled too.
    daily = 0
    deleted = deleted_old + deleted_raw
    for resolution in (AccountSnapshot.Resolution.HOUR, AccountSnapshot.Resolution.RAW):
        kept, removed = _downsample(
            from_resolution=resolution,
            to_resolution=AccountSnapshot.Resolution.DAY,
            older_than=day_cut,
            kind="day",
            batch_size=batch_size,
        )
        daily += kept
        deleted += removed
    result = RetentionResult(hourly, daily, deleted)
    logger.info(
        "account history retention",
        extra={"hourly": result.hourly, "daily": result.daily, "deleted": result.deleted},
    )
    return result
