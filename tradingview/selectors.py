"""Reads for the TradingView pages, always scoped to one trader; and the reads of the token endpoint and tasks.

One writes as well: the consent's re-check takes the form's double-submit claim in its statement
(``consent_recheck`` with ``claim_until``), so that the claim costs no round trip of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, models
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import AccountOpening, Ctid, Jurisdiction, Trader, TradingAccount
from accounts.services.opening import TRADINGVIEW_PRESELECT_SECONDS
from clientarea import prepared

from .models import (
    AccountRequest,
    AuthorizationCode,
    ConsentClaim,
    Grant,
    OAuthClient,
    RedirectUri,
    token_hash,
)


@dataclass
class AccountOption:
    account: TradingAccount
    reason: str = ""  # why it cannot be linked; empty when it can
    # Opened from the TradingView flow within TRADINGVIEW_PRESELECT_SECONDS: the consent page ticks it.
    opened_from_tradingview: bool = False

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


# What the consent page reads: the trader's cTIDs, each with its accounts and their broker entities.
_OPTION_CTID = ("id", "user_id", "state", "trader_id")
_OPTION_ACCOUNT = ("id", "ctid_id", "ctid_trader_account_id", "login", "is_live", "is_tradingview", "status")
_OPTION_JURISDICTION = ("id", "broker_name", "display_name", "tradingview_enabled")


@functools.cache
def _consent_options_statement(*, with_client: bool = False) -> str:
    """The consent page's accounts; ``with_client``: also the client the request names (its id and name, or
    nulls when it is not registered with the redirect URI), on every row and on the one row a trader without
    cTIDs gets."""
    columns = ", ".join(
        [
            *(f"t.{c}" for c in _OPTION_CTID),
            *(f"a.{c}" for c in _OPTION_ACCOUNT),
            *(f"j.{c}" for c in _OPTION_JURISDICTION),
        ]
    )
    opened = (
        f"a.id IN (SELECT o.account_id FROM {_table(AccountOpening)} o"  # noqa: S608
        "   WHERE o.trader_id = %s AND o.source = %s AND o.state = %s AND o.finished_at >= %s)"
    )
    accounts = (
        f"{_table(Ctid)} t LEFT JOIN {_table(TradingAccount)} a ON a.ctid_id = t.id"
        f" LEFT JOIN {_table(Jurisdiction)} j ON j.id = a.jurisdiction_id"
    )
    order = " ORDER BY t.created_at, t.id, a.is_live DESC, a.login"
    # Table and column names are the models'; every value is a parameter.
    if not with_client:
        return f"SELECT {columns}, {opened} FROM {accounts} WHERE t.trader_id = %s{order}"  # noqa: S608
    return (
        f"SELECT {columns}, {opened}, c.id, c.name FROM (SELECT 1) AS one"  # noqa: S608
        f" LEFT JOIN ({_registered_client_statement()}) AS c ON true"
        f" LEFT JOIN ({accounts}) ON t.trader_id = %s{order}"
    )


def _opened_params(trader: Trader) -> list[Any]:
    opened_since = timezone.now() - timedelta(seconds=TRADINGVIEW_PRESELECT_SECONDS)
    return [trader.pk, AccountOpening.Source.TRADINGVIEW, AccountOpening.State.DONE, opened_since]


def consent_options(*, trader: Trader) -> ConsentOptions:
    """The trader's cTIDs, in the order they were connected, with their accounts (live first, by login) sorted
    into those that can be linked and those that cannot (and why), and which were just opened from the
    TradingView flow: one query, whatever the number of accounts."""
    with prepared.cursor() as cursor:
        cursor.execute(_consent_options_statement(), [*_opened_params(trader), trader.pk])
        rows = cursor.fetchall()
    return _consent_options_from(trader, rows)


class AuthorizePageReads:
    """What the authorize page reads, in one round trip for a trader who may link: the client the request
    names and the trader's consent options (``consent_options``). Anyone else gets the client alone."""

    def __init__(self, *, trader: Trader | None) -> None:
        self.trader = trader
        self._options: ConsentOptions | None = None

    def registered_client(self, *, client_id: str, redirect_uri: str) -> OAuthClient | None:
        """``registered_client``; with the trader's consent options read in the same statement."""
        if self.trader is None or self.trader.suspended:
            return registered_client(client_id=client_id, redirect_uri=redirect_uri)
        with prepared.cursor() as cursor:
            cursor.execute(
                _consent_options_statement(with_client=True),
                [*_opened_params(self.trader), client_id, redirect_uri, self.trader.pk],
            )
            rows = cursor.fetchall()
        n = len(_OPTION_CTID) + len(_OPTION_ACCOUNT) + len(_OPTION_JURISDICTION) + 1
        self._options = _consent_options_from(self.trader, rows)
        pk, name = rows[0][n:]
        return _client_loaded(pk, client_id, name)

    def consent_options(self) -> ConsentOptions:
        if self._options is None:
            assert self.trader is not None
            self._options = consent_options(trader=self.trader)
        return self._options


