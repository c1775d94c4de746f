"""Refreshing every account's figures from the broker's WebServices trader list, in pages.

With manager credentials configured for an environment, this is the primary source: ``GET`` calls are not
rate limited, and one page of ``GET /v2/webserv/traders/`` carries balance, equity, used and free margin of
many traders at once. A page is one trader group (``groupId``), over every registration and update time.
Pages are read by a second thread while the previous page is being stored, so the database write overlaps
the network read instead of adding to it. Logins are unique per environment of the broker's server: a page
is matched to our accounts by login and environment, among accounts whose broker has a jurisdiction here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from accounts.ctrader.webservices import Trader, WebServicesClient, WebServicesError
from accounts.models import AccountFigures
from accounts.services.figures import FigureRows, StoreResult, account_figures_store
from accounts.services.opening import webservices_client as opening_webservices_client
from accounts.services.opening import webservices_configured

logger = logging.getLogger(__name__)

# The list's window starts before any trading account can have been registered, and ends a day after our
# clock's now so a trader updated a moment ago on a server whose clock runs ahead is still listed.
LIST_FROM = datetime(2000, 1, 1, tzinfo=UTC)
LIST_AHEAD = timedelta(days=1)


class FiguresWebServicesError(Exception):
    """The WebServices list could not be read; the message names the call, never a credential."""


def webservices_client(environment: str) -> WebServicesClient | None:
    """The process's WebServices client of one environment (the one account opening uses: its manager token is
    fetched once, not at every refresh), or None when its manager credentials are not configured."""
    if not webservices_configured(environment=environment):
        return None
    return opening_webservices_client(environment=environment)


def webservices_environments() -> list[str]:
    return [e for e in ("live", "demo") if webservices_client(e) is not None]


def trader_rows(traders: list[Trader]) -> FigureRows:
    """A page of the list as store columns: the wire's integers, scaled by the database."""
    rows = FigureRows(
        keys=[t.login for t in traders],
        balance=[t.balance for t in traders],
        equity=[t.equity for t in traders],
        used_margin=[t.used_margin for t in traders],
        free_margin=[t.free_margin for t in traders],
        scale=[t.money_digits for t in traders],
        money_digits=[t.money_digits for t in traders],
        currency=[t.deposit_currency for t in traders],
    )
    rows.positions_count = [None] * len(traders)
    rows.positions_volume = [None] * len(traders)
    rows.balance_version = [None] * len(traders)
    return rows


@dataclass(frozen=True)
class Page:
    traders: list[Trader]
    read_at: datetime


def list_pages(client: WebServicesClient, *, now: datetime | None = None) -> Iterator[Page]:
    """The trader list, one page per trader group (or one page when the broker has no groups)."""
    to = (now or timezone.now()) + LIST_AHEAD
    group_ids: list[int | None] = [g.id for g in client.trader_groups()]
    for group_id in group_ids or [None]:
        traders = client.traders_list(LIST_FROM, to, group_id=group_id)
        yield Page(traders, timezone.now())


def _prefetched(pages: Iterator[Page]) -> Iterator[Page]:
    """Yield ``pages`` while the next one is already being read by another thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="webservices-pages") as pool:
        sentinel = object()

        def take() -> object:
            return next(pages, sentinel)

        pending: Future[object] = pool.submit(take)
        while True:
            page = pending.result()
            if page is sentinel:
                return
            pending = pool.submit(take)
            assert isinstance(page, Page)
            yield page


def environment_figures_refresh(
    *,
    environment: str,
    client: WebServicesClient | None = None,
    store: Callable[..., StoreResult] | None = None,
) -> StoreResult:
    """Read every page of one environment's trader list and store the figures of the accounts we know."""
    client = client or webservices_client(environment)
    if client is None:
        raise FiguresWebServicesError(f"No WebServices manager credentials for {environment}.")
    store = store or account_figures_store
    received = stored = snapshots = 0
    try:
        for page in _prefetched(list_pages(client)):
            result = store(
                rows=trader_rows(page.traders),
                key="login",
                is_live=environment == "live",
                broker_accounts_only=True,
                source=AccountFigures.Source.WEBSERVICES,
                read_at=page.read_at,
            )
            received += result.received
            stored += result.stored
            snapshots += result.snapshots
    except WebServicesError as exc:
        raise FiguresWebServicesError(str(exc)) from None
    logger.info(
        "account figures read from the WebServices list",
        extra={"environment": environment, "traders": received, "stored": stored, "snapshots": snapshots},
    )
    return StoreResult(received, stored, snapshots)
