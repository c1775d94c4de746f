"""The trader's dashboard and account pages."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from accounts.models import Ctid
from accounts.selectors import accounts_for_user, ctids_for_user, trader_for_user


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    trader = trader_for_user(user=request.user)
    ctids = list(ctids_for_user(user=request.user)) if trader else []
    return render(
        request,
        "accounts/dashboard.html",
        {
            "trader": trader,
            "ctids": ctids,
            "needs_reconnect": [c for c in ctids if c.state == Ctid.State.NEEDS_RECONNECT],
            "account_count": sum(len(c.accounts.all()) for c in ctids),
            "offer_two_factor": trader is not None and not _two_factor_on(request),
        },
    )


@login_required
def account_detail(request: HttpRequest, ctid_trader_account_id: int) -> HttpResponse:
    account = get_object_or_404(
        accounts_for_user(user=request.user), ctid_trader_account_id=ctid_trader_account_id
    )
    return render(request, "accounts/account_detail.html", {"account": account})


def _two_factor_on(request: HttpRequest) -> bool:
    from twofactor.services import two_factor_enabled

    return two_factor_enabled(user=request.user)
