"""Two-step sign-in: enrolment with a real TOTP, sign-in, recovery codes, throttling, staff, TradingView."""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent
from tests.factories import PASSWORD
from tests.twofactor.totp import totp as _totp


def totp(secret: str, *, at: float | None = None) -> str:
    return _totp(secret, at=at)


def next_totp(secret: str) -> str:
    """The code of the next time step: a code is accepted once, and enrolment used the current one."""
    return _totp(secret, at=time.time() + 30)


pytestmark = pytest.mark.django_db


def _enrol(client: Client) -> tuple[str, list[str]]:
    page = client.get(reverse("two_factor")).content.decode()
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)
    qr = client.get(reverse("two_factor_qr"))
    assert qr.status_code == 200
    assert qr["Content-Type"] == "image/svg+xml"
    assert b"<svg" in qr.content
    done = client.post(reverse("two_factor"), {"action": "enable", "code": totp(secret)})
    html = done.content.decode()
    assert "Two-step sign-in is on" in html
    codes = re.findall(r"<li><code>([a-z0-9]+)</code></li>", html)
    assert len(codes) == 10
    return secret, codes


def _password_step(client: Client, username: str, next_url: str = "") -> str:
    data = {"username": username, "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    response = client.post(reverse("login"), data)
    assert response.status_code == 302
    return response["Location"]


def test_enrolment_refuses_a_wrong_code_and_accepts_the_app_code(trader, trader_client: Client) -> None:
    page = trader_client.get(reverse("two_factor")).content.decode()
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)
    wrong = trader_client.post(reverse("two_factor"), {"action": "enable", "code": "000000"})
    assert "This code is not right" in wrong.content.decode()
    assert not AuditEvent.objects.filter(action="two_factor_enable").exists()
    ok = trader_client.post(reverse("two_factor"), {"action": "enable", "code": totp(secret)})
    assert "Two-step sign-in is on" in ok.content.decode()
    assert "no-store" in ok["Cache-Control"]
    assert AuditEvent.objects.filter(action="two_factor_enable", trader=trader).exists()
    # The dashboard stops encouraging it once it is on.
    assert "Turn on two-step sign-in" not in trader_client.get("/").content.decode()


def test_the_dashboard_encourages_two_step_sign_in(trader_client: Client) -> None:
    html = trader_client.get("/").content.decode()
    assert "Protect your account with two-step sign-in." in html
    assert f'href="{reverse("two_factor")}"' in html


def test_sign_in_asks_for_the_code_and_signs_in_only_with_it(trader, trader_client: Client) -> None:
    secret, _codes = _enrol(trader_client)
    client = Client()
    verify_url = _password_step(client, trader.user.username)
    assert verify_url.startswith(reverse("two_factor_verify"))
    # The password alone does not sign in.
    assert client.get("/").status_code == 302
    wrong = client.post(verify_url, {"code": "123456"})
    assert "This code is not right" in wrong.content.decode()
    assert client.get("/").status_code == 302
    time.sleep(1.1)  # django-otp makes the next try wait after a wrong code
    done = client.post(verify_url, {"code": next_totp(secret)})
    assert done.status_code == 302
    assert done["Location"] == reverse("dashboard")
    assert client.get("/").status_code == 200


def test_a_recovery_code_works_once(trader, trader_client: Client) -> None:
    _secret, codes = _enrol(trader_client)
    client = Client()
    verify_url = _password_step(client, trader.user.username)
    assert client.post(verify_url, {"code": codes[0]}).status_code == 302
    assert client.get("/").status_code == 200
    again = Client()
    verify_url = _password_step(again, trader.user.username)
    assert "This code is not right" in again.post(verify_url, {"code": codes[0]}).content.decode()


