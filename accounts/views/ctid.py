"""Connecting a cTrader ID, its OAuth callback, the trader's "Refresh accounts" button and the progress of
the work they queue (the Open API round trips run in a worker, never in the request)."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Ctid
from accounts.selectors import ctid_job_for_user, trader_for_user_or_404
from accounts.services.ctids import (
    ConnectError,
    ConnectPending,
    ctid_connect_complete,
    ctid_connect_start,
    ctid_disconnect,
)
from accounts.services.jobs import ctid_job_connect_queue, ctid_job_sync_queue
from clientarea.never_cache import never_cache


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
        pair = ctid_connect_complete(
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
    ctid_job_connect_queue(trader=trader, pair=pair)
    return redirect("dashboard")


@login_required
@require_POST
def ctid_sync(request: HttpRequest, pk: int) -> HttpResponse:
    # Scoped to the signed-in trader: another trader's cTID is a 404.
    ctid = get_object_or_404(Ctid, pk=pk, trader__user=request.user)
    if ctid.state != Ctid.State.CONNECTED:
        messages.error(
            request,
            _(
                "cTrader ID %(id)s needs to be reconnected before we can read its accounts. Use Reconnect above."
            )
            % {"id": ctid.user_id},
        )
        return redirect("dashboard")
    ctid_job_sync_queue(ctid=ctid)
    return redirect("dashboard")


@never_cache
@login_required
@require_GET
def ctid_job_status(request: HttpRequest, public_id: UUID) -> JsonResponse:
    """The progress of one of the trader's own jobs, polled by the dashboard."""
    job = ctid_job_for_user(user=request.user, public_id=public_id)
    if job is None:
        raise Http404
    return JsonResponse({"state": job.state, "finished": job.finished, "message": job.message})


@login_required
@require_http_methods(["GET", "POST"])
def ctid_disconnect_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask first (GET), then disconnect (POST). Scoped to the signed-in trader: another's cTID is a 404."""
    trader = trader_for_user_or_404(user=request.user)
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
