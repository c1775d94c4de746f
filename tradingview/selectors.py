"""Reads for the TradingView pages, always scoped to one trader; and the reads of the token endpoint and tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from django.conf import settings
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from accounts.models import Ctid, Trader, TradingAccount

from .models import AccountRequest, AuthorizationCode, Grant, token_hash


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


def refresh_token_client_id(*, refresh_token: str) -> str:
    """The client a refresh token was issued to (TradingView may send only the secret on refresh)."""
    if not refresh_token:
        return ""
    grant = (
        Grant.objects.filter(refresh_token_hash=token_hash(refresh_token)).select_related("client").first()
    )
    return grant.client.client_id if grant is not None else ""


def grants_due_for_logout(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Ids of the ``revoking`` grants whose ``/logout`` is due, the longest waiting first."""
    now = now or timezone.now()
    return list(
        Grant.objects.filter(state=Grant.State.REVOKING, revoke_after__lte=now)
        .order_by("revoke_after")
        .values_list("pk", flat=True)[:limit]
    )


def grants_no_longer_eligible(*, limit: int = 500) -> list[int]:
    """Ids of the usable grants that carry an account which can no longer be linked.

    The same rules as ``account_ineligibility``, in SQL: an account gone or disabled, its broker entity missing or
    closed to TradingView, its cTID not connected, a non-"cTrader/TradingView" account while only those may be
    linked; or the trader suspended.
    """
    carries = (
        Q(accounts__status__in=[TradingAccount.Status.GONE, TradingAccount.Status.DISABLED])
        | Q(accounts__jurisdiction__isnull=True)
        | Q(accounts__jurisdiction__tradingview_enabled=False)
        | Q(accounts__ctid__state__in=[s for s in Ctid.State if s != Ctid.State.CONNECTED])
    )
    if settings.TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS:
        carries |= Q(accounts__is_tradingview=False)
    usable = [Grant.State.ACTIVE, Grant.State.REVOKING]
    return list(
        Grant.objects.filter(state__in=usable)
        .filter(carries | Q(trader__suspended=True))
        .exclude(state=Grant.State.REVOKING, revoke_after__lte=timezone.now())
        .order_by("pk")
        .values_list("pk", flat=True)
        .distinct()[:limit]
    )


def grants_never_exchanged(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Ids of active grants whose every code expired unused: TradingView never took the token."""
    now = now or timezone.now()
    codes = AuthorizationCode.objects.filter(grant=OuterRef("pk"))
    return list(
        Grant.objects.filter(state=Grant.State.ACTIVE, refresh_token_hash__isnull=True)
        .filter(Exists(codes))
        .exclude(Exists(codes.filter(used_at__isnull=False)))
        .exclude(Exists(codes.filter(expires_at__gt=now, superseded=False)))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
