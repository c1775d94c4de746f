"""Connecting a cTrader ID, its OAuth callback, and the trader's "Refresh accounts" button."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Ctid, Trader
from accounts.services.ctids import (
    ConnectError,
    ctid_connect_complete,
    ctid_connect_start,
    ctid_disconnect,
)
from accounts.services.sync import SyncError, SyncNeedsReconnect, ctid_sync_accounts


def _trader(request: HttpRequest) -> Trader:
    return get_object_or_404(Trader, user=request.user)


@login_required
@require_POST
def ctid_connect(request: HttpRequest) -> HttpResponse:
    """Send the trader to the cTrader ID consent page (also the Reconnect button)."""
    url = ctid_connect_start(trader=_trader(request), session=request.session)
    return HttpResponseRedirect(url)


@never_cache
@login_required
@require_GET
def ctid_callback(request: HttpRequest) -> HttpResponse:
    trader = _trader(request)
    try:
        result = ctid_connect_complete(
            trader=trader,
            session=request.session,
            state=request.GET.get("state", ""),
            code=request.GET.get("code", ""),
            error=request.GET.get("error", ""),
        )
    except ConnectError as exc:
        return render(
            request,
            "accounts/ctid_connect_error.html",
            {"title": exc.title, "message": str(exc), "code": exc.code},
            status=exc.status,
        )
    values = {"id": result.ctid.user_id}
    if result.sync is not None:
        values["count"] = result.sync.active
        text = (
            _("cTrader ID %(id)s is connected: %(count)s trading account(s) found.")
            if result.created
            else _("cTrader ID %(id)s is reconnected: %(count)s trading account(s) found.")
        )
        messages.success(request, text % values)
    else:
        messages.warning(
            request,
            _(
                "cTrader ID %(id)s is connected, but we could not read its accounts yet. "
                "Use “Refresh accounts” in a minute."
            )
            % values,
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
            request,
            _(
                "cTrader ID %(id)s needs to be reconnected before we can read its accounts. Use Reconnect above."
            )
            % {"id": ctid.user_id},
        )
    except SyncError:
        messages.error(
            request,
            _(
                "We could not reach cTrader to refresh the accounts of cTrader ID %(id)s. Please try again later."
            )
            % {"id": ctid.user_id},
        )
    else:
        messages.success(
            request,
            _("The accounts of cTrader ID %(id)s are up to date: %(count)s active account(s).")
            % {"id": ctid.user_id, "count": result.active},
        )
    return redirect("dashboard")


@login_required
@require_http_methods(["GET", "POST"])
def ctid_disconnect_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask first (GET), then disconnect (POST). Scoped to the signed-in trader: another's cTID is a 404."""
    trader = _trader(request)
    ctid = get_object_or_404(Ctid, pk=pk, trader=trader)
    if request.method == "POST":
        ctid_disconnect(trader=trader, ctid_id=ctid.pk)
        messages.success(
            request,
            _("cTrader ID %(id)s is disconnected. Connect it again whenever you like.")
            % {"id": ctid.user_id},
        )
        return redirect("dashboard")
    return render(request, "accounts/ctid_disconnect_confirm.html", {"ctid": ctid})
