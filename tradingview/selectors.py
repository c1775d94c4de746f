"""Reads for the TradingView pages, always scoped to one trader."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Prefetch, QuerySet

from accounts.models import Ctid, Trader, TradingAccount

from .models import AccountRequest, Grant


@dataclass
class AccountOption:
    account: TradingAccount
    reason: str = ""  # why it cannot be linked; empty when it can

    @property
    def eligible(self) -> bool:
        return not self.reason


@dataclass
class CtidOptions:
    ctid: Ctid
    eligible: list[AccountOption] = field(default_factory=list)
    ineligible: list[AccountOption] = field(default_factory=list)


@dataclass
class ConsentOptions:
    ctids: list[CtidOptions]
    open_request: AccountRequest | None

    @property
    def eligible_count(self) -> int:
        return sum(len(c.eligible) for c in self.ctids)

    @property
    def ineligible(self) -> list[AccountOption]:
        return [option for c in self.ctids for option in c.ineligible]

    @property
    def needs_reconnect(self) -> list[Ctid]:
        return [c.ctid for c in self.ctids if c.ctid.state != Ctid.State.CONNECTED]


def account_ineligibility(account: TradingAccount) -> str:
    """Why ``account`` cannot be linked to TradingView now, in words for the trader; empty if it can.

    Expects ``ctid`` and ``jurisdiction`` to be loaded with the account.
    """
    ctid = account.ctid
    if ctid.state == Ctid.State.NEEDS_RECONNECT:
        return "Your cTrader ID needs to be reconnected before this account can be linked."
    if ctid.state != Ctid.State.CONNECTED:
        return "Your cTrader ID is disconnected from the client area."
    if account.status == TradingAccount.Status.GONE:
        return "This account is no longer available to your cTrader ID."
    if account.status != TradingAccount.Status.ACTIVE:
        return "This account is disabled."
    jurisdiction = account.jurisdiction
    if jurisdiction is None:
        return "This account's broker entity is not set up for TradingView."
    if not jurisdiction.tradingview_enabled:
        return f"{jurisdiction.display_name} accounts cannot be linked to TradingView."
    if settings.TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS and not account.is_tradingview:
        return 'Only "cTrader/TradingView" accounts can be linked to TradingView.'
    return ""


def trader_accounts(*, trader: Trader) -> QuerySet[TradingAccount]:
    return TradingAccount.objects.filter(ctid__trader=trader).select_related("ctid", "jurisdiction")


def consent_options(*, trader: Trader) -> ConsentOptions:
    groups: dict[int, CtidOptions] = {}
    for ctid in Ctid.objects.filter(trader=trader).order_by("created_at"):
        groups[ctid.pk] = CtidOptions(ctid=ctid)
    for account in trader_accounts(trader=trader).order_by("-is_live", "login"):
        group = groups.get(account.ctid_id)
        if group is None:
            continue
        option = AccountOption(account=account, reason=account_ineligibility(account))
        (group.eligible if option.eligible else group.ineligible).append(option)
    open_request = trader.tradingview_account_requests.filter(state=AccountRequest.State.OPEN).first()
    return ConsentOptions(ctids=list(groups.values()), open_request=open_request)


def active_grants(*, trader: Trader) -> QuerySet[Grant]:
    """Grants the trader sees as linked: a grant waiting for revocation is never among them."""
    return (
        Grant.objects.filter(trader=trader, state=Grant.State.ACTIVE)
        .select_related("client", "ctid")
        .prefetch_related(Prefetch("accounts", queryset=TradingAccount.objects.order_by("-is_live", "login")))
        .order_by("-adapter_token_issued_at")
    )


def account_requests(*, trader: Trader) -> QuerySet[AccountRequest]:
    return trader.tradingview_account_requests.select_related("account", "jurisdiction").order_by(
        "-created_at"
    )
