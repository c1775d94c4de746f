"""The token endpoint's refresh under retries, races and adapter outages (the adapter simulator on loopback)."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEvent, Ctid
from tests.helpers.tradingview import exchange, link, token_post
from tradingview.models import Grant


def _linked(tv_client, browser_client, accounts) -> dict:
    code = link(browser_client, tv_client, [a.pk for a in accounts])
    response = exchange(tv_client, code)
    assert response.status_code == 200, response.content
    return response.json()


def _refresh(tv_client, refresh_token, *, with_client_id=False):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_secret": tv_client.secret}
    if with_client_id:
        data["client_id"] = tv_client.client.client_id
    return token_post(data)


def _pair(response) -> tuple[str, str]:
    assert response.status_code == 200, response.content
    body = response.json()
    return body["access_token"], body["refresh_token"]


# --- retries: in flight, within the reuse window, after it -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_refresh_in_flight_waits_for_the_first_and_gets_the_same_answer(
    adapter, tv_client, browser_client, accounts
):
    first = _linked(tv_client, browser_client, accounts)
    adapter.sim.latency = 0.6  # the first refresh is still waiting for the adapter when the retry arrives
    answers: dict[str, object] = {}

    def call(name: str) -> None:
        try:
            answers[name] = _refresh(tv_client, first["refresh_token"])
        finally:
            connection.close()

    one = threading.Thread(target=call, args=("first",))
    one.start()
    deadline = time.monotonic() + 5
    while len(adapter.sim.calls_to("/generate/token")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(adapter.sim.calls_to("/generate/token")) == 2, "the first refresh never reached the adapter"
    two = threading.Thread(target=call, args=("retry",))
    two.start()
    one.join(10)
    two.join(10)

    assert _pair(answers["first"]) == _pair(answers["retry"])
    assert (
        len(adapter.sim.calls_to("/generate/token")) == 2
    )  # one link, one refresh: the retry minted nothing
    assert adapter.sim.calls_to("/logout") == []
    assert Grant.objects.filter(state=Grant.State.ACTIVE).count() == 1
    # The answer both received keeps working.
    adapter.sim.latency = 0
    assert _refresh(tv_client, _pair(answers["retry"])[1]).status_code == 200


def test_a_repeat_within_the_reuse_window_gets_the_same_new_pair(
    settings, adapter, tv_client, browser_client, accounts
):
    settings.TRADINGVIEW_REFRESH_REUSE_SECONDS = 60
    first = _linked(tv_client, browser_client, accounts)
    answer = _pair(_refresh(tv_client, first["refresh_token"]))
    # The response was lost on its way to TradingView, which sends the same request again.
    again = _pair(_refresh(tv_client, first["refresh_token"], with_client_id=True))
    assert again == answer
    assert len(adapter.sim.calls_to("/generate/token")) == 2
    assert adapter.sim.calls_to("/logout") == []
    assert set(adapter.sim.active_tokens()) == {first["access_token"], answer[0]}
    assert AuditEvent.objects.filter(category="tradingview", action="refresh_repeated").exists()
    # The pair handed out twice is the live one: its refresh token rotates as usual.
    third = _pair(_refresh(tv_client, answer[1]))
    assert third[0] not in answer


def test_a_repeat_within_the_window_by_another_client_is_refused(
    settings, adapter, tv_client, browser_client, accounts
):
    from tradingview.services.clients import oauth_client_create

    other, other_secret = oauth_client_create(name="Other", redirect_uris=["https://other.example/cb"])
    first = _linked(tv_client, browser_client, accounts)
    _pair(_refresh(tv_client, first["refresh_token"]))
    response = token_post(
        {
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": other.client_id,
            "client_secret": other_secret,
        }
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_a_repeat_after_the_reuse_window_revokes_the_whole_grant(
    settings, adapter, tv_client, browser_client, accounts, django_capture_on_commit_callbacks
):
    settings.TRADINGVIEW_REFRESH_REUSE_SECONDS = 60
    settings.TRADINGVIEW_REFRESH_GRACE_SECONDS = 600
    first = _linked(tv_client, browser_client, accounts)
    second = _pair(_refresh(tv_client, first["refresh_token"]))
    third = _pair(_refresh(tv_client, second[1]))
    assert len(adapter.sim.active_tokens()) == 3  # two superseded tokens in their grace period, one current
    # The reuse window of the first refresh token closes.
    settings.TRADINGVIEW_REFRESH_REUSE_SECONDS = 0

    with django_capture_on_commit_callbacks(execute=True):
        response = _refresh(tv_client, first["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    # Every live adapter token of the grant was logged out: the two in their grace period and the current one.
    logouts = adapter.sim.calls_to("/logout")
    assert sorted(c.headers["authorization"] for c in logouts) == sorted(
        f"Bearer {t}" for t in (first["access_token"], second[0], third[0])
    )
    assert adapter.sim.active_tokens() == []
    assert not Grant.objects.exclude(state=Grant.State.REVOKED).exists()
    event = AuditEvent.objects.get(category="tradingview", action="refresh_token_reused")
    assert event.outcome == "grant_revoked"
    # The current refresh token is dead too.
    assert _refresh(tv_client, third[1]).json()["error"] == "invalid_grant"


def test_the_refresh_token_of_a_revoked_grant_is_invalid_grant_not_invalid_client(
    adapter, tv_client, browser_client, accounts
):
    first = _linked(tv_client, browser_client, accounts)
    grant = Grant.objects.get()
    assert browser_client.post(f"/tradingview/grants/{grant.pk}/disconnect/").status_code == 302
    # TradingView sends only the secret with a refresh.
    response = _refresh(tv_client, first["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert not AuditEvent.objects.filter(outcome="invalid_client").exists()
    # A wrong secret is still invalid_client.
    wrong = token_post(
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_secret": "nope"}
    )
    assert wrong.status_code == 401


# --- adapter outages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["500", "timeout", "drop", "error", "refused"])
def test_an_adapter_outage_hands_back_the_current_token_and_rotates_the_refresh_token(
    mode, settings, adapter, tv_client, browser_client, accounts, closed_port_url, staff_client
):
    settings.TRADINGVIEW_TOKEN_EXPIRES_IN = 1800
    first = _linked(tv_client, browser_client, accounts)
    grant = Grant.objects.get()
    # The current adapter token has 900 s left: that bounds the expires_in TradingView gets.
    Grant.objects.filter(pk=grant.pk).update(adapter_token_expires_at=timezone.now() + timedelta(seconds=900))
    if mode == "refused":
        settings.TRADINGVIEW_ADAPTER_URL = closed_port_url
    else:
        adapter.sim.mode = mode

    response = _refresh(tv_client, first["refresh_token"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["access_token"] == first["access_token"]
    assert body["refresh_token"] != first["refresh_token"]
    assert 880 <= body["expires_in"] <= 900
    # The token TradingView keeps using is not logged out, now or later.
    assert adapter.sim.calls_to("/logout") == []
    assert not Grant.objects.filter(state=Grant.State.REVOKING).exists()
    assert not adapter.sim.is_revoked(first["access_token"])
    event = AuditEvent.objects.filter(category="tradingview", action="refreshed").latest("created_at")
    assert event.outcome == "degraded"
    # Staff see it in the admin.
    listed = staff_client.get("/admin/tradingview/grant/?degraded__exact=1")
    assert listed.status_code == 200
    assert b"degraded" in listed.content.lower()
    [current] = Grant.objects.filter(state=Grant.State.ACTIVE)
    assert current.degraded

    # Once the adapter is back, the next refresh mints a new token and the carried one is retired after the
    # grace period like any superseded token.
    settings.TRADINGVIEW_ADAPTER_URL = adapter.url
    adapter.sim.mode = ""
    recovered = _pair(_refresh(tv_client, body["refresh_token"]))
    assert recovered[0] != first["access_token"]
    assert not Grant.objects.get(state=Grant.State.ACTIVE).degraded


def test_an_outage_still_refuses_a_grant_that_is_no_longer_eligible(
    adapter, tv_client, browser_client, accounts
):
    first = _linked(tv_client, browser_client, accounts)
    adapter.sim.mode = "500"
    Ctid.objects.update(state=Ctid.State.NEEDS_RECONNECT)
    response = _refresh(tv_client, first["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_a_refusal_about_the_user_is_not_an_outage(adapter, tv_client, browser_client, accounts):
    first = _linked(tv_client, browser_client, accounts)
    adapter.sim.mode = "400"
    response = _refresh(tv_client, first["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_no_token_to_hand_back_is_a_503_with_retry_after_and_loses_nothing(
    adapter, tv_client, browser_client, accounts
):
    first = _linked(tv_client, browser_client, accounts)
    # The adapter is down and the current adapter token has run out.
    Grant.objects.update(adapter_token_expires_at=timezone.now() - timedelta(seconds=1))
    adapter.sim.mode = "500"
    response = _refresh(tv_client, first["refresh_token"])
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.json()["error_description"]
    # Nothing was spent: the same refresh token works once the adapter is back.
    adapter.sim.mode = ""
    assert _refresh(tv_client, first["refresh_token"]).status_code == 200


# --- the statements of one refresh -------------------------------------------------------------------------
def _placeholders_out(statement: str) -> str:
    """A statement with its parameter placeholders (``%s`` as written, ``$1`` as PostgreSQL keeps it) alike."""
    return re.sub(r"\$\d+", "?", statement.replace("%s", "?"))


def test_every_statement_of_a_refresh_runs_prepared(adapter, tv_client, browser_client, accounts):
    if connection.vendor != "postgresql":
        pytest.skip("statements are prepared on PostgreSQL only")
    first = _linked(tv_client, browser_client, accounts)
    second = _pair(_refresh(tv_client, first["refresh_token"]))
    with CaptureQueriesContext(connection) as ctx:
        response = _refresh(tv_client, second[1])
    assert response.status_code == 200
    statements = [
        q["sql"]
        for q in ctx.captured_queries
        if not q["sql"].startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        kept = {_placeholders_out(row[0]) for row in cursor.fetchall()}
    # The read of the grant, the lease, the new grant with its accounts, the supersession and the audit record:
    # each parsed and planned once per connection, not on every refresh.
    assert len(statements) >= 5, statements
    assert [s for s in statements if _placeholders_out(s) not in kept] == []


def test_a_refresh_takes_at_most_seven_statements_and_rewrites_no_unchanged_secret(
    adapter, tv_client, browser_client, accounts
):
    if connection.vendor != "postgresql":
        pytest.skip("the statement count is PostgreSQL's (one INSERT for the grant and its accounts)")
    first = _linked(tv_client, browser_client, accounts)
    with CaptureQueriesContext(connection) as ctx:
        response = _refresh(tv_client, first["refresh_token"])
    assert response.status_code == 200
    statements = [q["sql"] for q in ctx.captured_queries]
    assert len(statements) <= 7, "\n".join(statements)
    # The superseded grant is updated in the columns that change; its adapter token is not encrypted again.
    updates = [s for s in statements if s.startswith("UPDATE")]
    assert updates
    assert not any('"adapter_token" =' in s for s in updates), updates
