"""Malformed input answers 400, the client address comes from the trusted proxies only, idle sessions end,
/readyz is bounded, protected and cached, and the gateway status and /readyz judge the gateway alike."""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import AnonymousUser
from django.test import Client, RequestFactory
from django.utils import timezone

from accounts.models import GatewayStatus
from tests.factories import PASSWORD, StaffUserFactory, TraderFactory

NUL = "\x00"


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        (
            "get",
            "/tradingview/oauth/authorize",
            {"response_type": "code", "client_id": f"x{NUL}y", "state": "s"},
        ),
        ("post", "/tradingview/oauth/token", {"grant_type": "authorization_code", "code": f"c{NUL}"}),
        ("post", "/account/login/", {"username": f"admin{NUL}", "password": "x"}),
        ("get", "/account/login/", {"next": f"/{NUL}"}),
        ("post", "/account/signup/", {"username": "n", "email": f"a{NUL}@example.com"}),
        ("get", "/admin/accounts/trader/", {"q": f"bob{NUL}"}),
        ("get", "/api/v1/accounts/", {"page": f"1{NUL}"}),
    ],
)
def test_a_nul_byte_in_any_parameter_is_a_400_never_a_500(db, method, path, data):
    client = Client(raise_request_exception=False)
    client.force_login(StaffUserFactory())
    response = getattr(client, method)(path, data)
    assert response.status_code == 400, (path, response.status_code)
    assert b"not allowed" in response.content


def test_nul_bytes_in_an_admin_search_used_to_reach_the_database(db):
    client = Client(raise_request_exception=False)
    client.force_login(StaffUserFactory())
    assert client.get("/admin/auth/user/", {"q": f"x{NUL}"}).status_code == 400
    assert client.get("/admin/auth/user/", {"q": "x"}).status_code == 200


def client_ip(request):
    from clientarea.client_ip import client_ip

    return client_ip(request)


def _request(remote: str, forwarded: str | None = None):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