def _consent_options_from(trader: Trader, rows: Sequence[Sequence[Any]]) -> ConsentOptions:
    groups: dict[int, CtidOptions] = {}
    n_ctid, n_account = len(_OPTION_CTID), len(_OPTION_CTID) + len(_OPTION_ACCOUNT)
    n_jurisdiction = n_account + len(_OPTION_JURISDICTION)
    jurisdictions: dict[int, Jurisdiction] = {}
    for row in rows:
        if row[0] is None:
            continue  # no cTID: the row carries only the client
        group = groups.get(row[0])
        if group is None:
            group = groups[row[0]] = CtidOptions(ctid=_loaded(Ctid, _OPTION_CTID, row[:n_ctid]))
        if row[n_ctid] is None:
            continue  # a cTID without accounts
        account = _loaded(TradingAccount, _OPTION_ACCOUNT, row[n_ctid:n_account])
        account.ctid = group.ctid
        jurisdiction_id = row[n_account]
        if jurisdiction_id is None:
            account.jurisdiction = None
        else:
            if jurisdiction_id not in jurisdictions:
                jurisdictions[jurisdiction_id] = _loaded(
                    Jurisdiction, _OPTION_JURISDICTION, row[n_account:n_jurisdiction]
                )
            account.jurisdiction = jurisdictions[jurisdiction_id]
        option = AccountOption(
            account=account,
            reason=account_ineligibility(account),
            opened_from_tradingview=bool(row[n_jurisdiction]),
        )
        (group.eligible if option.eligible else group.ineligible).append(option)
    return ConsentOptions(ctids=list(groups.values()), trader=trader)


def grant_for_refresh_token(
    *,
    presented: str,
    grant_fields: tuple[str, ...],
    client_fields: tuple[str, ...],
    trader_fields: tuple[str, ...],
) -> tuple[Grant | None, list[TradingAccount]]:
    """The grant whose refresh token hashes to ``presented`` (None if none does), with ``grant_fields`` of it,
    ``client_fields`` of its client and ``trader_fields`` of its trader, its cTID as the link reads one, and
    the accounts it covers that still belong to that cTID, each with its broker entity (as the link reads
    them): one prepared statement (PostgreSQL), whatever the number of accounts.

    The instances are those ``select_related(...).only(...)`` would load: a field left out is read when used.
    """
    statement, shapes = _refresh_grant_statement(grant_fields, client_fields, trader_fields)
    with prepared.cursor() as cursor:
        cursor.execute(statement, [presented])
        rows = cursor.fetchall()
    if not rows:
        return None, []
    (g_names, g_at), (c_names, c_at), (t_names, t_at), (k_names, k_at), (a_names, a_at), (j_names, j_at) = (
        shapes
    )
    first = rows[0]
    grant = _loaded(Grant, g_names, first[g_at : g_at + len(g_names)])
    grant.client = _loaded(OAuthClient, c_names, first[c_at : c_at + len(c_names)])
    grant.trader = _loaded(Trader, t_names, first[t_at : t_at + len(t_names)])
    grant.ctid = ctid = _loaded(Ctid, k_names, first[k_at : k_at + len(k_names)])
    accounts = []
    for row in rows:
        if row[a_at] is None:
            continue  # a grant left without accounts
        account = _loaded(TradingAccount, a_names, row[a_at : a_at + len(a_names)])
        if account.ctid_id != ctid.pk:
            continue  # moved to another cTID: not this grant's any more
        account.ctid = ctid
        account.jurisdiction = (
            None if row[j_at] is None else _loaded(Jurisdiction, j_names, row[j_at : j_at + len(j_names)])
        )
        accounts.append(account)
    return grant, accounts


@functools.cache
def _concrete(model: type[models.Model]) -> dict[str, models.Field[Any, Any]]:
    """The concrete fields of ``model`` by name and by attribute name."""
    fields: dict[str, models.Field[Any, Any]] = {}
    for f in model._meta.concrete_fields:
        fields[f.name] = fields[f.attname] = f
    return fields


def _attnames(model: type[models.Model], names: Sequence[str]) -> tuple[str, ...]:
    """``id`` and the attribute names of the fields ``names`` of ``model`` (``client`` -> ``client_id``)."""
    return tuple(dict.fromkeys(("id", *(_concrete(model)[name].attname for name in names))))


