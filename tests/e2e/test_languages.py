"""Journeys in German and Spanish in Chromium: every visible string translated, including the TradingView
consent page opened with lang=de; two-step sign-in enrolled and used with a TOTP computed here."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sandbox.control import Sandbox
from tests.helpers.journeys import ALICE, DEMO_TRADER
from tests.twofactor.totp import totp

from .steps import confirm_sign_up_from_the_mail, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def _english_phrases(code: str) -> list[str]:
    """The English strings of the catalogue whose translation differs (placeholders cut out)."""
    source = (ROOT / "locale" / code / "LC_MESSAGES" / "django.po").read_text()
    phrases = []
    for msgid, msgstr in re.findall(r'\nmsgid ((?:".*"\n)+)msgstr ((?:".*"\n)+)', source):
        english = "".join(re.findall(r'"(.*)"', msgid)).replace('\\"', '"')
        translated = "".join(re.findall(r'"(.*)"', msgstr)).replace('\\"', '"')
        for piece in re.split(r"%\(\w+\)s|<[^>]+>", english):
            piece = piece.strip(" .,:;?!()")
            if len(piece) >= 12 and piece not in translated:
                phrases.append(piece)
    return phrases


def _assert_all_translated(page: Page, code: str) -> None:
    text = " ".join(page.locator("body").inner_text().split())
    left = [phrase for phrase in _english_phrases(code) if phrase in text]
    assert left == [], f"English on a {code} page: {left}"


def test_a_german_trader_signs_in_with_two_step_sign_in_and_links_tradingview_in_german(
    browser, clientarea: str, sandbox: Sandbox
) -> None:
    context = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto(f"{clientarea}/account/login/")
        expect(page.locator("html")).to_have_attribute("lang", "de")
        _assert_all_translated(page, "de")
        page.get_by_label("Benutzername").fill(DEMO_TRADER[0])
        page.get_by_label("Passwort").fill(DEMO_TRADER[1])
        page.locator("main").get_by_role("button", name="Anmelden").click()
        expect(page.get_by_role("heading", name="Ihre Handelskonten")).to_be_visible()
        _assert_all_translated(page, "de")

        # Two-step sign-in, offered on the dashboard, enrolled with a code computed from the shown key.
        page.get_by_role("link", name="Anmeldung in zwei Schritten einschalten").click()
        _assert_all_translated(page, "de")
        secret = page.locator("code.secret").inner_text()
        page.get_by_label("Code aus der App").fill(totp(secret))
        page.get_by_role("button", name="Einschalten").click()
        expect(page.get_by_role("heading", name="Ihre Wiederherstellungscodes")).to_be_visible()
        expect(page.locator("ul.codes li")).to_have_count(10)
        _assert_all_translated(page, "de")

        page.get_by_role("button", name="Abmelden").click()
        expect(page.get_by_text("Sie sind abgemeldet.")).to_be_visible()
        page.get_by_label("Benutzername").fill(DEMO_TRADER[0])
        page.get_by_label("Passwort").fill(DEMO_TRADER[1])
        page.locator("main").get_by_role("button", name="Anmelden").click()
        expect(page.get_by_role("heading", name="Anmeldung in zwei Schritten")).to_be_visible()
        _assert_all_translated(page, "de")
        page.get_by_label("Code").fill(
            totp(secret, at=time.time() + 30)
        )  # the enrolment used this step's code
        page.get_by_role("button", name="Weiter").click()
        expect(page.get_by_role("heading", name="Ihre Handelskonten")).to_be_visible()

        page.goto(f"{clientarea}/")
        page.get_by_role("button", name="cTrader ID verbinden").first.click()
        page.locator(f'input[name="user_id"][value="{ALICE}"]').check()
        page.get_by_role("button", name="Allow access").click()  # the simulated cTrader ID page
        expect(page.get_by_role("heading", name=f"cTrader ID {ALICE}")).to_be_visible()
        _assert_all_translated(page, "de")

        # TradingView opens the authorization with lang=de: the consent page is German throughout.
        page.goto(f"{sandbox.url}/tradingview-sim/")
        page.get_by_role("link", name="Connect broker accounts").click()
        page.wait_for_url(re.compile(r"/tradingview/oauth/authorize\?"))
        authorize = re.sub(r"&lang=[^&]*", "", page.url)
        page.goto(authorize + "&lang=de")
        expect(page.get_by_role("heading", name="Ihre Konten auf TradingView nutzen")).to_be_visible()
        expect(page.locator("html")).to_have_attribute("lang", "de")
        _assert_all_translated(page, "de")
        expect(page.get_by_role("button", name="Ausgewählte Konten verwenden")).to_be_visible()
        expect(page.get_by_role("button", name="Abbrechen")).to_be_visible()
    finally:
        context.close()


def test_a_spanish_trader_signs_up_and_connects_in_spanish(
    browser, clientarea: str, sandbox: Sandbox
) -> None:
    context = browser.new_context(locale="es-ES", viewport={"width": 390, "height": 844})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto(f"{clientarea}/account/signup/")
        _assert_all_translated(page, "es")
        page.get_by_label("Nombre de usuario").fill("trader_es")
        page.get_by_label("Correo electrónico").fill("trader_es@example.com")
        page.get_by_label(re.compile(r"^Contraseña:?$")).fill("una-frase-larga-y-rara-2026")
        page.get_by_label("Repita la contraseña").fill("una-frase-larga-y-rara-2026")
        page.get_by_role("button", name="Crear cuenta").click()
        expect(page.get_by_role("heading", name="Revise su bandeja de entrada")).to_be_visible()
        _assert_all_translated(page, "es")
        confirm_sign_up_from_the_mail(page, "trader_es@example.com")
        from django.core import mail

        assert mail.outbox[-1].subject.startswith("Termine de crear su cuenta")  # in the page's language
        expect(page.get_by_role("heading", name="Sus cuentas de trading")).to_be_visible()
        _assert_all_translated(page, "es")
        page.get_by_role("link", name="Configuración").click()
        expect(page.get_by_role("heading", name="Configuración", exact=True)).to_be_visible()
        _assert_all_translated(page, "es")
    finally:
        context.close()


def test_the_footer_switch_changes_the_language_and_keeps_it(page: Page, clientarea: str) -> None:
    sign_in(page, clientarea, *DEMO_TRADER)
    page.get_by_label("Language").select_option("de")
    page.get_by_role("button", name="Change").click()
    expect(page.get_by_role("heading", name="Ihre Handelskonten")).to_be_visible()
    page.goto(f"{clientarea}/account/settings/")
    expect(page.get_by_label("Sprache", exact=True)).to_have_value("de")
