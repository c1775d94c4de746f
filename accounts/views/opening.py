"""Opening a trading account: email verification, the form, and the progress page with its JSON endpoint."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.forms import OpeningForm, TradingPasswordForm
from accounts.models import AccountOpening, AccountType
from accounts.selectors import trader_for_user_or_404
from accounts.services import email_verification as verification
from accounts.services import opening as service
from clientarea.never_cache import never_cache


def _tradingview(request: HttpRequest) -> bool:
    return (request.GET.get("tv") or request.POST.get("tv")) == "1"


def _safe_next(request: HttpRequest, value: str) -> str:
    ok = url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return value if value and ok else ""


@never_cache
@sensitive_post_parameters("password", "password_confirm")
@login_required
@require_http_methods(["GET", "POST"])
def open_account(request: HttpRequest) -> HttpResponse:
    trader = trader_for_user_or_404(user=request.user)
    tradingview = _tradingview(request)
    here = reverse("opening-start") + ("?tv=1" if tradingview else "")
    if not service.email_is_verified(trader=trader):
        return render(
            request, "accounts/opening_verify_email.html", {"trader": trader, "next": here, "tv": tradingview}
        )
    types = service.account_types_for(trader=trader, tradingview_only=tradingview)
    chosen: AccountType | None = None
    raw_type = (
        request.POST.get("account_type")
        or request.GET.get("type")
        or (str(types[0].pk) if len(types) == 1 else "")
    )
    if raw_type.isdigit():
        chosen = next((t for t in types if t.pk == int(raw_type)), None)
    if chosen is None:
        return render(request, "accounts/opening_choose.html", {"types": types, "tv": tradingview})
    needs_approval = chosen.who_may_open == AccountType.Access.APPROVAL
    form = OpeningForm(
        request.POST or None,
        currencies=chosen.currencies,
        leverages=chosen.leverages,
        with_password=not needs_approval,
        initial={"key": secrets.token_urlsafe(24)},
    )
    if request.method == "POST" and form.is_valid():
        try:
            opening = service.account_opening_start(
                trader=trader,
                request=service.OpeningRequest(
                    account_type=chosen,
                    deposit_currency=form.cleaned_data["deposit_currency"],
                    leverage=form.cleaned_data["leverage"],
                    key=form.cleaned_data["key"],
                    source=AccountOpening.Source.TRADINGVIEW
                    if tradingview
                    else AccountOpening.Source.DASHBOARD,
                ),
                password=form.cleaned_data.get("password"),
            )
        except service.OpeningRefused as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("opening-status", opening.public_id)
    return render(
        request,
        "accounts/opening_form.html",
        {"form": form, "type": chosen, "tv": tradingview, "needs_approval": needs_approval, "types": types},
        status=400 if request.method == "POST" else 200,
    )


def _opening(request: HttpRequest, public_id: uuid.UUID) -> AccountOpening:
    opening = (
        AccountOpening.objects.filter(trader__user_id=int(request.user.pk or 0), public_id=public_id)
        .select_related("account_type__jurisdiction", "account")
        .first()
    )
    if opening is None:
        raise Http404
    return opening


def opening_progress(opening: AccountOpening) -> dict[str, Any]:
    """What the progress page shows, in the trader's words (never a peer's name or an internal step)."""
    steps: list[str] = [
        AccountOpening.Step.CTID,
        AccountOpening.Step.CREATE,
        AccountOpening.Step.LINK,
        AccountOpening.Step.STORE,
    ]
    done = steps.index(str(opening.step)) if opening.step in steps else len(steps)
    messages_by_state: dict[str, str] = {
        AccountOpening.State.AWAITING_APPROVAL: _("Our team is reviewing your request. We will email you."),
        AccountOpening.State.NEEDS_PASSWORD: _("Choose your trading password to finish opening the account."),
        AccountOpening.State.QUEUED: _("Your account is being opened."),
        AccountOpening.State.RUNNING: _("Your account is being opened."),
        AccountOpening.State.DONE: _("Your account is ready."),
        AccountOpening.State.DECLINED: _("Your request was declined."),
    }
    data: dict[str, Any] = {
        "state": opening.state,
        "finished": opening.finished,
        "progress": round(100 * done / len(steps)),
        "message": opening.error or messages_by_state.get(opening.state, ""),
        "needs_password": opening.state == AccountOpening.State.NEEDS_PASSWORD,
        "account": None,
    }
    if opening.state == AccountOpening.State.DONE and opening.account is not None:
        data["account"] = {
            "login": opening.account.login,
            "environment": opening.account.environment,
            "url": reverse("account-detail", args=[opening.account.ctid_trader_account_id]),
        }
    return data


@never_cache
@login_required
@require_GET
def opening_status(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    opening = _opening(request, public_id)
    return render(
        request,
        "accounts/opening_status.html",
        {
            "opening": opening,
            "progress": opening_progress(opening),
            "password_form": TradingPasswordForm(),
            "tv": opening.source == AccountOpening.Source.TRADINGVIEW,
        },
    )


@never_cache
@login_required
@require_GET
def opening_status_json(request: HttpRequest, public_id: uuid.UUID) -> JsonResponse:
    response = JsonResponse(opening_progress(_opening(request, public_id)))
    response["Cache-Control"] = "no-store"
    return response


@sensitive_post_parameters("password", "password_confirm")
@login_required
@require_POST
def opening_password(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    opening = _opening(request, public_id)
    form = TradingPasswordForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "accounts/opening_status.html",
            {"opening": opening, "progress": opening_progress(opening), "password_form": form},
            status=400,
        )
    service.account_opening_provide_password(
        trader=opening.trader, public_id=opening.public_id, password=form.cleaned_data["password"]
    )
    return redirect("opening-status", opening.public_id)


@login_required
@require_POST
def email_verify_send(request: HttpRequest) -> HttpResponse:
    trader = trader_for_user_or_404(user=request.user)
    next_url = _safe_next(request, request.POST.get("next", ""))
    try:
        verification.email_verification_send(trader=trader, next_url=next_url)
    except verification.VerificationFailed as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("We sent a confirmation link to %(email)s. It can take a minute to arrive.")
            % {"email": trader.user.email},
        )
    return redirect(next_url or "opening-start")


@login_required
@require_GET
def email_verify(request: HttpRequest, token: str) -> HttpResponse:
    trader = trader_for_user_or_404(user=request.user)
    try:
        verification.email_verification_confirm(token=token, trader=trader)
    except verification.VerificationFailed as exc:
        messages.error(request, exc.message)
        return redirect("opening-start")
    messages.success(request, _("Your email address is confirmed."))
    return redirect(_safe_next(request, request.GET.get("next", "")) or "opening-start")
