"""How N gateway processes divide the cTIDs among themselves through PostgreSQL.

Invariants:

- A process owns a cTID (``GatewayAssignment``) only while its own lease (``GatewayProcess.lease_until``)
  lasts; it renews the lease every few seconds. A cTID's live and demo accounts go with the cTID, so one
  process holds both.
- A process whose lease has run out is dead to the others: the first survivor to notice deletes its row, and
  its assignments with it, so they can be claimed. A live process that could not renew in time has already
  dropped its accounts itself (the gateway fences itself a tick before the lease ends).
- Claims lock the unassigned cTID rows with ``FOR UPDATE SKIP LOCKED``: two processes never claim the same
  cTID, and neither waits for the other.
- A process that holds more than its fair share hands back a few cTIDs per tick, and only after it has
  logged out their accounts: another process can claim a cTID only once its row is gone, so no account is
  ever authorized by two processes at the same time.

The change feed: triggers (migration 0003) append a row to ``GatewayChange`` for every cTID whose token,
link, accounts or trader changed, and NOTIFY ``clientarea_gateway``. Gateways read the rows after their
cursor and reload only those cTIDs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import Ctid, CtidToken, GatewayAssignment, GatewayChange, GatewayProcess, TradingAccount

# Rows older than this are removed from the change feed; a gateway that falls further behind reloads all.
CHANGE_RETENTION = timedelta(hours=1)
# A change row is re-read until it is this old, so a transaction that committed after a later one is seen.
CHANGE_SETTLE = timedelta(seconds=5)


@dataclass(frozen=True)
class LeasePlan:
    held: frozenset[int]  # the cTIDs this process holds after this tick
    release: tuple[int, ...] = ()  # cTIDs to hand back once their accounts are logged out
    processes: int = 1
    lost: bool = False  # the lease had run out and others may have taken the cTIDs: drop everything


def _claimable() -> QuerySet[Ctid]:
    """cTIDs with something to keep authorized: connected, token active, trader not suspended, an account."""
    return Ctid.objects.filter(
        Exists(TradingAccount.objects.filter(ctid=OuterRef("pk"), status=TradingAccount.Status.ACTIVE)),
        state=Ctid.State.CONNECTED,
        token__state=CtidToken.State.ACTIVE,
        trader__suspended=False,
    )


def gateway_process_register(
    *, name: str, host: str, pid: int, environments: list[str], lease_seconds: float
) -> None:
    now = timezone.now()
    GatewayProcess.objects.update_or_create(
        name=name,
        defaults={
            "host": host[:255],
            "pid": pid,
            "environments": environments,
            "lease_until": now + timedelta(seconds=lease_seconds),
            "heartbeat_at": now,
        },
    )


def gateway_lease_tick(
    *,
    name: str,
    lease_seconds: float,
    claim: bool = True,
    claim_limit: int = 100_000,
    release_limit: int = 200,
    stats: dict[str, Any] | None = None,
) -> LeasePlan:
    """Renew this process's lease, clear dead processes, then claim up to or hand back down to a fair share."""
    now = timezone.now()
    values: dict[str, Any] = {"lease_until": now + timedelta(seconds=lease_seconds), "heartbeat_at": now}
    if stats:
        values.update(stats)
    me = GatewayProcess.objects.filter(name=name, lease_until__gte=now).update(**values)
    if not me:
        # Our lease ran out (a stall, a lost database): whatever we held may be someone else's by now.
        GatewayProcess.objects.filter(name=name).delete()
        return LeasePlan(frozenset(), lost=True)
    process = GatewayProcess.objects.only("pk").get(name=name)
    GatewayProcess.objects.filter(lease_until__lt=now).delete()  # the dead, and their assignments
    processes = GatewayProcess.objects.filter(lease_until__gte=now).count()
    claimable = _claimable()
    # cTIDs that became unusable are no longer held (their accounts are no longer loaded either).
    GatewayAssignment.objects.filter(process=process).exclude(ctid__in=claimable.values("pk")).delete()
    held = set(GatewayAssignment.objects.filter(process=process).values_list("ctid_id", flat=True))
    share = math.ceil(claimable.count() / max(processes, 1))
    release: tuple[int, ...] = ()
    if claim and len(held) < share:
        want = min(share - len(held), claim_limit)
        with transaction.atomic():
            free = list(
                claimable.filter(~Exists(GatewayAssignment.objects.filter(ctid=OuterRef("pk"))))
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("pk")
                .values_list("pk", flat=True)[:want]
            )
            GatewayAssignment.objects.bulk_create(
                [GatewayAssignment(ctid_id=pk, process=process) for pk in free], ignore_conflicts=True
            )
        held = set(GatewayAssignment.objects.filter(process=process).values_list("ctid_id", flat=True))
    elif len(held) > share:
        release = tuple(sorted(held)[-min(len(held) - share, release_limit) :])
    return LeasePlan(frozenset(held), release, processes)


def gateway_lease_release(*, name: str, ctid_ids: list[int]) -> None:
    """Hand cTIDs back (their accounts are logged out): another process may claim them from now on."""
    GatewayAssignment.objects.filter(process__name=name, ctid_id__in=ctid_ids).delete()


def gateway_process_end(*, name: str) -> None:
    """A clean stop: the process and its assignments go at once, the others claim without waiting."""
    GatewayProcess.objects.filter(name=name).delete()


def gateway_process_stats(*, name: str, stats: dict[str, Any]) -> None:
    GatewayProcess.objects.filter(name=name).update(**stats)


# --- the change feed ---
def gateway_changes_supported() -> bool:
    return connection.vendor == "postgresql"


def gateway_changes_cursor() -> int:
    """Where a gateway that has just loaded everything starts reading the feed."""
    last = GatewayChange.objects.order_by("-id").values_list("id", flat=True).first()
    return last or 0


def gateway_changes_since(*, cursor: int, seen: set[int], limit: int = 10_000) -> tuple[int, set[int]]:
    """cTIDs changed after ``cursor`` that are not in ``seen`` (row ids already handled); the new cursor.

    The cursor only moves past rows older than CHANGE_SETTLE: a row whose transaction commits late (its id
    is lower than rows already read) is still found. ``seen`` is updated in place and trimmed.
    """
    now = timezone.now()
    rows = list(
        GatewayChange.objects.filter(id__gt=cursor)
        .order_by("id")
        .values_list("id", "ctid_id", "created_at")[:limit]
    )
    changed = {ctid for row_id, ctid, _ in rows if row_id not in seen}
    seen.update(row_id for row_id, _, _ in rows)
    # Move over the settled prefix only.
    new_cursor = cursor
    for row_id, _, created in rows:
        if created >= now - CHANGE_SETTLE:
            break
        new_cursor = row_id
    if len(rows) == limit and new_cursor == cursor:
        new_cursor = rows[-1][0]  # a burst larger than one read: never stall
    seen.difference_update({s for s in seen if s <= new_cursor})
    return new_cursor, changed


def gateway_changes_trim() -> int:
    deleted, _ = GatewayChange.objects.filter(created_at__lt=timezone.now() - CHANGE_RETENTION).delete()
    return deleted


def gateway_assigned_ctids(*, name: str) -> Q:
    """The filter of accounts whose cTID this process holds."""
    return Q(ctid__in=GatewayAssignment.objects.filter(process__name=name).values("ctid_id"))