def test_the_forwarded_header_is_ignored_without_trusted_proxies(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(_request("203.0.113.5", "198.51.100.1")) == "203.0.113.5"


def test_the_forwarded_header_is_read_with_the_configured_number_of_proxies(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    # One proxy appends the address it saw; whatever the client sent further left is ignored.
    assert client_ip(_request("10.0.0.2", "1.2.3.4, 198.51.100.7")) == "198.51.100.7"
    assert client_ip(_request("10.0.0.2", "198.51.100.7")) == "198.51.100.7"
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(_request("10.0.0.3", "1.2.3.4, 198.51.100.7, 10.0.0.2")) == "198.51.100.7"
    # Fewer hops than proxies: the header did not come through them all, the socket peer counts.
    assert client_ip(_request("10.0.0.3", "198.51.100.7")) == "10.0.0.3"


def _sign_in(client: Client, username: str, password: str, *, remote: str, forwarded: str):
    return client.post(
        "/account/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=remote,
        HTTP_X_FORWARDED_FOR=forwarded,
    )


def test_five_failures_with_random_usernames_leave_another_user_able_to_sign_in(db, settings):
    """Everyone behind one proxy shares its address: an attacker's failures lock only what it tried."""
    settings.TRUSTED_PROXY_COUNT = 0
    victim = TraderFactory()
    staff = StaffUserFactory()
    for i in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(Client(), f"random-{i}", "guess", remote="10.9.9.9", forwarded="")
    for user in (victim.user, staff):
        response = _sign_in(Client(), user.username, PASSWORD, remote="10.9.9.9", forwarded="")
        assert response.status_code == 302, response.content[:300]


def test_the_proxy_header_decides_whose_failures_count_with_a_trusted_proxy(db, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    victim = TraderFactory()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(Client(), victim.user.username, "guess", remote="10.0.0.2", forwarded="203.0.113.66")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.66"}
    locked = _sign_in(Client(), victim.user.username, PASSWORD, remote="10.0.0.2", forwarded="203.0.113.66")
    assert locked.status_code == 429
    # The wait in words, not an ISO 8601 duration.
    page = locked.content.decode().replace("\xa0", " ")
    assert "try again in 15 minutes" in page
    assert "PT15M" not in page
    # The same account from the victim's own address still signs in: the attacker cannot lock it out.
    spoofed = _sign_in(
        Client(), victim.user.username, PASSWORD, remote="10.0.0.2", forwarded="203.0.113.66, 198.51.100.20"
    )
    assert spoofed.status_code == 302


def _age_session(client: Client, seconds: float) -> None:
    from clientarea.sessions import LAST_SEEN_KEY

    session = client.session
    session[LAST_SEEN_KEY] = int(time.time() - seconds)
    session.save()


def test_idle_sessions_end_staff_after_30_minutes_traders_after_12_hours(db):
    trader = Client()
    trader.force_login(TraderFactory().user)
    assert trader.get("/").status_code == 200
    _age_session(trader, 31 * 60)
    assert trader.get("/").status_code == 200  # a trader idle for 31 minutes is still signed in
    _age_session(trader, 12 * 3600 + 60)
    response = trader.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/account/login/")

    staff = Client()
    staff.force_login(StaffUserFactory())
    assert staff.get("/admin/").status_code == 200
    _age_session(staff, 31 * 60)
    response = staff.get("/admin/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_idle_timeouts_are_configurable(db, settings):
    settings.SESSION_IDLE_TIMEOUT_SECONDS = 60
    trader = Client()
    trader.force_login(TraderFactory().user)
    assert trader.get("/").status_code == 200
    _age_session(trader, 120)
    assert trader.get("/").status_code == 302


def test_readyz_is_served_to_the_internal_network_or_with_the_token(db, settings):
    settings.REDIS_URL = ""
    settings.HEALTH_TOKEN = "probe-token-0123456789"
    outside = Client(REMOTE_ADDR="203.0.113.10")
    assert outside.get("/readyz").status_code == 403
    assert outside.get("/readyz", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert outside.get("/readyz", HTTP_AUTHORIZATION="Bearer probe-token-0123456789").status_code == 200
    assert Client(REMOTE_ADDR="10.1.2.3").get("/readyz").status_code == 200
    # Liveness stays open to everyone and touches nothing.
    assert outside.get("/healthz").status_code == 200


def test_readyz_reuses_its_answer_for_a_few_seconds(db, settings):
    settings.REDIS_URL = ""
    settings.HEALTH_GATEWAY_EXPECTED = False
    settings.HEALTH_CACHE_SECONDS = 30
    first = Client().get("/readyz")
    assert first.status_code == 200
    GatewayStatus.objects.create(environment="live", state=GatewayStatus.State.APP_AUTH_REFUSED)
    assert Client().get("/readyz").content == first.content
    settings.HEALTH_CACHE_SECONDS = 0
    assert Client().get("/readyz").status_code in (200, 503)


def test_the_gateway_status_report_and_readyz_judge_the_gateway_alike(db, settings, staff_client):
    """A heartbeat 45 s old: healthy for one and stale for the other, before one selector decided both."""
    from clientarea.health import check_gateway

    settings.HEALTH_GATEWAY_ENVIRONMENTS = ["live"]
    for age, stale_limit in ((45, 60), (45, 30), (5, 30)):
        settings.HEALTH_GATEWAY_STALE_SECONDS = stale_limit
        GatewayStatus.objects.update_or_create(
            environment="live",
            defaults={"state": "connected", "heartbeat_at": timezone.now() - timedelta(seconds=age)},
        )
        report = staff_client.get("/api/v1/gateway/status/")
        ready = check_gateway(expected=True)
        assert (report.status_code == 200) == ready.ok, (age, stale_limit, report.json(), ready)
        assert report.json()["environments"]["live"]["healthy"] == ready.ok


@pytest.mark.parametrize(
    ("path", "data", "names"),
    [
        (
            "/tradingview/oauth/token",
            {"grant_type": "refresh_token", "refresh_token": "r", "client_id": "c", "client_secret": "s"},
            {"client_secret", "refresh_token", "code"},
        ),
        (
            "/account/signup/",
            {"username": "n", "password1": "p", "password2": "p"},
            {"password1", "password2"},
        ),
        ("/account/login/", {"username": "n", "password": "p"}, {"__ALL__"}),
    ],
)
def test_views_receiving_secrets_hide_them_from_error_reports(db, path, data, names):
    from django.urls import resolve

    request = RequestFactory().post(path, data)
    request.user = AnonymousUser()
    request.session = {}
    request._dont_enforce_csrf_checks = True
    with contextlib.suppress(Exception):  # only the marking matters here, not the answer
        resolve(path).func(request)
    marked = getattr(request, "sensitive_post_parameters", None)
    assert marked is not None, path
    assert names <= set(marked) or marked == "__ALL__", (path, marked)