def test_wrong_codes_lock_the_account_like_wrong_passwords(trader, trader_client: Client, settings) -> None:
    secret, _codes = _enrol(trader_client)
    client = Client()
    verify_url = _password_step(client, trader.user.username)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post(verify_url, {"code": "000000"}).status_code == 200
    locked = client.post(verify_url, {"code": "000000"})
    assert locked.status_code == 429
    assert "Too many sign-in attempts" in locked.content.decode()
    assert "Please try again in 15 minutes." in locked.content.decode()  # not an ISO 8601 duration
    # Even the right code is refused while locked.
    assert client.post(verify_url, {"code": next_totp(secret)}).status_code == 429
    assert client.get("/").status_code == 302


def test_the_second_step_expires(trader, trader_client: Client, monkeypatch) -> None:
    secret, _codes = _enrol(trader_client)
    client = Client()
    verify_url = _password_step(client, trader.user.username)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 301)
    response = client.post(verify_url, {"code": _totp(secret, at=real() + 30)})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_turning_it_off_needs_a_current_code(trader, trader_client: Client) -> None:
    secret, _codes = _enrol(trader_client)
    refused = trader_client.post(reverse("two_factor"), {"action": "disable", "off-code": "000000"})
    assert "This code is not right" in refused.content.decode()
    time.sleep(1.1)  # django-otp makes the next try wait after a wrong code
    trader_client.post(reverse("two_factor"), {"action": "disable", "off-code": next_totp(secret)})
    assert "Turn on two-step sign-in" in trader_client.get(reverse("two_factor")).content.decode()
    assert _password_step(Client(), trader.user.username) == reverse("dashboard")


def test_staff_must_enrol_before_the_admin_when_required(staff_user, staff_client: Client, settings) -> None:
    settings.TWO_FACTOR_REQUIRED_FOR_STAFF = True
    response = staff_client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == reverse("two_factor")
    _enrol(staff_client)  # enrolling verifies this session
    assert staff_client.get("/admin/").status_code == 200
    # The admin's own sign-in page leads to ours, which asks for the code.
    login = Client().get("/admin/login/?next=/admin/")
    assert login.status_code == 302
    assert login["Location"].startswith(reverse("login"))


def test_a_tradingview_authorization_asks_a_trader_with_two_step_sign_in_for_the_code(
    trader, trader_client: Client
) -> None:
    from tradingview.services.clients import oauth_client_ensure

    secret, _codes = _enrol(trader_client)
    oauth_client_ensure(
        client_id="tv-2fa",
        client_secret="tv-2fa-secret-value",
        name="TradingView",
        redirect_uri="https://tv.example/cb",
    )
    authorize = "/tradingview/oauth/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": "tv-2fa",
            "redirect_uri": "https://tv.example/cb",
            "state": "s1",
        }
    )
    client = Client()
    to_login = client.get(authorize)
    assert to_login.status_code == 302
    assert to_login["Location"].startswith(reverse("login"))
    verify_url = _password_step(client, trader.user.username, next_url=authorize)
    assert verify_url.startswith(reverse("two_factor_verify"))
    assert client.get(authorize).status_code == 302  # still not signed in
    done = client.post(verify_url, {"code": next_totp(secret), "next": authorize})
    assert done.status_code == 302
    assert done["Location"] == authorize
    assert client.get(authorize).status_code == 200


def test_staff_reset_two_step_sign_in_from_the_command_line(trader, trader_client: Client) -> None:
    import io

    from django.core.management import call_command

    _enrol(trader_client)
    out = io.StringIO()
    call_command("two_factor_reset", trader.user.username, "--reason", "ticket 4711", stdout=out)
    assert "turned off" in out.getvalue()
    assert AuditEvent.objects.filter(action="two_factor_reset", message="ticket 4711", trader=trader).exists()
    assert _password_step(Client(), trader.user.username) == reverse("dashboard")


def test_the_admin_never_shows_authenticator_keys_or_recovery_codes(staff_client: Client) -> None:
    from django.contrib import admin
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    assert not admin.site.is_registered(TOTPDevice)
    assert not admin.site.is_registered(StaticDevice)
    index = staff_client.get("/admin/").content.decode()
    assert "TOTP devices" not in index
    assert "Static devices" not in index
