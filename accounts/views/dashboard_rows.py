"""The rows of the dashboard's account tables, each built once in Python and printed by the template as is.

A trader with 200 accounts gets some 2,000 table cells. Left to the template engine, their lookups, filters,
translations and URL reversals cost several times the rest of the page (some 50 ms for 200 rows); here the
words are translated, the URL prefix reversed and the markup's fixed parts escaped once per page, and each
row is one string format of values formatted once (a date that recurs, as figures read in one refresh do, is
formatted once). The words, numbers and dates are those Django's ``translate``, ``date`` and ``floatformat``
give in the active language; ``tests/accounts/test_dashboard_speed.py`` pins the rows in English and German.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.template.defaultfilters import floatformat
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, gettext_noop

from accounts.figures_display import NumberFormat, call_level, stale_before
from accounts.models import TradingAccount
from accounts.selectors import DashboardAccount

# A row's markup, with its labels and the URL prefix as format fields (filled once per page) and the row's
# values as the remaining fields (filled per row, escaped).
_ROW = (
    '<tr{inactive}><td data-label="{login_label}"><a href="{detail}{id}{after_id}">{login}</a>{status}</td>'
    '<td data-label="{type_label}">{kind}{tradingview}</td>'
    '<td data-label="{broker_label}">{broker}</td>{figures}</tr>'
)
_FIGURES = (
    '<td data-label="{balance_label}" class="num">{balance} {currency}</td>'
    '<td data-label="{equity_label}" class="num">{equity}</td>'
    '<td data-label="{used_label}" class="num">{used_margin}</td>'
    '<td data-label="{free_label}" class="num">{free_margin}</td>'
    '<td data-label="{level_label}" class="num">{level}{margin_call}</td>'
    '<td data-label="{pnl_label}" class="num{loss}">{pnl}</td>'
    '<td data-label="{as_of_label}">{read_at}{stale}</td>'
)
_NO_FIGURES = (
    '<td data-label="{balance_label}" class="num">{balance}</td>'
    '<td colspan="5" class="muted" data-label="{equity_label}">{not_known}</td>'
    '<td data-label="{as_of_label}">{updated_at}</td>'
)
# Marked for the catalogues here, translated when a page is built.
_LABELS = {
    "login_label": gettext_noop("Login"),
    "type_label": gettext_noop("Type"),
    "broker_label": gettext_noop("Broker"),
    "balance_label": gettext_noop("Balance"),
    "equity_label": gettext_noop("Equity"),
    "used_label": gettext_noop("Used margin"),
    "free_label": gettext_noop("Free margin"),
    "level_label": gettext_noop("Margin level"),
    "pnl_label": gettext_noop("Open P/L"),
    "as_of_label": gettext_noop("As of"),
}
# The fields each row fills, in the order they appear in the markup above.
_ROW_FIELDS = ("inactive", "id", "login", "status", "kind", "tradingview", "broker", "figures")
_FIGURES_FIELDS = (
    "balance", "currency", "equity", "used_margin", "free_margin", "level", "margin_call", "loss", "pnl",
    "read_at", "stale",
)  # fmt: skip
_NO_FIGURES_FIELDS = ("balance", "not_known", "updated_at")
# An account id no URL of the page contains, standing in for each row's id when the prefix is reversed.
_ID_MARK = 918273645
_FIELD = re.compile(r"\{(\w+)\}")


def _fill(markup: str, fixed: dict[str, str], fields: tuple[str, ...]) -> str:
    """``markup`` with the fields named in ``fixed`` filled in, escaped, and the others, which must be
    ``fields`` in that order, left as ``%s`` for a row's values: a ``%`` of a tuple costs a fifth of a
    ``str.format`` of keywords, and a page formats two per row."""
    parts = _FIELD.split(markup)
    texts, names = parts[0::2], parts[1::2]
    left = tuple(name for name in names if name not in fixed)
    if left != fields:
        raise ValueError(f"the markup's fields are {left}, not {fields}")
    filled = [texts[0].replace("%", "%%")]
    for name, text in zip(names, texts[1:], strict=True):
        filled.append(escape(fixed[name]).replace("%", "%%") if name in fixed else "%s")
        filled.append(text.replace("%", "%%"))
    return "".join(filled)


@dataclass(frozen=True)
class MarginCall:
    """An account under its margin-call level, as the banner above the tables names it."""

    url: str
    login: int
    level: str
    call: str


class AccountRows:
    """Builds the rows of one page, in the active language; keeps the accounts under their margin-call level."""

    def __init__(self, *, now: datetime) -> None:
        self.now = now
        self._stale_before = stale_before(now)
        self.number = NumberFormat()
        self.margin_calls: list[MarginCall] = []
        self._times: dict[datetime, str] = {}
        self._balances: dict[Decimal, str] = {}
        self._escaped: dict[str, str] = {}
        self._default_level = call_level(None)
        # Numbers print digits, signs and the language's separators: escaped only where a separator needs it.
        number = self.number
        separators = number.decimal + number.thousands + "-"
        self.money = number if escape(separators) == separators else lambda value: escape(number(value))
        url = reverse("account-detail", args=[_ID_MARK])
        self.detail, _mark, self.after_id = url.partition(str(_ID_MARK))
        fixed = {name: gettext(text) for name, text in _LABELS.items()}
        # The tables' header row, in the order of the cells.
        self.header = mark_safe(  # noqa: S308 - escaped labels
            "<tr>" + "".join(f'<th scope="col">{escape(fixed[name])}</th>' for name in _LABELS) + "</tr>"
        )
        fixed.update(detail=self.detail, after_id=self.after_id)
        self._row = _fill(_ROW, fixed, _ROW_FIELDS)
        self._figures = _fill(_FIGURES, fixed, _FIGURES_FIELDS)
        self._no_figures = _fill(_NO_FIGURES, fixed, _NO_FIGURES_FIELDS)

        def badge(kind: str, text: str) -> str:
            return f'<span class="badge{kind}">{escape(text)}</span>'

        def muted(text: str) -> str:
            return f'<span class="muted">{escape(text)}</span>'

        self.gone = " " + badge("", gettext("No longer shared"))
        self.disabled = " " + badge("", gettext("Disabled"))
        self.live = badge(" live", gettext("Live"))
        self.demo = badge(" demo", gettext("Demo"))
        self.tradingview = ' <span class="badge">TradingView</span>'
        self.unknown = muted(gettext("Unknown"))
        self.no_margin = muted(gettext("No margin used"))
        self.margin_call = " " + badge(" danger", gettext("Margin call"))
        self.stale = " " + badge(" warn", gettext("Out of date"))
        self.not_known = escape(gettext("Not known yet"))
        self.not_known_muted = muted(gettext("Not known yet"))
        self.never = muted(gettext("Never"))

    def time(self, value: datetime) -> str:
        """``<time>`` with the ``date`` filter's ``c`` and ``j M, H:i``, in the current time zone."""
        text = self._times.get(value)
        if text is None:
            local = timezone.localtime(value)
            text = f'<time datetime="{local.isoformat()}">{escape(formats.date_format(local, "j M, H:i"))}</time>'
            self._times[value] = text
        return text

    def escape(self, text: str) -> str:
        """``text`` escaped, once per distinct text (brokers and currencies recur on every row)."""
        escaped = self._escaped.get(text)
        if escaped is None:
            escaped = self._escaped[text] = escape(text)
        return escaped

    def balance(self, value: Decimal) -> str:
        """A balance known without figures, as ``floatformat:"2g"`` gives it."""
        text = self._balances.get(value)
        if text is None:
            text = self._balances[value] = str(floatformat(value, "2g"))
        return text

    def table(self, accounts: list[DashboardAccount]) -> SafeString:
        """The rows of one table, one line each."""
        return mark_safe("\n".join([self.row(account) for account in accounts]))  # noqa: S308 - escaped rows

    def row(self, account: DashboardAccount) -> str:
        if account.broker_display_name is not None:
            broker = self.escape(account.broker_display_name)
        elif account.broker_title:
            broker = self.escape(account.broker_title)
        else:
            broker = self.unknown
        status = account.status
        active = status == TradingAccount.Status.ACTIVE
        if account.read_at is not None:
            cells = self._figures_cells(account, account.read_at)
        else:
            cells = self._no_figures % (  # _NO_FIGURES_FIELDS
                self.not_known_muted
                if account.balance is None
                else f"{self.balance(account.balance)} {self.escape(account.currency)}",
                self.not_known,
                self.time(account.balance_updated_at) if account.balance_updated_at else self.never,
            )
        # Every value is escaped, or formatted from numbers in separators that need no escaping.
        return self._row % (  # _ROW_FIELDS
            "" if active else ' class="inactive"',
            account.ctid_trader_account_id,
            account.login,
            "" if active else self.gone if status == TradingAccount.Status.GONE else self.disabled,
            self.live if account.is_live else self.demo,
            self.tradingview if account.is_tradingview else "",
            broker,
            cells,
        )

    def _figures_cells(self, account: DashboardAccount, read_at: datetime) -> str:
        number = self.money
        level = account.margin_call_level
        if level is None:
            level = self._default_level
        margin_level = account.figures_margin_level
        under = margin_level is not None and margin_level < level
        level_text = number(margin_level)
        if under:
            self.margin_calls.append(
                MarginCall(
                    url=f"{self.detail}{account.ctid_trader_account_id}{self.after_id}",
                    login=account.login,
                    level=level_text,
                    call=number(level),
                )
            )
        pnl = account.figures_unrealized_pnl
        return self._figures % (  # _FIGURES_FIELDS
            number(account.figures_balance),
            self.escape(account.figures_currency or account.currency),
            number(account.figures_equity),
            number(account.figures_used_margin),
            number(account.figures_free_margin),
            f"{level_text} %" if level_text else self.no_margin,
            self.margin_call if under else "",
            " loss" if pnl is not None and pnl < 0 else "",
            number(pnl),
            self.time(read_at),
            self.stale if read_at < self._stale_before else "",
        )
