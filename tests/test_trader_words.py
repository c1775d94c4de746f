"""Trader-facing pages speak the broker's language: no internal terms, and the flows a trader needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent, Ctid, CtidToken
from tests.factories import CtidFactory, CtidTokenFactory

ROOT = Path(__file__).resolve().parents[1]
# Staff pages (the admin) and the simulators are not the trader's.
STAFF_ONLY = ("templates/admin/",)
INTERNAL = re.compile(r"\b(adapter|tokens?|grants?|granted|sync\w*)\b", re.I)


def _visible_text(source: str) -> str:
    """What a template can show: its text and the strings of its translate tags, without markup or code."""
    source = re.sub(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", " ", source, flags=re.S)
    source = re.sub(r"{#.*?#}", " ", source, flags=re.S)
    shown = [m.group(1) for m in re.finditer(r'{%\s*translate\s+"((?:[^"\\]|\\.)*)"', source)]
    shown += [m.group(1) for m in re.finditer(r"{%\s*translate\s+'([^']*)'", source)]
    source = re.sub(r"{%.*?%}", " ", source, flags=re.S)
    source = re.sub(r"{{.*?}}", " ", source, flags=re.S)
    source = re.sub(r"<[^>]*>", " ", source)  # tags and their attributes (names, urls, ids)
    return source + " " + " ".join(shown)


def _trader_templates() -> list[Path]:
    found = []
    for base in (ROOT / "templates", *ROOT.glob("*/templates")):
        for path in base.rglob("*"):
            rel = path.relative_to(ROOT).as_posix()
            if path.is_file() and not rel.startswith(STAFF_ONLY) and "/sandbox/" not in f"/{rel}":
                found.append(path)
    return found


def test_no_trader_facing_template_uses_internal_words() -> None:
    templates = _trader_templates()
    assert len(templates) > 20
    offenders = {}
    for path in templates:
        words = INTERNAL.findall(_visible_text(path.read_text()))
        if words:
            offenders[path.relative_to(ROOT).as_posix()] = sorted(set(words))
    assert offenders == {}


def test_the_word_scan_sees_translated_strings_and_text() -> None:
    assert INTERNAL.search(_visible_text('<p>{% translate "The adapter refused" %}</p>'))
    assert INTERNAL.search(_visible_text("<p>Last sync failed</p>"))
    assert not INTERNAL.search(
        _visible_text("<form>{% csrf_token %}<a href=\"{% url 'ctid-sync' 1 %}\">x</a>")
    )


@pytest.mark.django_db
def test_signing_out_says_so(trader_client: Client) -> None:
    response = trader_client.post(reverse("logout"), follow=True)
    assert "You are signed out." in response.content.decode()


@pytest.mark.django_db
def test_django_default_form_help_is_replaced(client: Client) -> None:
    html = client.get(reverse("signup")).content.decode()
    assert "150 characters or fewer" not in html
    assert "Required." not in html
    assert "too similar to your other personal information" not in html
    assert "You sign in with it." in html


@pytest.mark.django_db
def test_a_trader_disconnects_a_ctid_after_confirming(trader_client: Client, trader, other_trader) -> None:
    ctid = CtidFactory(trader=trader, user_id=7001001)
    CtidTokenFactory(ctid=ctid)
    dashboard = trader_client.get(reverse("dashboard")).content.decode()
    confirm_url = reverse("ctid-disconnect", args=[ctid.pk])
    assert f'href="{confirm_url}"' in dashboard
    confirm = trader_client.get(confirm_url)
    assert confirm.status_code == 200
    assert "Disconnect cTrader ID 7001001?" in confirm.content.decode()
    ctid.refresh_from_db()
    assert ctid.state == Ctid.State.CONNECTED  # asking changes nothing
    done = trader_client.post(confirm_url, follow=True)
    assert "cTrader ID 7001001 is disconnected" in done.content.decode()
    ctid.refresh_from_db()
    assert ctid.state == Ctid.State.DISCONNECTED
    assert not CtidToken.objects.filter(ctid=ctid).exists()
    assert AuditEvent.objects.filter(category="ctid", action="disconnect", trader=trader).exists()


@pytest.mark.django_db
def test_another_traders_ctid_cannot_be_disconnected(trader_client: Client, other_trader) -> None:
    ctid = CtidFactory(trader=other_trader, user_id=7001009)
    CtidTokenFactory(ctid=ctid)
    url = reverse("ctid-disconnect", args=[ctid.pk])
    assert trader_client.get(url).status_code == 404
    assert trader_client.post(url).status_code == 404
    ctid.refresh_from_db()
    assert ctid.state == Ctid.State.CONNECTED
    assert CtidToken.objects.filter(ctid=ctid).exists()


@pytest.mark.django_db
def test_contact_support_links_to_the_brokers_support_page(client: Client, settings) -> None:
    from django.contrib.auth import get_user_model

    settings.BRAND_SUPPORT_URL = "https://help.example/contact"
    user = get_user_model().objects.create_user("noprofile", password="x-Long-Enough-1")
    client.force_login(user)
    html = client.get("/").content.decode()
    assert '<a href="https://help.example/contact">contact support</a>' in html
