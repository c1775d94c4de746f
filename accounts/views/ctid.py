"""Connecting a cTrader ID, its OAuth callback, and the trader's "Refresh accounts" button."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Ctid
from accounts.selectors import trader_for_user_or_404
from accounts.services.ctids import ConnectError, ConnectPending, ctid_connect_complete, ctid_connect_start
from accounts.services.sync import SyncError, SyncNeedsReconnect, ctid_sync_accounts


@login_required
@require_POST
def ctid_connect(request: HttpRequest) -> HttpResponse:
    """Send the trader to the cTrader ID consent page (also the Reconnect button)."""
    url = ctid_connect_start(trader=trader_for_user_or_404(user=request.user), session=request.session)
    return HttpResponseRedirect(url)


@never_cache
@login_required
@require_GET
def ctid_callback(request: HttpRequest) -> HttpResponse:
    trader = trader_for_user_or_404(user=request.user)
    try:
        result = ctid_connect_complete(
            trader=trader,
            session=request.session,
            state=request.GET.get("state", ""),
            code=request.GET.get("code", ""),
            error=request.GET.get("error", ""),
        )
    except ConnectPending as exc:
        return render(request, "accounts/ctid_connect_pending.html", status=exc.status)
    except ConnectError as exc:
        return render(
            request,
            "accounts/ctid_connect_error.html",
            {"title": exc.title, "message": str(exc), "code": exc.code},
            status=exc.status,
        )
    verb = "connected" if result.created else "reconnected"
    if result.sync is not None:
        messages.success(
            request,
            f"cTrader ID {result.ctid.user_id} {verb}: {result.sync.active} trading account(s) found.",
        )
    else:
        messages.warning(
            request,
            f"cTrader ID {result.ctid.user_id} {verb}, but its accounts could not be read yet "
            f"({result.sync_error}). Use \u201cRefresh accounts\u201d in a moment.",
        )
    return redirect("dashboard")


@login_required
@require_POST
def ctid_sync(request: HttpRequest, pk: int) -> HttpResponse:
    # Scoped to the signed-in trader: another trader's cTID is a 404.
    ctid = get_object_or_404(Ctid, pk=pk, trader__user=request.user)
    try:
        result = ctid_sync_accounts(ctid_id=ctid.pk)
    except SyncNeedsReconnect:
        messages.error(
            request, f"cTrader ID {ctid.user_id} needs to be reconnected before its accounts can be read."
        )
    except SyncError as exc:
        messages.error(request, f"The accounts of cTrader ID {ctid.user_id} could not be refreshed: {exc}")
    else:
        messages.success(
            request, f"Accounts of cTrader ID {ctid.user_id} refreshed: {result.active} active account(s)."
        )
    return redirect("dashboard")