@functools.cache
def _refresh_grant_statement(
    grant_fields: tuple[str, ...], client_fields: tuple[str, ...], trader_fields: tuple[str, ...]
) -> tuple[str, tuple[tuple[tuple[str, ...], int], ...]]:
    """The statement of ``grant_for_refresh_token`` and, per model it reads, its columns' attribute names and
    where they start in a row (``id`` first): grant, client, trader, cTID, account, broker entity."""
    grant = _attnames(Grant, (*grant_fields, "client", "trader", "ctid"))
    account_own = ("ctid", *(n for n in LINK_ACCOUNT_FIELDS if "__" not in n and n != "ctid"), "jurisdiction")
    parts = (
        ("g", Grant, grant),
        ("c", OAuthClient, _attnames(OAuthClient, client_fields)),
        ("tr", Trader, _attnames(Trader, trader_fields)),
        ("t", Ctid, _attnames(Ctid, LINK_CTID_FIELDS)),
        ("a", TradingAccount, _attnames(TradingAccount, account_own)),
        (
            "j",
            Jurisdiction,
            _attnames(
                Jurisdiction,
                [n.split("__", 1)[1] for n in LINK_ACCOUNT_FIELDS if n.startswith("jurisdiction__")],
            ),
        ),
    )
    columns, shapes, at = [], [], 0
    for alias, model, names in parts:
        columns += [f"{alias}.{connection.ops.quote_name(_concrete(model)[n].column)}" for n in names]
        shapes.append((names, at))
        at += len(names)
    link = Grant.accounts.through
    # Table and column names are the models'; the one value is a parameter.
    statement = (
        f"SELECT {', '.join(columns)} FROM {_table(Grant)} g"  # noqa: S608
        f" JOIN {_table(OAuthClient)} c ON c.id = g.client_id"
        f" JOIN {_table(Trader)} tr ON tr.id = g.trader_id"
        f" JOIN {_table(Ctid)} t ON t.id = g.ctid_id"
        f" LEFT JOIN {_table(link)} l ON l.grant_id = g.id"
        f" LEFT JOIN {_table(TradingAccount)} a ON a.id = l.tradingaccount_id"
        f" LEFT JOIN {_table(Jurisdiction)} j ON j.id = a.jurisdiction_id"
        " WHERE g.refresh_token_hash = %s"
    )
    return statement, tuple(shapes)


@dataclass(frozen=True)
class ConsentRecheck:
    """What one narrow query finds of a consent as its page offered it."""

    brokers: dict[int, str]  # the chosen accounts still eligible -> their broker name
    client_registered: bool  # the client is active and the redirect URI still registered for it
    earlier_grant_id: int | None  # the grant an earlier submission of the form stored
    # Whether the same statement claimed the form (``ConsentClaim``); None when it did not try.
    claimed: bool | None = None


@functools.cache
def consent_claim_cte() -> str:
    """The WITH part ``k`` that claims a consent form unless a grant of it exists, taking over a claim that has
    expired; one row when the statement holds the claim. Parameters: the key, the claim's end, the key again,
    the time now."""
    claims, key = _table(ConsentClaim), connection.ops.quote_name("key")
    # Table and column names are the models'; every value is a parameter.
    return (
        f"k AS (INSERT INTO {claims} AS k ({key}, expires_at) SELECT %s, %s"  # noqa: S608
        f" WHERE NOT EXISTS (SELECT 1 FROM {_table(Grant)} g WHERE g.consent_key = %s)"
        f" ON CONFLICT ({key}) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE k.expires_at <= %s"
        " RETURNING 1)"
    )


