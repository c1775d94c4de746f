"""Every peer call has an overall deadline: a loopback peer trickling bytes faster than any read timeout.

The bounds asserted here are deadlines of the code under test (seconds, with a wide margin), not speed
targets: without the deadline each of these calls lasts until the peer stops trickling (20 s).
"""

from __future__ import annotations

import time

import pytest

from accounts.models import CtidToken
from accounts.services.tokens import TokenRefreshTransient, ctid_token_refresh
from clientarea import http
from tests.factories import CtidTokenFactory
from tests.trickle import trickling_server
from tradingview import adapter

INTERVAL = 0.25  # one byte every quarter second: every read completes well within its timeout
MARGIN = 3.0


@pytest.mark.parametrize("body_first", [False, True], ids=["status-line", "body"])
def test_a_session_request_ends_at_its_deadline_whatever_the_peer_pace(settings, body_first):
    with trickling_server(interval=INTERVAL, body_first=body_first) as url:
        session = http.session(deadline=1.0)
        started = time.monotonic()
        with pytest.raises(http.DeadlineExceeded) as info:
            session.get(f"{url}/slow", timeout=(2.0, 2.0))
        elapsed = time.monotonic() - started
    assert elapsed < 1.0 + MARGIN
    assert info.value.request_sent is True
    assert url not in str(info.value)


def test_a_shorter_deadline_per_call_wins_and_the_session_is_reusable(settings):
    with trickling_server(interval=INTERVAL) as url:
        session = http.session(deadline=30.0)
        started = time.monotonic()
        with pytest.raises(http.DeadlineExceeded):
            session.get(f"{url}/slow", timeout=(2.0, 2.0), deadline=0.8)
        assert time.monotonic() - started < 0.8 + MARGIN
    with trickling_server(interval=0.0) as url:
        # A peer that answers at once still gets through on the same session.
        response = session.get(f"{url}/fast", timeout=(2.0, 2.0), deadline=5.0)
        assert response.status_code == 200
        assert len(response.content) == 1000


def test_the_factory_gives_every_session_the_configured_deadline(settings):
    settings.HTTP_DEADLINE_SECONDS = 12.5
    assert http.session().deadline == 12.5


@pytest.mark.django_db
def test_a_token_refresh_ends_at_its_deadline_and_keeps_the_stored_pair(settings):
    settings.TOKEN_HTTP_READ_TIMEOUT = 2.0
    settings.TOKEN_HTTP_DEADLINE_SECONDS = 1.5
    token = CtidTokenFactory()
    with trickling_server(interval=INTERVAL) as url:
        settings.CTRADER_TOKEN_URL = f"{url}/apps/token"
        started = time.monotonic()
        with pytest.raises(TokenRefreshTransient) as info:
            ctid_token_refresh(ctid_id=token.ctid_id, reason="test")
        elapsed = time.monotonic() - started
    assert elapsed < 1.5 + MARGIN
    # The request was written: the refresh token may be spent, so the failure is ambiguous.
    assert info.value.ambiguous is True
    assert "deadline" in str(info.value)
    stored = CtidToken.objects.get(pk=token.pk)
    assert (stored.access_token, stored.refresh_token, stored.version) == (
        token.access_token,
        token.refresh_token,
        token.version,
    )
    assert stored.state == CtidToken.State.ACTIVE
    assert stored.lease_owner == ""


def test_a_webservices_call_ends_at_its_deadline(settings):
    from accounts.ctrader.webservices import WebServicesAmbiguous, WebServicesClient

    with trickling_server(interval=INTERVAL) as url:
        client = WebServicesClient(
            base_url=url,
            manager_login=1,
            manager_password="manager-pass",
            session=http.session(deadline=1.0),
            timeout=(2.0, 2.0),
        )
        started = time.monotonic()
        # The manager sign-in is a POST that reached the peer: it may have been acted on.
        with pytest.raises(WebServicesAmbiguous) as info:
            client.manager_token()
        elapsed = time.monotonic() - started
    assert elapsed < 1.0 + MARGIN
    assert url not in str(info.value)


def test_the_token_deadline_stays_well_below_the_refresh_lease(settings):
    from django.conf import settings as live

    assert live.TOKEN_HTTP_DEADLINE_SECONDS * 2 <= live.TOKEN_REFRESH_LEASE_SECONDS


def test_an_adapter_call_ends_at_its_deadline(settings):
    settings.HTTP_READ_TIMEOUT = 2.0
    settings.TRADINGVIEW_ADAPTER_DEADLINE_SECONDS = 1.5
    settings.TRADINGVIEW_ADAPTER_TOKEN = "bearer-for-the-test"
    with trickling_server(interval=INTERVAL) as url:
        settings.TRADINGVIEW_ADAPTER_URL = url
        started = time.monotonic()
        with pytest.raises(adapter.AdapterTransientError) as info:
            adapter.generate_token(
                user_id=1, broker_names=["B"], ctid_trader_account_ids=[1], is_verified=True
            )
        elapsed = time.monotonic() - started
    assert elapsed < 1.5 + MARGIN
    assert info.value.outcome == "timeout"


def test_the_adapter_deadline_stays_below_the_pending_consent_cleanup():
    from django.conf import settings as live

    from tradingview.services.consent import PENDING_STALE_SECONDS

    assert live.TRADINGVIEW_ADAPTER_DEADLINE_SECONDS * 2 <= PENDING_STALE_SECONDS
