import re

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client, override_settings
from django.urls import reverse

from accounts.models import AuditEvent, Trader
from accounts.services.traders import trader_suspend
from accounts.signals import trader_password_changed, trader_suspended
from tests.factories import PASSWORD, StaffUserFactory, TraderFactory

NEW_PASSWORD = "Brand-New-Sturdy-Pass-9"


@pytest.fixture
def received():
    """Signals received during the test, as (name, kwargs)."""
    events: list[tuple[str, dict]] = []

    def on_suspended(sender, **kwargs):
        events.append(("suspended", kwargs))

    def on_password(sender, **kwargs):
        events.append(("password", kwargs))

    trader_suspended.connect(on_suspended)
    trader_password_changed.connect(on_password)
    yield events
    trader_suspended.disconnect(on_suspended)
    trader_password_changed.disconnect(on_password)


def _login(client: Client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def _signed_in_user_id(client: Client):
    response = client.get(reverse("api-me"))
    return response.json()["username"] if response.status_code == 200 else None


@pytest.mark.django_db
def test_sign_up_creates_the_trader_once_the_address_is_confirmed(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("signup"),
            {
                "username": "newbie",
                "email": "Newbie@Example.test",
                "password1": PASSWORD,
                "password2": PASSWORD,
            },
        )
    assert response.status_code == 302
    assert response["Location"] == reverse("signup-sent")
    assert not Trader.objects.filter(user__username="newbie").exists()
    link = re.search(r"http\S+/account/signup/confirm/\S+", mail.outbox[-1].body).group(0)
    confirmed = client.get(link[link.index("/account/") :])
    assert confirmed.status_code == 302
    assert confirmed["Location"] == reverse("dashboard")
    trader = Trader.objects.get(user__username="newbie")
    assert not trader.kyc_verified
    assert not trader.suspended
    assert AuditEvent.objects.filter(trader=trader, action="sign_up").exists()
    assert _signed_in_user_id(client) == "newbie"


@pytest.mark.django_db
def test_sign_up_rejects_a_weak_password_without_telling_the_address_is_taken(client, trader):
    response = client.post(
        reverse("signup"),
        {"username": "copycat", "email": trader.user.email.upper(), "password1": "123", "password2": "123"},
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert "email" not in form.errors
    assert "password2" in form.errors
    assert not get_user_model().objects.filter(username="copycat").exists()
    html = response.content.decode()
    assert '<label for="id_email">' in html
    assert "already exists" not in html


def test_sign_in_and_sign_out(client, trader):
    response = _login(client, trader.user.username, PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    assert _signed_in_user_id(client) == trader.user.username
    assert client.get(reverse("logout")).status_code == 405  # sign-out is POST only
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert _signed_in_user_id(client) is None


def test_wrong_password_is_refused(client, trader):
    response = _login(client, trader.user.username, "not-the-password")
    assert response.status_code == 200
    assert "This username and password do not match" in response.content.decode()
    assert _signed_in_user_id(client) is None


def test_suspended_trader_with_the_right_password_gets_the_wrong_password_message(client, db):
    trader = TraderFactory(is_suspended=True)
    suspended = _login(client, trader.user.username, PASSWORD)
    wrong = _login(Client(), trader.user.username, "not-the-password")
    assert suspended.status_code == wrong.status_code == 200
    assert "This username and password do not match" in suspended.content.decode()
    assert "suspended" not in suspended.content.decode()
    assert suspended.context["form"].errors == wrong.context["form"].errors
    assert _signed_in_user_id(client) is None


def test_suspension_ends_existing_sessions_and_signals(trader_client, trader, received):
    assert trader_client.get(reverse("dashboard")).status_code == 200
    trader_suspend(trader=trader, reason="Fraud review")
    response = trader_client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert trader_client.get(reverse("api-me")).status_code == 403
    assert [name for name, _ in received] == ["suspended"]
    assert received[0][1]["trader"] == trader
    assert received[0][1]["reason"] == "Fraud review"


@override_settings(AXES_FAILURE_LIMIT=3)
def test_sign_in_throttled_per_account_and_address(trader):
    for _ in range(3):
        _login(Client(), trader.user.username, "wrong", ip="10.1.0.1")
    response = _login(Client(), trader.user.username, PASSWORD, ip="10.1.0.1")
    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.content.decode()
    # The same account from another address, and another account from the same address, still sign in.
    assert _login(Client(), trader.user.username, PASSWORD, ip="10.1.0.99").status_code == 302
    other = TraderFactory()
    assert _login(Client(), other.user.username, PASSWORD, ip="10.1.0.1").status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3, AXES_ADDRESS_FAILURE_LIMIT=6)
def test_sign_in_throttled_per_address_at_its_higher_limit(trader):
    # Guessing across many accounts from one address locks the address once its own limit is reached.
    for i in range(6):
        _login(Client(), f"nobody{i}", "wrong", ip="10.2.0.1")
    assert _login(Client(), trader.user.username, PASSWORD, ip="10.2.0.1").status_code == 429
    assert _login(Client(), trader.user.username, PASSWORD, ip="10.2.0.2").status_code == 302
    assert AccessAttempt.objects.filter(ip_address="10.2.0.1", username__startswith="nobody").count() == 6


def test_password_change_keeps_session_and_signals(trader_client, trader, received):
    response = trader_client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("password_change_done")
    trader.user.refresh_from_db()
    assert trader.user.check_password(NEW_PASSWORD)
    assert trader_client.get(reverse("dashboard")).status_code == 200
    assert received == [("password", {"signal": trader_password_changed, "trader": trader})]
    assert AuditEvent.objects.filter(trader=trader, action="password_change").exists()


def test_password_change_wrong_old_password(trader_client, trader, received):
    response = trader_client.post(
        reverse("password_change"),
        {"old_password": "nope", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert "old_password" in response.context["form"].errors
    trader.user.refresh_from_db()
    assert trader.user.check_password(PASSWORD)
    assert received == []


def test_password_reset_by_email(client, trader, received):
    response = client.post(reverse("password_reset"), {"email": trader.user.email})
    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [trader.user.email]
    link = re.search(r"http://testserver(/account/password/reset/\S+/)", mail.outbox[0].body).group(1)

    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    assert form_page.context["validlink"]
    response = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_complete")
    trader.user.refresh_from_db()
    assert trader.user.check_password(NEW_PASSWORD)
    assert [name for name, _ in received] == ["password"]
    assert AuditEvent.objects.filter(trader=trader, action="password_reset").exists()
    # The link works once.
    assert not client.get(link, follow=True).context["validlink"]


def test_password_reset_unknown_email_sends_nothing(client, db):
    response = client.post(reverse("password_reset"), {"email": "ghost@example.test"})
    assert response.status_code == 302
    assert mail.outbox == []


def test_staff_password_change_sends_no_trader_signal(received, db):
    staff = StaffUserFactory()
    client = Client()
    client.force_login(staff)
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert received == []


@pytest.mark.parametrize("name", ["login", "signup", "password_reset"])
def test_anonymous_pages_render_accessibly(client, db, name):
    html = client.get(reverse(name)).content.decode()
    assert "<h1" in html
    assert '<main id="main"' in html
    for field_id in re.findall(r'<input[^>]+id="(id_[a-z0-9_]+)"', html):
        assert f'<label for="{field_id}"' in html, field_id
