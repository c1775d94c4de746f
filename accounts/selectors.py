"""Reads shared by the trader-facing views and API. Every query starts from the signed-in user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from accounts.models import Ctid, CtidJob, GatewayProcess, Trader, TradingAccount


def trader_for_user(*, user: Any) -> Trader | None:
    """The user's Trader profile, or None (staff users and anonymous users have none)."""
    if not user.is_authenticated:
        return None
    return Trader.objects.filter(user=user).first()


def ctids_for_user(*, user: Any) -> QuerySet[Ctid]:
    """The user's cTIDs, each with its trading accounts (and their jurisdictions) prefetched."""
    return (
        Ctid.objects.filter(trader__user=user)
        .order_by("created_at")
        .prefetch_related(
            Prefetch(
                "accounts",
                queryset=TradingAccount.objects.select_related("jurisdiction").order_by("-is_live", "login"),
            )
        )
    )


def accounts_for_user(*, user: Any) -> QuerySet[TradingAccount]:
    """The user's trading accounts across all their cTIDs."""
    return (
        TradingAccount.objects.filter(ctid__trader__user=user)
        .select_related("ctid", "jurisdiction")
        .order_by("-is_live", "login")
    )


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
