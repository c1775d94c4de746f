"""The layout's parts rendered once per language and brand: pages read exactly as when every part is rendered
afresh, in each language, for each user, and a brand edit shows on the next page."""

from __future__ import annotations

import re

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client

from branding.services import brand_update
from clientarea.templatetags import page_parts

pytestmark = pytest.mark.django_db


def _page(client: Client, path: str, language: str) -> str:
    response = client.get(path, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    # The CSRF tokens are masked anew on every response; everything else must match byte for byte.
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


@pytest.mark.parametrize("path", ["/", "/account/login/"])
def test_pages_read_the_same_whether_the_parts_are_rendered_afresh_or_reused(
    trader_client: Client, client: Client, path: str
) -> None:
    browser = trader_client if path == "/" else client
    pages = {}
    for language in ["en", "de", "en", "de"]:
        page_parts.clear()
        fresh = _page(browser, path, language)
        reused = _page(browser, path, language)
        assert reused == fresh
        pages.setdefault(language, fresh)
        assert fresh == pages[language]
    assert '<html lang="en">' in pages["en"]
    assert ">Language</label>" in pages["en"]
    assert '<html lang="de">' in pages["de"]
    assert ">Sprache</label>" in pages["de"]
    assert '<option value="de" selected>' in pages["de"]


def test_each_user_sees_their_own_name_and_menu(
    trader_client: Client, trader, staff_client: Client, staff_user
) -> None:
    trader_page = _page(trader_client, "/account/settings/", "en")
    staff_page = _page(staff_client, "/account/settings/", "en")
    staff_name = f">{staff_user.get_username()}</span>"
    assert f">{trader.user.get_username()}</span>" in trader_page
    assert staff_name not in trader_page
    assert staff_name in staff_page
    assert ">Admin</a>" in staff_page
    assert ">Admin</a>" not in trader_page
    assert 'href="/account/settings/" aria-current="page"' in trader_page
    assert 'aria-current="page"' not in _page(trader_client, "/tradingview/", "en")


def test_a_brand_edit_shows_on_the_next_page(
    trader_client: Client, staff_user, django_capture_on_commit_callbacks
):
    before = _page(trader_client, "/", "en")
    assert "Harbour FX" not in before
    with django_capture_on_commit_callbacks(execute=True):
        brand_update(
            actor=staff_user,
            fields={
                "name": "Harbour FX",
                "support_url": "https://harbour.example/help",
                "legal_footer": "Regulated.",
            },
        )
    after = _page(trader_client, "/", "en")
    assert "<span>Harbour FX</span>" in after
    assert 'href="https://harbour.example/help"' in after
    assert '<p class="legal">Regulated.</p>' in after


@pytest.mark.parametrize(
    "body", ["{% csrf_token %}", "{% block title %}{% endblock %}", "{% if 1 %}{% csrf_token %}{% endif %}"]
)
def test_a_part_cannot_hold_what_differs_between_requests(body: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        Template("{% load page_parts %}{% page_part 'p' %}" + body + "{% endpage_part %}")


def test_a_part_is_rendered_again_for_other_values() -> None:
    template = Template("{% load page_parts %}{% page_part 'p' value %}[{{ value }}]{% endpage_part %}")
    assert template.render(Context({"value": 1})) == "[1]"
    assert template.render(Context({"value": 2})) == "[2]"
    assert template.render(Context({"value": 1})) == "[1]"
