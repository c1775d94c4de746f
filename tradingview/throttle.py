"""Failed client authentications at the token endpoint: throttled, and audited as one record with a count.

Failures are counted per (client id, client address) and per address alone, over a sliding window of
``TRADINGVIEW_TOKEN_FAILURE_WINDOW_SECONDS``. Past ``TRADINGVIEW_TOKEN_CLIENT_FAILURE_LIMIT`` for a client
from one address, or ``TRADINGVIEW_TOKEN_ADDRESS_FAILURE_LIMIT`` from one address, that address is answered
429 with ``Retry-After`` before any secret is checked. A client's failures from one address never block the
same client calling from elsewhere, so guessing at TradingView's client id cannot cut TradingView off.

The counter is the audit record itself: repeated failures of one client from one address within the window
update one ``client_auth``/``invalid_client`` record (``detail.count``, ``first_at``, ``last_at``) instead of
writing a row each; the audit table's partial index ``audit_token_failures`` finds an address's records.

The usual code exchange asks in its own statement whether its address has any such record in the window
(``statements.code_take``), and takes the code only if it has none: no round trip of its own. Anything else
(a refresh, an error, an address with a failure in the window) goes through ``token_client_blocked`` first. A
cache flag per address, set with every failure, spares those calls the query: only an address with a failure
in the window is counted (and every address is, when the cache cannot answer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from accounts.models import AuditEvent

logger = logging.getLogger(__name__)

AUDIT_CATEGORY = "tradingview"
ACTION, OUTCOME = "client_auth", "invalid_client"


@dataclass(frozen=True)
class Blocked:
    retry_after: int


def _window() -> timedelta:
    return timedelta(seconds=settings.TRADINGVIEW_TOKEN_FAILURE_WINDOW_SECONDS)


def _failures() -> QuerySet[AuditEvent]:
    """The failure records that count, with ``address`` as text, as the partial index audit_token_failures
    holds it."""
    return AuditEvent.objects.filter(
        category=AUDIT_CATEGORY, action=ACTION, outcome=OUTCOME, created_at__gte=window_start()
    ).alias(address=KeyTextTransform("address", "detail"))


def window_start() -> datetime:
    """The oldest failure record that still counts."""
    return timezone.now() - _window()


def _count(rows: QuerySet[AuditEvent]) -> tuple[int, AuditEvent | None]:
    total, oldest = 0, None
    for row in rows.only("detail", "created_at"):
        total += int(row.detail.get("count", 1))
        if oldest is None or row.created_at < oldest.created_at:
            oldest = row
    return total, oldest


def _flag(address: str) -> str:
    return f"tv-token-failed:{address}"


def _failed_recently(address: str) -> bool:
    try:
        return cache.get(_flag(address)) is not None
    except Exception:  # the cache is down: count from the audit records instead
        logger.warning("token throttle cache unavailable; counting from the database")
        return True


def token_client_blocked(*, client_id: str | Callable[[], str], address: str | None) -> Blocked | None:
    """Whether this address must wait before its next client authentication, and for how long.

    ``client_id`` may be a callable, called only when the address has failed recently (it may need a query).
    """
    if not address:
        return None
    if not _failed_recently(address):
        return None
    if callable(client_id):
        client_id = client_id()
    by_address = _failures().filter(Q(address=address))
    for rows, limit in (
        (
            by_address.filter(detail__client_id=client_id[:100]),
            settings.TRADINGVIEW_TOKEN_CLIENT_FAILURE_LIMIT,
        ),
        (by_address, settings.TRADINGVIEW_TOKEN_ADDRESS_FAILURE_LIMIT),
    ):
        total, oldest = _count(rows)
        if total >= limit and oldest is not None:
            ends = oldest.created_at + _window()
            return Blocked(retry_after=max(1, int((ends - timezone.now()).total_seconds()) + 1))
    return None


def token_client_failure_record(*, client_id: str, address: str | None) -> AuditEvent:
    """Count one failed client authentication in the open record for this client and address."""
    client_id = client_id[:100]
    now = timezone.now()
    if address:
        try:
            cache.set(_flag(address), 1, timeout=settings.TRADINGVIEW_TOKEN_FAILURE_WINDOW_SECONDS)
        except Exception:  # the flag only saves queries; the audit record below is the counter
            logger.warning("token throttle cache unavailable; failure counted in the database only")
    with transaction.atomic():
        row = (
            _failures()
            .select_for_update()
            .filter(Q(address=address), detail__client_id=client_id)
            .order_by("-created_at")
            .first()
        )
        if row is None:
            return AuditEvent.objects.create(
                category=AUDIT_CATEGORY,
                action=ACTION,
                outcome=OUTCOME,
                message="Client authentication failed at the token endpoint.",
                detail={
                    "client_id": client_id,
                    "address": address,
                    "count": 1,
                    "first_at": now.isoformat(),
                    "last_at": now.isoformat(),
                },
            )
        count = int(row.detail.get("count", 1)) + 1
        row.detail = {**row.detail, "count": count, "last_at": now.isoformat()}
        row.message = f"Client authentication failed {count} times at the token endpoint."
        row.save(update_fields=["detail", "message"])
        return row
