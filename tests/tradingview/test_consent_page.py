"""The consent page reads the same in each language, whatever was rendered before it."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import translation

from tests.helpers.tradingview import Registered, authorize_params

pytestmark = pytest.mark.django_db


def _consent_page(client: Client, tv: Registered, language: str) -> str:
    response = client.get("/tradingview/oauth/authorize", authorize_params(tv, lang=language))
    assert response.status_code == 200
    html = response.content.decode()
    # Per request: the CSRF token's mask and the signed form (its random key); the rest must match exactly.
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return re.sub(r'name="consent" value="[^"]+"', "", html)


def test_consent_page_in_english_and_german_fresh_and_reused(
    browser_client: Client, tv_client, accounts
) -> None:
    pages: dict[str, str] = {}
    for language in ["en", "de", "en", "de"]:
        fresh = _consent_page(browser_client, tv_client, language)
        assert _consent_page(browser_client, tv_client, language) == fresh
        assert pages.setdefault(language, fresh) == fresh
    for language, page in pages.items():
        assert f'<html lang="{language}">' in page
        with translation.override(language):
            live, demo = translation.gettext("Live"), translation.gettext("Demo")
            legend = translation.gettext("cTrader ID %(id)s: choose the accounts to use on TradingView")
        assert f'<span class="badge live">{live}</span>' in page
        assert f'<span class="badge demo">{demo}</span>' in page
        # Ids and numbers are written as they are, never grouped by the language's conventions.
        assert f"<legend>{legend % {'id': 14601}}</legend>" in page
        for account in accounts:
            assert f'value="{account.pk}" id="acc-{account.pk}"' in page
    assert pages["en"] != pages["de"]
