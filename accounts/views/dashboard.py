"""The trader's dashboard and account pages."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from accounts.charts import PERIODS, line_chart
from accounts.figures_display import figures_view, totals_per_currency
from accounts.models import AccountFigures, Ctid, TradingAccount
from accounts.selectors import (
    DashboardNotices,
    account_history,
    accounts_for_user,
    dashboard_ctids,
    dashboard_notices,
    openings_in_progress,
    trader_for_user,
)
from accounts.services.jobs import ctid_jobs_for_dashboard
from accounts.services.opening import opening_available
from accounts.views.dashboard_rows import AccountRows

logger = logging.getLogger(__name__)


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    trader = trader_for_user(user=request.user)
    listed = dashboard_ctids(user=request.user) if trader else []
    notices = dashboard_notices(user=request.user) if trader else DashboardNotices(False, False, False)
    ctids = [ctid for ctid, _accounts in listed]
    accounts = [account for _ctid, accounts in listed for account in accounts]
    now = timezone.now()
    rows = AccountRows(now=now)
    sections = [(ctid, rows.table(own)) for ctid, own in listed]
    return render(
        request,
        "accounts/dashboard.html",
        {
            "trader": trader,
            "ctids": ctids,
            "sections": sections,
            "account_header": rows.header,
            "needs_reconnect": [c for c in ctids if c.state == Ctid.State.NEEDS_RECONNECT],
            "account_count": len(accounts),
            "totals": totals_per_currency(accounts, now=now, number=rows.number),
            "margin_calls": rows.margin_calls,
            "can_open": bool(trader) and opening_available(),
            "openings": openings_in_progress(trader=trader) if trader and notices.openings else [],
            "jobs": ctid_jobs_for_dashboard(trader=trader) if trader and notices.jobs else [],
            "offer_two_factor": trader is not None and not notices.two_factor,
        },
    )


def _queue_figures_read(account: TradingAccount) -> bool:
    """Queue a fresh Open API read of an account whose figures are old; never waits for it.

    Without a broker (embedded mode) tasks would run inside this request, so nothing is queued there and the
    periodic refresh brings the figures. One read per account at a time: a short cache key dedupes reloads.
    """
    from accounts.tasks import refresh_ctid_figures

    if refresh_ctid_figures.app.conf.task_always_eager or account.status != TradingAccount.Status.ACTIVE:
        return False
    try:
        figures: AccountFigures | None = account.figures
    except AccountFigures.DoesNotExist:
        figures = None
    if figures is not None and (
        (timezone.now() - figures.read_at).total_seconds() < settings.FIGURES_ON_VIEW_REFRESH_SECONDS
    ):
        return False
    try:
        if not cache.add(f"figures-read:{account.pk}", 1, timeout=settings.FIGURES_ON_VIEW_REFRESH_SECONDS):
            return False
        refresh_ctid_figures.apply_async(args=(account.ctid_id, [account.ctid_trader_account_id]))
    except Exception as exc:  # a broker or cache outage must not break the page
        logger.warning("figures read not queued", extra={"account": account.pk, "error": type(exc).__name__})
        return False
    return True


@login_required
def account_detail(request: HttpRequest, ctid_trader_account_id: int) -> HttpResponse:
    account = get_object_or_404(
        accounts_for_user(user=request.user), ctid_trader_account_id=ctid_trader_account_id
    )
    period = request.GET.get("period", "day")
    if period not in PERIODS:
        period = "day"
    span, resolution = PERIODS[period]
    end = timezone.now()
    start = end - span
    points = account_history(account=account, start=start, end=end, resolution=resolution, with_prior=True)
    return render(
        request,
        "accounts/account_detail.html",
        {
            "account": account,
            "fig": figures_view(account, now=end),
            "chart": line_chart(points, period=period, start=start, end=end),
            "periods": list(PERIODS),
            "updating": _queue_figures_read(account),
        },
    )
