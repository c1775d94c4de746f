"""Cases A and B of the TradingView authorization: a visitor without a client-area sign-in (A) or a trader
without an eligible account (B) opens an account in a new tab, while the authorization tab waits.

TradingView's rule: the authorization page offers the authorization and nothing else, so registration and
account opening happen in a separate tab. The authorization tab keeps its URL (and with it ``client_id``,
``redirect_uri`` and ``state``) and polls ``onboarding_status``; once the trader is signed in and has an
eligible account it reloads that URL and the consent page shows the new account ticked.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from accounts.models import Trader
from accounts.services.opening import account_types_for

from . import selectors

AUTHORIZE_PATH = "/tradingview/oauth/authorize"


def is_authorization_url(url: str) -> bool:
    return url.startswith(AUTHORIZE_PATH + "?")


def open_account_url(*, signed_in: bool) -> str:
    """Where the new tab goes: sign-up first for a visitor (case A), straight to the form for a trader (B)."""
    opening = reverse("opening-start") + "?tv=1"
    if signed_in:
        return opening
    return reverse("signup") + "?" + urlencode({"next": opening})


def can_open_tradingview_account(*, trader: Trader | None) -> bool:
    if trader is None:
        # A visitor can register and then open an account of a type anyone or a new trader may open.
        return any(True for _ in account_types_for(trader=Trader(kyc_verified=False), tradingview_only=True))
    return bool(account_types_for(trader=trader, tradingview_only=True))


def preselected_account_ids(*, options: selectors.ConsentOptions) -> set[int]:
    """Eligible accounts the trader just opened from the TradingView flow (within
    ``TRADINGVIEW_PRESELECT_SECONDS``): ticked on the consent page. The page's one query found them."""
    return {
        option.account.pk
        for group in options.ctids
        for option in group.eligible
        if option.opened_from_tradingview
    }


def onboarding_status(*, trader: Trader | None, signed_in: bool) -> dict[str, Any]:
    """What the waiting authorization tab needs: is the visitor signed in, and is there an account to link."""
    if trader is None:
        return {"signed_in": signed_in, "ready": False}
    options = selectors.consent_options(trader=trader)
    return {"signed_in": True, "ready": options.eligible_count > 0}
