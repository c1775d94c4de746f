"""The consent page's account rows, byte for byte, in English and German: live and demo accounts,
cTrader/TradingView ones, ticked and unticked, brokers whose names need escaping, several cTrader IDs and an
account that cannot be used. Ids change from run to run; they are written as ``PK<n>`` before comparing."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import TradingAccount
from tests.factories import CtidFactory, JurisdictionFactory
from tests.helpers.tradingview import Registered, authorize_params, make_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed_accounts(trader) -> list[TradingAccount]:
    best = JurisdictionFactory(
        broker_name="BESTBROKER", display_name="Best Broker EU", tradingview_enabled=True
    )
    odd = JurisdictionFactory(broker_name="ODD", display_name="<b>& Co {x}", tradingview_enabled=True)
    off = JurisdictionFactory(broker_name="OFF", display_name="Off <i>", tradingview_enabled=False)
    first = CtidFactory(user_id=14601, trader=trader)
    second = CtidFactory(user_id=1234567, trader=trader)
    return [
        make_account(first, 137780091, live=True, jurisdiction=best, is_tradingview=True),
        make_account(first, 137792301, live=False, jurisdiction=odd),
        make_account(first, 131234567, live=True, jurisdiction=odd),
        make_account(second, 140000042, live=False, jurisdiction=best, is_tradingview=True),
        make_account(second, 149876543, live=True, jurisdiction=off),
    ]


def _card(html: str, accounts: list[TradingAccount]) -> str:
    """The page's card, without what changes per request (the CSRF token's mask, the signed form)."""
    start = html.index('<section class="card"')
    card = html[start : html.rindex("</section>") + len("</section>")]
    card = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken" value=""', card)
    card = re.sub(r'name="consent" value="[^"]+"', 'name="consent" value=""', card)
    for n, account in enumerate(accounts):
        card = re.sub(rf'(?<=["-]){account.pk}(?=")', f"PK{n}", card)
    return card


def _get(client: Client, tv: Registered, language: str) -> str:
    response = client.get("/tradingview/oauth/authorize", authorize_params(tv, lang=language))
    assert response.status_code == 200
    return response.content.decode()


def _post_ticked(client: Client, tv: Registered, language: str, ticked: list[int]) -> str:
    page = _get(client, tv, language)
    nonce = re.search(r'name="consent" value="([^"]+)"', page)
    assert nonce
    response = client.post(
        f"/tradingview/oauth/authorize?lang={language}",
        {"consent": nonce.group(1), "action": "allow", "accounts": [str(pk) for pk in ticked]},
    )
    assert response.status_code == 400
    return response.content.decode()


@pytest.mark.parametrize("language", ["en", "de"])
def test_consent_rows_as_first_shown(
    browser_client: Client, tv_client: Registered, mixed_accounts, language: str
) -> None:
    card = _card(_get(browser_client, tv_client, language), mixed_accounts)
    assert card == EXPECTED[language, "shown"]


@pytest.mark.parametrize("language", ["en", "de"])
def test_consent_rows_as_ticked_again_after_a_refusal(
    browser_client: Client, tv_client: Registered, mixed_accounts, other_trader_account, language: str
) -> None:
    # Another trader's account is refused, and the page comes back with the trader's choice still ticked.
    ticked = [mixed_accounts[1].pk, mixed_accounts[2].pk, other_trader_account.pk]
    card = _card(_post_ticked(browser_client, tv_client, language, ticked), mixed_accounts)
    assert card == EXPECTED[language, "ticked"]


# The card as the template printed it, one line to a string (some lines are only indentation).
EXPECTED: dict[tuple[str, str], str] = {
    ("en", "shown"): "\n".join(
        [
            '<section class="card" aria-labelledby="tv-title">',
            '  <h1 id="tv-title">Use your accounts on TradingView</h1>',
            "  <p><strong>TradingView production</strong> asks to trade for you at Client area on the accounts you choose below.",
            "    You can disconnect it at any time from the TradingView page of your dashboard.</p>",
            "  ",
            '  <form method="post" action="/tradingview/oauth/authorize?lang=en">',
            '    <input type="hidden" name="csrfmiddlewaretoken" value="">',
            '    <input type="hidden" name="consent" value="">',
            "    ",
            "    <fieldset>",
            "      <legend>cTrader ID 14601: choose the accounts to use on TradingView</legend>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK2" id="acc-PK2">',
            '        <label for="acc-PK2" class="choice">',
            '          <span class="badge live">Live</span>',
            "          Account 1234567",
            "          ",
            '          <span class="muted">&lt;b&gt;&amp; Co {x}</span>',
            "        </label>",
            "      </div>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK0" id="acc-PK0" checked>',
            '        <label for="acc-PK0" class="choice">',
            '          <span class="badge live">Live</span>',
            "          Account 7780091",
            '          <span class="badge ok">cTrader/TradingView</span>',
            '          <span class="muted">Best Broker EU</span>',
            "        </label>",
            "      </div>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK1" id="acc-PK1">',
            '        <label for="acc-PK1" class="choice">',
            '          <span class="badge demo">Demo</span>',
            "          Account 7792301",
            "          ",
            '          <span class="muted">&lt;b&gt;&amp; Co {x}</span>',
            "        </label>",
            "      </div>",
            "      ",
            "    </fieldset>",
            "    ",
            "    <fieldset>",
            "      <legend>cTrader ID 1234567: choose the accounts to use on TradingView</legend>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK3" id="acc-PK3" checked>',
            '        <label for="acc-PK3" class="choice">',
            '          <span class="badge demo">Demo</span>',
            "          Account 42",
            '          <span class="badge ok">cTrader/TradingView</span>',
            '          <span class="muted">Best Broker EU</span>',
            "        </label>",
            "      </div>",
            "      ",
            "    </fieldset>",
            "    ",
            '    <p class="actions">',
            '      <button type="submit" name="action" value="allow">Use the chosen accounts</button>',
            '      <button type="submit" name="action" value="deny" class="secondary" formnovalidate>Cancel</button>',
            "    </p>",
            "  </form>",
            "  ",
            '<section aria-labelledby="inel-title">',
            '  <h2 id="inel-title">Accounts you cannot use on TradingView</h2>',
            "  <ul>",
            "    ",
            '    <li><span class="badge live">Live</span>',
            "      Account 9876543:",
            '      <span class="muted">Off &lt;i&gt; accounts cannot be used on TradingView.</span></li>',
            "    ",
            "  </ul>",
            "  ",
            "</section>",
            "",
            "",
            "</section>",
        ]
    ),
    ("en", "ticked"): "\n".join(
        [
            '<section class="card" aria-labelledby="tv-title">',
            '  <h1 id="tv-title">Use your accounts on TradingView</h1>',
            "  <p><strong>TradingView production</strong> asks to trade for you at Client area on the accounts you choose below.",
            "    You can disconnect it at any time from the TradingView page of your dashboard.</p>",
            '  <div class="banner error" role="alert"><p>One or more of the chosen accounts are not yours.</p></div>',
            '  <form method="post" action="/tradingview/oauth/authorize?lang=en">',
            '    <input type="hidden" name="csrfmiddlewaretoken" value="">',
            '    <input type="hidden" name="consent" value="">',
            "    ",
            "    <fieldset>",
            "      <legend>cTrader ID 14601: choose the accounts to use on TradingView</legend>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK2" id="acc-PK2" checked>',
            '        <label for="acc-PK2" class="choice">',
            '          <span class="badge live">Live</span>',
            "          Account 1234567",
            "          ",
            '          <span class="muted">&lt;b&gt;&amp; Co {x}</span>',
            "        </label>",
            "      </div>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK0" id="acc-PK0">',
            '        <label for="acc-PK0" class="choice">',
            '          <span class="badge live">Live</span>',
            "          Account 7780091",
            '          <span class="badge ok">cTrader/TradingView</span>',
            '          <span class="muted">Best Broker EU</span>',
            "        </label>",
            "      </div>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK1" id="acc-PK1" checked>',
            '        <label for="acc-PK1" class="choice">',
            '          <span class="badge demo">Demo</span>',
            "          Account 7792301",
            "          ",
            '          <span class="muted">&lt;b&gt;&amp; Co {x}</span>',
            "        </label>",
            "      </div>",
            "      ",
            "    </fieldset>",
            "    ",
            "    <fieldset>",
            "      <legend>cTrader ID 1234567: choose the accounts to use on TradingView</legend>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK3" id="acc-PK3">',
            '        <label for="acc-PK3" class="choice">',
            '          <span class="badge demo">Demo</span>',
            "          Account 42",
            '          <span class="badge ok">cTrader/TradingView</span>',
            '          <span class="muted">Best Broker EU</span>',
            "        </label>",
            "      </div>",
            "      ",
            "    </fieldset>",
            "    ",
            '    <p class="actions">',
            '      <button type="submit" name="action" value="allow">Use the chosen accounts</button>',
            '      <button type="submit" name="action" value="deny" class="secondary" formnovalidate>Cancel</button>',
            "    </p>",
            "  </form>",
            "  ",
            '<section aria-labelledby="inel-title">',
            '  <h2 id="inel-title">Accounts you cannot use on TradingView</h2>',
            "  <ul>",
            "    ",
            '    <li><span class="badge live">Live</span>',
            "      Account 9876543:",
            '      <span class="muted">Off &lt;i&gt; accounts cannot be used on TradingView.</span></li>',
            "    ",
            "  </ul>",
            "  ",
            "</section>",
            "",
            "",
            "</section>",
        ]
    ),
    ("de", "shown"): "\n".join(
        [
            '<section class="card" aria-labelledby="tv-title">',
            '  <h1 id="tv-title">Ihre Konten auf TradingView nutzen</h1>',
            "  <p><strong>TradingView production</strong> möchte für Sie bei Client area auf den Konten handeln, die Sie unten auswählen.",
            "    Sie können die Verbindung jederzeit auf der TradingView-Seite Ihres Kundenbereichs trennen.</p>",
            "  ",
            '  <form method="post" action="/tradingview/oauth/authorize?lang=de">',
            '    <input type="hidden" name="csrfmiddlewaretoken" value="">',
            '    <input type="hidden" name="consent" value="">',
            "    ",
            "    <fieldset>",
            "      <legend>cTrader ID 14601: Wählen Sie die Konten für TradingView</legend>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK2" id="acc-PK2">',
            '        <label for="acc-PK2" class="choice">',
            '          <span class="badge live">Live</span>',
            "          Konto 1234567",
            "          ",
            '          <span class="muted">&lt;b&gt;&amp; Co {x}</span>',
            "        </label>",
            "      </div>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK0" id="acc-PK0" checked>',
            '        <label for="acc-PK0" class="choice">',
            '          <span class="badge live">Live</span>',
            "          Konto 7780091",
            '          <span class="badge ok">cTrader/TradingView</span>',
            '          <span class="muted">Best Broker EU</span>',
            "        </label>",
            "      </div>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK1" id="acc-PK1">',
            '        <label for="acc-PK1" class="choice">',
            '          <span class="badge demo">Demo</span>',
            "          Konto 7792301",
            "          ",
            '          <span class="muted">&lt;b&gt;&amp; Co {x}</span>',
            "        </label>",
            "      </div>",
            "      ",
            "    </fieldset>",
            "    ",
            "    <fieldset>",
            "      <legend>cTrader ID 1234567: Wählen Sie die Konten für TradingView</legend>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK3" id="acc-PK3" checked>',
            '        <label for="acc-PK3" class="choice">',
            '          <span class="badge demo">Demo</span>',
            "          Konto 42",
            '          <span class="badge ok">cTrader/TradingView</span>',
            '          <span class="muted">Best Broker EU</span>',
            "        </label>",
            "      </div>",
            "      ",
            "    </fieldset>",
            "    ",
            '    <p class="actions">',
            '      <button type="submit" name="action" value="allow">Ausgewählte Konten verwenden</button>',
            '      <button type="submit" name="action" value="deny" class="secondary" formnovalidate>Abbrechen</button>',
            "    </p>",
            "  </form>",
            "  ",
            '<section aria-labelledby="inel-title">',
            '  <h2 id="inel-title">Konten, die Sie nicht auf TradingView verwenden können</h2>',
            "  <ul>",
            "    ",
            '    <li><span class="badge live">Live</span>',
            "      Konto 9876543:",
            '      <span class="muted">Konten von Off &lt;i&gt; können nicht auf TradingView verwendet werden.</span></li>',
            "    ",
            "  </ul>",
            "  ",
            "</section>",
            "",
            "",
            "</section>",
        ]
    ),
    ("de", "ticked"): "\n".join(
        [
            '<section class="card" aria-labelledby="tv-title">',
            '  <h1 id="tv-title">Ihre Konten auf TradingView nutzen</h1>',
            "  <p><strong>TradingView production</strong> möchte für Sie bei Client area auf den Konten handeln, die Sie unten auswählen.",
            "    Sie können die Verbindung jederzeit auf der TradingView-Seite Ihres Kundenbereichs trennen.</p>",
            '  <div class="banner error" role="alert"><p>One or more of the chosen accounts are not yours.</p></div>',
            '  <form method="post" action="/tradingview/oauth/authorize?lang=de">',
            '    <input type="hidden" name="csrfmiddlewaretoken" value="">',
            '    <input type="hidden" name="consent" value="">',
            "    ",
            "    <fieldset>",
            "      <legend>cTrader ID 14601: Wählen Sie die Konten für TradingView</legend>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK2" id="acc-PK2" checked>',
            '        <label for="acc-PK2" class="choice">',
            '          <span class="badge live">Live</span>',
            "          Konto 1234567",
            "          ",
            '          <span class="muted">&lt;b&gt;&amp; Co {x}</span>',
            "        </label>",
            "      </div>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK0" id="acc-PK0">',
            '        <label for="acc-PK0" class="choice">',
            '          <span class="badge live">Live</span>',
            "          Konto 7780091",
            '          <span class="badge ok">cTrader/TradingView</span>',
            '          <span class="muted">Best Broker EU</span>',
            "        </label>",
            "      </div>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK1" id="acc-PK1" checked>',
            '        <label for="acc-PK1" class="choice">',
            '          <span class="badge demo">Demo</span>',
            "          Konto 7792301",
            "          ",
            '          <span class="muted">&lt;b&gt;&amp; Co {x}</span>',
            "        </label>",
            "      </div>",
            "      ",
            "    </fieldset>",
            "    ",
            "    <fieldset>",
            "      <legend>cTrader ID 1234567: Wählen Sie die Konten für TradingView</legend>",
            "      ",
            '      <div class="checkbox-row">',
            '        <input type="checkbox" name="accounts" value="PK3" id="acc-PK3">',
            '        <label for="acc-PK3" class="choice">',
            '          <span class="badge demo">Demo</span>',
            "          Konto 42",
            '          <span class="badge ok">cTrader/TradingView</span>',
            '          <span class="muted">Best Broker EU</span>',
            "        </label>",
            "      </div>",
            "      ",
            "    </fieldset>",
            "    ",
            '    <p class="actions">',
            '      <button type="submit" name="action" value="allow">Ausgewählte Konten verwenden</button>',
            '      <button type="submit" name="action" value="deny" class="secondary" formnovalidate>Abbrechen</button>',
            "    </p>",
            "  </form>",
            "  ",
            '<section aria-labelledby="inel-title">',
            '  <h2 id="inel-title">Konten, die Sie nicht auf TradingView verwenden können</h2>',
            "  <ul>",
            "    ",
            '    <li><span class="badge live">Live</span>',
            "      Konto 9876543:",
            '      <span class="muted">Konten von Off &lt;i&gt; können nicht auf TradingView verwendet werden.</span></li>',
            "    ",
            "  </ul>",
            "  ",
            "</section>",
            "",
            "",
            "</section>",
        ]
    ),
}