def consent_recheck(
    *,
    trader: Trader,
    ctid_id: int,
    account_ids: Sequence[int],
    client_pk: int,
    redirect_uri: str,
    consent_key: str,
    claim_until: datetime | None = None,
) -> ConsentRecheck:
    """Which of ``account_ids`` (of the trader's cTID ``ctid_id``) can still be linked, whether the client and
    its redirect URI are still registered, and an earlier submission's grant: one query.

    With ``claim_until`` (PostgreSQL only) the same statement also claims the form until then, unless a grant
    of it exists (``consent_claim_cte``): the consent's double-submit claim costs no round trip of its own.

    The eligibility is ``account_ineligibility`` as a condition; one fixed statement (on PostgreSQL whatever
    the number of ids), so nothing is built per request but the list of ids.
    """
    ids = [int(i) for i in account_ids]
    # One array parameter where statements are prepared, so the text does not change with the number of ids.
    in_ids, id_params = (
        ("= ANY(%s::bigint[])", [prepared.bigint_array(ids)])
        if prepared.enabled()
        else (f"IN ({', '.join(['%s'] * len(ids))})", ids)
    )
    only_tradingview = " AND a.is_tradingview" if settings.TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS else ""
    # Table names come from the models' metadata; every value is a parameter.
    checks = (
        f"EXISTS (SELECT 1 FROM {_table(RedirectUri)} r JOIN {_table(OAuthClient)} c ON c.id = r.client_id"  # noqa: S608
        "   WHERE r.client_id = %s AND r.uri = %s AND c.is_active),"
        f" (SELECT g.id FROM {_table(Grant)} g WHERE g.consent_key = %s)"
    )
    check_params: list[Any] = [client_pk, redirect_uri, consent_key]
    eligible = (
        f" FROM {_table(TradingAccount)} a JOIN {_table(Ctid)} t ON t.id = a.ctid_id"
        f" JOIN {_table(Jurisdiction)} j ON j.id = a.jurisdiction_id"
        f" WHERE a.id {in_ids} AND a.ctid_id = %s AND t.trader_id = %s"
        f" AND t.state = %s AND a.status = %s AND j.tradingview_enabled{only_tradingview}"
    )
    eligible_params: list[Any] = [
        *id_params,
        ctid_id,
        trader.pk,
        Ctid.State.CONNECTED,
        TradingAccount.Status.ACTIVE,
    ]
    claiming = claim_until is not None
    if claiming:
        # One row whatever is eligible, so that it says whether the claim was made.
        statement = (
            f"WITH {consent_claim_cte()} SELECT e.id, e.broker_name, {checks},"  # noqa: S608
            f" EXISTS (SELECT 1 FROM k) FROM (SELECT 1) AS one"
            f" LEFT JOIN (SELECT a.id, j.broker_name{eligible}) AS e ON true"
        )
        now = timezone.now()
        params = [consent_key, claim_until, consent_key, now, *check_params, *eligible_params]
    else:
        statement = f"SELECT a.id, j.broker_name, {checks}{eligible}"
        params = [*check_params, *eligible_params]
    with prepared.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    return ConsentRecheck(
        brokers={row[0]: row[1] for row in rows if row[0] is not None},
        client_registered=bool(rows[0][2]) if rows else False,
        earlier_grant_id=rows[0][3] if rows else None,
        claimed=(bool(rows[0][4]) if rows else False) if claiming else None,
    )


@functools.cache
def _registered_client_statement() -> str:
    """The active client with this ``client_id`` (its id and name) if the redirect URI is registered for it:
    parameters ``client_id``, ``redirect_uri``. (client, uri) is unique, so at most one row matches."""
    # Table names are the models'; every value is a parameter.
    return (
        f"SELECT c.id, c.name FROM {_table(OAuthClient)} c"  # noqa: S608
        f" JOIN {_table(RedirectUri)} r ON r.client_id = c.id"
        " WHERE c.client_id = %s AND c.is_active AND r.uri = %s"
    )


def _client_loaded(pk: int | None, client_id: str, name: str | None) -> OAuthClient | None:
    """The client ``_registered_client_statement`` found, as the pages use it; None when it found none."""
    if pk is None:
        return None
    return _loaded(OAuthClient, ("id", "client_id", "name", "is_active"), (pk, client_id, name, True))


def registered_client(*, client_id: str, redirect_uri: str) -> OAuthClient | None:
    """The active client ``client_id`` if ``redirect_uri`` is registered for it (only what the pages use)."""
    with prepared.cursor() as cursor:
        cursor.execute(_registered_client_statement(), [client_id, redirect_uri])
        row = cursor.fetchone()
    return _client_loaded(row[0], client_id, row[1]) if row is not None else None


_M = TypeVar("_M", bound=models.Model)


def _loaded(model: type[_M], names: tuple[str, ...], values: Sequence[Any]) -> _M:
    """An instance of ``model`` as the ORM would load it with only the fields ``names`` (attribute names)."""
    order, positions = _load_order(model, names)
    return model.from_db("default", order, [values[i] for i in positions])


@functools.cache
def _load_order(model: type[models.Model], names: tuple[str, ...]) -> tuple[list[str], tuple[int, ...]]:
    """The fields ``names`` in the model's order (as ``from_db`` takes them), and where each is in ``names``."""
    order = [f.attname for f in model._meta.concrete_fields if f.attname in names]
    if len(order) != len(names):
        raise ValueError(f"not attribute names of {model.__name__}: {names}")
    return order, tuple(names.index(name) for name in order)


@functools.cache
def _table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


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
