"""The consent page's account choices, each row built once in Python and printed by the template as is.

Left to the template engine, every row of the form costs a translated "Account 123" (``blocktranslate``), its
badge's translation and a dozen lookups and tests; with a trader's accounts that is the larger part of the
authorize page's rendering. Here the words are translated once per page, the markup's fixed parts are filled
in once, and each row is one string format of its escaped values. Ids and logins are written as they are,
never grouped by the language's conventions. ``tests/tradingview/test_consent_rows.py`` pins the rows, byte
for byte, in English and German.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from .selectors import ConsentOptions

# One row, indented as the form is; ``{label}`` is the translated "Account %(login)s" with the login in it.
_ROW = (
    '\n      <div class="checkbox-row">'
    '\n        <input type="checkbox" name="accounts" value="{pk}" id="acc-{pk}"{checked}>'
    '\n        <label for="acc-{pk}" class="choice">'
    "\n          {kind}"
    "\n          {label}"
    "\n          {tradingview}"
    '\n          <span class="muted">{broker}</span>'
    "\n        </label>"
    "\n      </div>"
    "\n      "
)
_TRADINGVIEW = '<span class="badge ok">cTrader/TradingView</span>'


@dataclass(frozen=True)
class ConsentGroup:
    """A cTrader ID's accounts the trader may choose: the legend above them and their rows."""

    legend: SafeString
    rows: SafeString


def consent_groups(options: ConsentOptions, *, checked: Collection[int]) -> list[ConsentGroup]:
    """The groups of the consent form, in the active language: the cTrader IDs with an account to choose.

    An account is ticked when it is in ``checked`` or, when nothing is, when it is a cTrader/TradingView one.
    """
    # The translations are the project's own text, printed unescaped as ``blocktranslate`` prints them; the
    # values put into them are numbers.
    legend = gettext("cTrader ID %(id)s: choose the accounts to use on TradingView")
    account = gettext("Account %(login)s")
    live = f'<span class="badge live">{escape(gettext("Live"))}</span>'
    demo = f'<span class="badge demo">{escape(gettext("Demo"))}</span>'
    brokers: dict[str, str] = {}
    groups: list[ConsentGroup] = []
    for group in options.ctids:
        if not group.eligible:
            continue
        rows: list[str] = []
        for option in group.eligible:
            a = option.account
            jurisdiction = a.jurisdiction
            name = jurisdiction.display_name if jurisdiction is not None else ""
            broker = brokers.get(name)
            if broker is None:
                broker = brokers[name] = escape(name)
            ticked = a.pk in checked if checked else a.is_tradingview
            rows.append(
                _ROW.format(
                    pk=a.pk,
                    checked=" checked" if ticked else "",
                    kind=live if a.is_live else demo,
                    label=account % {"login": a.login},
                    tradingview=_TRADINGVIEW if a.is_tradingview else "",
                    broker=broker,
                )
            )
        groups.append(
            ConsentGroup(
                legend=mark_safe(legend % {"id": group.ctid.user_id}),  # noqa: S308 - a number in our text
                rows=mark_safe("".join(rows)),  # noqa: S308 - escaped rows
            )
        )
    return groups
