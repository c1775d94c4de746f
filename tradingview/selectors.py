"""Reads for the TradingView pages, always scoped to one trader."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils.translation import gettext as _

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
    trader: Trader

    @cached_property
    def open_request(self) -> AccountRequest | None:
        # Only the page for traders without an eligible account shows it: read it when it is asked for.
        return self.trader.tradingview_account_requests.filter(state=AccountRequest.State.OPEN).first()

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
        return _("Your cTrader ID needs to be reconnected before you can use this account on TradingView.")
    if ctid.state != Ctid.State.CONNECTED:
        return _("You disconnected this cTrader ID. Connect it again on your dashboard to use it.")
    if account.status == TradingAccount.Status.GONE:
        return _("You no longer share this account with us.")
    if account.status != TradingAccount.Status.ACTIVE:
        return _("This account is disabled.")
    jurisdiction = account.jurisdiction
    if jurisdiction is None:
        return _("This account cannot be used on TradingView yet.")
    if not jurisdiction.tradingview_enabled:
        return _("%(entity)s accounts cannot be used on TradingView.") % {"entity": jurisdiction.display_name}
    if settings.TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS and not account.is_tradingview:
        return _('Only "cTrader/TradingView" accounts can be used on TradingView.')
    return ""


# What the link reads of an account and its broker entity: eligibility, the consent page and the adapter call.
# Every column left out is one the consent page would otherwise build into SQL and load for each account.
LINK_CTID_FIELDS = ("trader", "user_id", "state")
LINK_ACCOUNT_FIELDS = (
    "ctid",
    "ctid_trader_account_id",
    "login",
    "is_live",
    "is_tradingview",
    "status",
    "jurisdiction__broker_name",
    "jurisdiction__display_name",
    "jurisdiction__tradingview_enabled",
)


def trader_accounts(*, trader: Trader) -> QuerySet[TradingAccount]:
    """The trader's accounts with what eligibility needs (``ctid`` and ``jurisdiction``) loaded with them."""
    return (
        TradingAccount.objects.filter(ctid__trader=trader)
        .select_related("ctid", "jurisdiction")
        .only(*LINK_ACCOUNT_FIELDS, *(f"ctid__{f}" for f in LINK_CTID_FIELDS))
    )


def consent_options(*, trader: Trader) -> ConsentOptions:
    groups: dict[int, CtidOptions] = {
        ctid.pk: CtidOptions(ctid=ctid)
        for ctid in Ctid.objects.filter(trader=trader).only(*LINK_CTID_FIELDS).order_by("created_at")
    }
    if not groups:
        return ConsentOptions(ctids=[], trader=trader)
    # The cTIDs are the trader's, read above: the accounts need no join back to them.
    accounts = (
        TradingAccount.objects.filter(ctid_id__in=list(groups))
        .select_related("jurisdiction")
        .only(*LINK_ACCOUNT_FIELDS)
        .order_by("-is_live", "login")
    )
    for account in accounts:
        group = groups[account.ctid_id]
        account.ctid = group.ctid
        option = AccountOption(account=account, reason=account_ineligibility(account))
        (group.eligible if option.eligible else group.ineligible).append(option)
    return ConsentOptions(ctids=list(groups.values()), trader=trader)


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
