"""Sign-up confirms the address by email, and answers the same whether or not the address has an account."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent, Trader
from preferences.services import preference_update
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Quite-Long-Passphrase-42"


def _sign_up(client: Client, username: str, email: str, captured, **extra: str):
    data = {"username": username, "email": email, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    with captured(execute=True):
        return client.post(reverse("signup"), {**data, **extra})


def _link(text: str) -> str:
    return re.search(r"https?://\S+/account/signup/confirm/\S+", text).group(0)


def _comparable(html: str) -> str:
    # Per-request values (CSRF token, CSP nonce) differ between any two responses.
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return re.sub(r'nonce="[^"]+"', "", html)


def test_a_new_address_gets_a_link_that_creates_the_account(
    smtp, settings, django_capture_on_commit_callbacks
) -> None:
    settings.SITE_URL = "https://client.broker.example"
    client = Client()
    response = _sign_up(client, "newbie", "Newbie@Example.test", django_capture_on_commit_callbacks)
    assert response.status_code == 302
    assert response["Location"] == reverse("signup-sent")
    page = client.get(response["Location"]).content.decode()
    assert "Check your inbox" in page
    # Nothing exists and nobody is signed in until the address is confirmed.
    assert not get_user_model().objects.filter(username="newbie").exists()
    assert client.get("/").status_code == 302
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["To"] == "Newbie@example.test"
    text = smtp.parts(message)["text/plain"]
    link = _link(text)
    assert link.startswith("https://client.broker.example/account/signup/confirm/")
    assert NEW_PASSWORD not in text
    assert f'href="{link}"' in smtp.parts(message)["text/html"]

    done = client.get(link.removeprefix(settings.SITE_URL))
    assert done.status_code == 302
    assert done["Location"] == reverse("dashboard")
    trader = Trader.objects.get(user__username="newbie")
    assert trader.user.email == "Newbie@example.test"
    assert trader.user.check_password(NEW_PASSWORD)
    assert trader.email_verified == "newbie@example.test"
    assert AuditEvent.objects.filter(trader=trader, action="sign_up").exists()
    assert client.get("/").status_code == 200
    # A second click creates nothing more and asks to sign in.
    again = Client().get(link.removeprefix(settings.SITE_URL))
    assert again.status_code == 302
    assert again["Location"].startswith(reverse("login"))
    assert get_user_model().objects.filter(email__iexact="newbie@example.test").count() == 1


def test_the_link_opened_in_another_browser_asks_for_the_password(
    smtp, settings, django_capture_on_commit_callbacks
) -> None:
    next_url = "/tradingview/oauth/authorize?client_id=tv&state=s1"
    _sign_up(
        Client(), "elsewhere", "elsewhere@example.test", django_capture_on_commit_callbacks, next=next_url
    )
    link = _link(smtp.parts(smtp.messages[0])["text/plain"]).removeprefix(settings.SITE_URL)
    other = Client()
    done = other.get(link)
    assert done.status_code == 302
    assert done["Location"].startswith(reverse("login"))
    assert "next=%2Ftradingview%2Foauth%2Fauthorize" in done["Location"]
    assert other.get("/").status_code == 302  # the link alone never signs anyone in
    signed_in = other.post(done["Location"], {"username": "elsewhere", "password": NEW_PASSWORD})
    assert signed_in["Location"] == next_url


def test_a_changed_or_expired_link_creates_nothing(
    smtp, settings, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    client = Client()
    _sign_up(client, "late", "late@example.test", django_capture_on_commit_callbacks)
    link = _link(smtp.parts(smtp.messages[0])["text/plain"]).removeprefix(settings.SITE_URL)
    broken = client.get(link[:-6] + "AAAAAA", follow=True)
    assert "This link is not valid." in broken.content.decode()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + settings.EMAIL_VERIFICATION_TTL_SECONDS + 60)
    expired = client.get(link, follow=True)
    assert "This link has expired. Sign up again." in expired.content.decode()
    assert not get_user_model().objects.filter(username="late").exists()


def test_an_address_with_an_account_gets_the_same_answer_and_its_owner_is_told(
    smtp, trader, settings, django_capture_on_commit_callbacks
) -> None:
    settings.SITE_URL = "https://client.broker.example"
    preference_update(user=trader.user, language="de")
    first, second = Client(), Client()
    new = _sign_up(first, "someone_new", "someone.new@example.test", django_capture_on_commit_callbacks)
    taken = _sign_up(second, "someone_else", trader.user.email.upper(), django_capture_on_commit_callbacks)
    assert (new.status_code, new["Location"]) == (taken.status_code, taken["Location"])
    new_page, taken_page = first.get(new["Location"]), second.get(taken["Location"])
    assert new_page.status_code == taken_page.status_code == 200
    assert _comparable(new_page.content.decode()) == _comparable(taken_page.content.decode())
    assert not get_user_model().objects.filter(username="someone_else").exists()
    trader.user.refresh_from_db()
    assert trader.user.check_password(PASSWORD)

    assert [m["To"] for m in smtp.messages] == ["someone.new@example.test", trader.user.email]
    notice = smtp.messages[1]
    assert notice["Content-Language"] == "de"
    assert notice["Subject"] == "Jemand wollte sich mit Ihrer E-Mail-Adresse registrieren"
    text, html = smtp.parts(notice)["text/plain"], smtp.parts(notice)["text/html"]
    assert "https://client.broker.example/account/login/" in text
    assert "https://client.broker.example/account/password/reset/" in text
    assert 'href="https://client.broker.example/account/password/reset/"' in html
    assert "/account/signup/confirm/" not in text
    assert NEW_PASSWORD not in text


def test_the_form_still_refuses_a_weak_or_mismatched_password(
    smtp, trader, django_capture_on_commit_callbacks
) -> None:
    data = {"username": "copycat", "email": trader.user.email}
    with django_capture_on_commit_callbacks(execute=True):
        weak = Client().post(reverse("signup"), {**data, "password1": "123", "password2": "123"})
        mismatch = Client().post(
            reverse("signup"), {**data, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"}
        )
    for response in (weak, mismatch):
        assert response.status_code == 200
        assert "password2" in response.context["form"].errors
        assert "email" not in response.context["form"].errors
    assert smtp.messages == []


def _post_sign_up(captured, username: str, email: str, address: str):
    data = {"username": username, "email": email, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    with captured(execute=True):
        return Client(REMOTE_ADDR=address).post(reverse("signup"), data)


def test_sign_ups_from_one_network_are_limited(smtp, settings, django_capture_on_commit_callbacks) -> None:
    settings.SIGN_UP_CLIENT_RATE = "2/h"
    answers = [
        _post_sign_up(
            django_capture_on_commit_callbacks, f"flood{n}", f"flood{n}@example.test", "203.0.113.9"
        )
        for n in range(3)
    ]
    assert [a.status_code for a in answers] == [302, 302, 429]
    page = answers[2].content.decode()
    assert "Too many sign-ups" in page
    assert "flood2@example.test" not in page
    assert [m["To"] for m in smtp.messages] == ["flood0@example.test", "flood1@example.test"]
    # Another network is not held back by the first one's sign-ups.
    other = _post_sign_up(django_capture_on_commit_callbacks, "calm", "calm@example.test", "198.51.100.7")
    assert other.status_code == 302
    assert len(smtp.messages) == 3


def test_mails_to_one_address_are_limited_without_saying_so(
    smtp, trader, settings, django_capture_on_commit_callbacks
) -> None:
    settings.SIGN_UP_EMAIL_RATE = "1/h"
    owner = trader.user.email
    answers = [
        _post_sign_up(django_capture_on_commit_callbacks, f"again{n}", email, f"192.0.2.{n}")
        for n, email in enumerate(["target@example.test", "TARGET@example.test", owner, owner.upper()])
    ]
    # Every sign-up gets the same answer; only the first to each address is mailed.
    assert {(a.status_code, a["Location"]) for a in answers} == {(302, reverse("signup-sent"))}
    assert [m["To"].lower() for m in smtp.messages] == ["target@example.test", owner.lower()]
