"""Each notification email, received by a real SMTP server, in the trader's language, with its links."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Ctid
from accounts.services.traders import trader_change_password
from accounts.signals import ctid_needs_reconnect
from preferences.services import preference_update
from tests.factories import PASSWORD, CtidFactory, JurisdictionFactory, TradingAccountFactory
from tradingview.models import AccountRequest, Grant, OAuthClient
from tradingview.services.account_requests import account_request_decline, account_request_fulfil

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _adapter_unreachable(settings):
    # Revocations also queue the adapter's /logout; nothing listens here, so it is left for the sweep.
    settings.TRADINGVIEW_ADAPTER_URL = "http://127.0.0.1:9"


def _one(smtp, to: str):
    assert len(smtp.messages) == 1, [m["Subject"] for m in smtp.messages]
    message = smtp.messages[0]
    assert message["To"] == to
    parts = smtp.parts(message)
    assert set(parts) == {"text/plain", "text/html"}
    return message, parts["text/plain"], parts["text/html"]


def test_ctid_needs_reconnecting_mail_in_german_links_to_the_reconnect_button(
    smtp, trader, settings, django_capture_on_commit_callbacks
) -> None:
    settings.SITE_URL = "https://client.broker.example"
    preference_update(user=trader.user, language="de")
    ctid = CtidFactory(trader=trader, user_id=7001001, state=Ctid.State.NEEDS_RECONNECT)
    with django_capture_on_commit_callbacks(execute=True):
        ctid_needs_reconnect.send(sender=Ctid, ctid=ctid, reason="refresh refused")
    message, text, html = _one(smtp, trader.user.email)
    assert message["Subject"] == "Ihre cTrader ID 7001001 muss neu verbunden werden"
    assert message["Content-Language"] == "de"
    link = f"https://client.broker.example/#reconnect-{ctid.pk}"
    assert link in text
    assert f'href="{link}"' in html
    assert "refresh refused" not in text  # staff words stay out
    # The link leads to the dashboard's Reconnect button.
    client = Client()
    client.force_login(trader.user)
    assert f'id="reconnect-{ctid.pk}"' in client.get("/").content.decode()


def test_tradingview_link_revoked_mail_says_why(smtp, trader, django_capture_on_commit_callbacks) -> None:
    ctid = CtidFactory(trader=trader)
    account = TradingAccountFactory(ctid=ctid, login=5100101)
    client = OAuthClient.objects.create(client_id="tv-mail", name="TradingView", client_secret_hash="x" * 64)
    now = timezone.now()
    grant = Grant.objects.create(
        client=client,
        trader=trader,
        ctid=ctid,
        state=Grant.State.ACTIVE,
        adapter_token="adapter-token-value-for-test",
        adapter_token_issued_at=now,
        adapter_token_expires_at=now + timedelta(days=30),
    )
    grant.accounts.add(account)
    with django_capture_on_commit_callbacks(execute=True):
        trader_change_password(user=trader.user, new_password="Another-Long-Passphrase-9", via="change")
    message, text, html = _one(smtp, trader.user.email)
    assert message["Subject"] == "Your TradingView session has ended"
    assert "You changed your password" in text
    assert "5100101" in text
    assert "You changed your password" in html
    assert "adapter-token-value-for-test" not in text + html


def test_account_request_handled_mail_in_spanish(
    smtp, trader, staff_user, settings, django_capture_on_commit_callbacks
) -> None:
    settings.SITE_URL = "https://client.broker.example"
    preference_update(user=trader.user, language="es")
    ctid = CtidFactory(trader=trader)
    account = TradingAccountFactory(ctid=ctid, login=5100777, jurisdiction=JurisdictionFactory())
    request = AccountRequest.objects.create(
        trader=trader, environment="live", return_url="/tradingview/oauth/authorize?client_id=x"
    )
    with django_capture_on_commit_callbacks(execute=True):
        account_request_fulfil(account_request=request, account=account, actor=staff_user)
    message, text, html = _one(smtp, trader.user.email)
    assert message["Subject"] == "Su cuenta cTrader/TradingView está lista"
    assert "5100777" in text
    assert "https://client.broker.example/tradingview/oauth/authorize?client_id=x" in text
    assert 'href="https://client.broker.example/tradingview/oauth/authorize?client_id=x"' in html
    smtp.messages.clear()
    other = AccountRequest.objects.create(trader=trader, environment="demo")
    with django_capture_on_commit_callbacks(execute=True):
        account_request_decline(account_request=other, actor=staff_user)
    message, text, _html = _one(smtp, trader.user.email)
    assert "No pudimos abrir" in text


def test_new_device_sign_in_mail_and_none_for_a_known_device(
    smtp, trader, django_capture_on_commit_callbacks
) -> None:
    first = Client(HTTP_USER_AGENT="Browser One")
    with django_capture_on_commit_callbacks(execute=True):
        first.post(reverse("login"), {"username": trader.user.username, "password": PASSWORD})
    assert smtp.messages == []  # the very first sign-in has nothing to compare with
    with django_capture_on_commit_callbacks(execute=True):
        first.post(reverse("logout"))
        first.post(reverse("login"), {"username": trader.user.username, "password": PASSWORD})
    assert smtp.messages == []  # same browser, known device cookie
    other = Client(HTTP_USER_AGENT="Browser Two")
    with django_capture_on_commit_callbacks(execute=True):
        other.post(reverse("login"), {"username": trader.user.username, "password": PASSWORD})
    message, text, html = _one(smtp, trader.user.email)
    assert "New sign-in" in message["Subject"]
    assert "Browser Two" in text
    assert "Browser Two" in html
    assert "/account/password/change/" in text


def test_a_trader_can_turn_each_notification_off(smtp, trader, django_capture_on_commit_callbacks) -> None:
    client = Client()
    client.force_login(trader.user)
    response = client.post(
        reverse("settings"),
        {
            "language": "",
            "notify_tradingview_revoked": "on",
            "notify_account_request": "on",
            "notify_new_sign_in": "on",
        },
    )
    assert response.status_code == 302
    ctid = CtidFactory(trader=trader, state=Ctid.State.NEEDS_RECONNECT)
    with django_capture_on_commit_callbacks(execute=True):
        ctid_needs_reconnect.send(sender=Ctid, ctid=ctid, reason="x")
    assert smtp.messages == []


def test_smtp_login_settings_are_used(smtp, trader, settings, django_capture_on_commit_callbacks) -> None:
    settings.EMAIL_HOST_USER = "clientarea"
    settings.EMAIL_HOST_PASSWORD = "smtp-password-for-tests"
    ctid = CtidFactory(trader=trader, state=Ctid.State.NEEDS_RECONNECT)
    with django_capture_on_commit_callbacks(execute=True):
        ctid_needs_reconnect.send(sender=Ctid, ctid=ctid, reason="x")
    assert smtp.logins == [("clientarea", "smtp-password-for-tests")]
    assert len(smtp.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_the_worker_retries_when_the_mail_server_fails(smtp, trader, celery_worker) -> None:
    import notifications.tasks  # noqa: F401  (registers the task with the worker)

    smtp.refuse = 2
    ctid = CtidFactory(trader=trader, state=Ctid.State.NEEDS_RECONNECT)
    from notifications.tasks import send_notification

    send_notification.delay(
        "ctid_reconnect", trader.user_id, {"ctid_user_id": ctid.user_id, "ctid_pk": ctid.pk}
    )
    deadline = time.monotonic() + 20
    while not smtp.messages and time.monotonic() < deadline:
        time.sleep(0.1)
    assert smtp.refuse == 0
    assert len(smtp.messages) == 1
    assert re.search(r"cTrader ID \d+ needs to be reconnected", smtp.messages[0]["Subject"])
