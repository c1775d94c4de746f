"""The language: TradingView's `lang` for its flow, else the trader's profile, else the browser."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from preferences.models import Preference
from preferences.services import preference_update
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _authorize_url(lang: str) -> str:
    from tradingview.services.clients import oauth_client_ensure

    oauth_client_ensure(
        client_id="tv-lang",
        client_secret="tv-lang-secret-value",
        name="TradingView",
        redirect_uri="https://tv.example/cb",
    )
    return "/tradingview/oauth/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": "tv-lang",
            "redirect_uri": "https://tv.example/cb",
            "state": "s",
            "lang": lang,
        }
    )


def test_the_browser_language_is_used_when_nothing_else_chooses(client: Client) -> None:
    html = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9").content.decode()
    assert '<html lang="de">' in html
    assert "Passwort vergessen?" in html
    html = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "¿Olvidó su contraseña?" in html


def test_the_profile_language_beats_the_browser(trader) -> None:
    preference_update(user=trader.user, language="es")
    client = Client(HTTP_ACCEPT_LANGUAGE="de")
    client.post(reverse("login"), {"username": trader.user.username, "password": PASSWORD})
    html = client.get("/").content.decode()
    assert '<html lang="es">' in html
    assert "Sus cuentas de trading" in html


def test_tradingview_lang_wins_for_its_flow_from_sign_in_to_consent(trader) -> None:
    preference_update(user=trader.user, language="es")
    url = _authorize_url("de")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    to_login = client.get(url)
    login_page = client.get(to_login["Location"]).content.decode()
    assert "Passwort vergessen?" in login_page  # German, from `lang` carried in `next`
    client.post(reverse("login"), {"username": trader.user.username, "password": PASSWORD, "next": url})
    consent = client.get(url).content.decode()
    assert '<html lang="de">' in consent
    assert "Ihre Konten auf TradingView nutzen" in consent
    # Outside the flow the profile's language is back.
    assert "Sus cuentas de trading" in client.get("/").content.decode()


def test_an_unknown_tradingview_lang_falls_back_to_the_profile(trader, trader_client: Client) -> None:
    preference_update(user=trader.user, language="es")
    session = trader_client.session
    session["preferences.language"] = "es"
    session.save()
    html = trader_client.get(_authorize_url("ja")).content.decode()
    assert '<html lang="es">' in html


def test_the_trader_saves_a_language_in_the_settings_and_the_footer(trader, trader_client: Client) -> None:
    trader_client.post(
        reverse("settings"),
        {"language": "de", "notify_ctid_reconnect": "on", "notify_tradingview_revoked": "on"},
    )
    assert Preference.objects.get(user=trader.user).language == "de"
    assert "Ihre Handelskonten" in trader_client.get("/").content.decode()
    trader_client.post(reverse("set_language"), {"language": "es", "next": "/"})
    assert Preference.objects.get(user=trader.user).language == "es"
    assert "Sus cuentas de trading" in trader_client.get("/").content.decode()
    # An unsupported choice changes nothing.
    trader_client.post(reverse("set_language"), {"language": "xx", "next": "/"})
    assert Preference.objects.get(user=trader.user).language == "es"


def test_money_and_dates_follow_the_language(trader, trader_client: Client) -> None:
    from decimal import Decimal

    from django.utils import timezone

    from tests.factories import CtidFactory, TradingAccountFactory

    ctid = CtidFactory(trader=trader)
    TradingAccountFactory(
        ctid=ctid, balance=Decimal("12500.5"), currency="EUR", last_synced_at=timezone.now()
    )
    preference_update(user=trader.user, language="de")
    session = trader_client.session
    session["preferences.language"] = "de"
    session.save()
    assert "12.500,50 EUR" in trader_client.get("/").content.decode()


def test_the_flow_language_reverses_its_paths_once_not_on_every_request(monkeypatch) -> None:
    # Every request passes the language middleware; it compares paths it reverses once per URL configuration.
    from clientarea import paths

    calls: list[str] = []
    real = paths.reverse

    def counting(name: str, *args, **kwargs) -> str:
        calls.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(paths, "reverse", counting)
    paths._reversed.cache_clear()
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.get(reverse("login"))
    client.post(reverse("login"), {"username": "nobody", "password": "wrong"})
    first = len(calls)
    for _ in range(3):
        client.get("/")
        client.post(reverse("login"), {"username": "nobody", "password": "wrong"})
    assert len(calls) == first
    # And the flow still takes TradingView's language from a sign-in form on its way.
    login = client.post(
        reverse("login"), {"username": "nobody", "password": "wrong", "next": _authorize_url("de")}
    )
    assert '<html lang="de">' in login.content.decode()


def test_every_site_page_offers_the_languages_in_its_footer_and_the_navigation_in_its_header(
    trader_client: Client,
) -> None:
    """base.html's header and footer (templates/_site_nav.html, _site_footer.html): on a page in German, the
    language form selects German and returns to the page; the signed-in navigation marks the page it is on."""
    trader_client.post(reverse("set_language"), {"language": "de", "next": "/"})
    html = trader_client.get(reverse("settings")).content.decode()
    assert f'<form method="post" action="{reverse("set_language")}" class="language-switch">' in html
    assert f'<input type="hidden" name="next" value="{reverse("settings")}">' in html
    assert '<option value="de" selected>Deutsch</option>' in html
    assert html.count("<option value=") > 1
    assert f'<a href="{reverse("settings")}" aria-current="page">' in html
    assert f'<form method="post" action="{reverse("logout")}" class="inline">' in html
    signed_out = Client().get(reverse("login"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert f'<a href="{reverse("login")}" aria-current="page">' in signed_out
    assert reverse("logout") not in signed_out
