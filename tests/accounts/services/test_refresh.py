"""The single-flight refresh against the cTrader ID simulator (single-use rotating refresh tokens)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import AuditEvent, Ctid, CtidToken
from accounts.services import tokens
from accounts.services.tokens import RefreshOutcome, TokenRefreshTransient, ctid_token_refresh
from accounts.signals import ctid_needs_reconnect
from sandbox.httpd import Request, Response
from tests.helpers.ctrader import connect_in_world, make_trader, stored

pytestmark = pytest.mark.django_db


@pytest.fixture
def reconnect_signals():
    received: list[dict] = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    ctid_needs_reconnect.connect(receiver)
    yield received
    ctid_needs_reconnect.disconnect(receiver)


def test_refresh_rotates_and_stores_the_new_pair(world, ctrader_id):
    ctid, issued = connect_in_world(world, trader=make_trader())
    result = ctid_token_refresh(ctid_id=ctid.pk, reason="test")
    token = stored(ctid)
    assert result.outcome == RefreshOutcome.REFRESHED
    assert result.version == token.version == 2
    assert world.grant_for_access_token(token.access_token) is not None
    assert token.refresh_token in world.refresh_tokens
    assert issued["refreshToken"] in world.used_refresh_tokens
    assert token.last_refresh_outcome == CtidToken.Outcome.OK
    assert token.last_refresh_at is not None
    assert token.lease_owner == ""
    assert token.lease_until is None
    assert ctrader_id.calls == ["refresh_token"]


def test_error_code_with_http_200_marks_needs_reconnect_and_keeps_values(
    world, ctrader_id, reconnect_signals
):
    ctid, issued = connect_in_world(world, trader=make_trader())
    world.next_refresh_failure = "error"
    result = ctid_token_refresh(ctid_id=ctid.pk, reason="test")
    token = stored(ctid)
    assert result.outcome == RefreshOutcome.REJECTED
    assert token.state == CtidToken.State.NEEDS_RECONNECT
    assert (token.access_token, token.refresh_token, token.version) == (
        issued["accessToken"],
        issued["refreshToken"],
        1,
    )
    assert token.last_refresh_outcome == CtidToken.Outcome.REJECTED
    assert "INVALID_GRANT" in token.last_refresh_error
    assert Ctid.objects.get(pk=ctid.pk).state == Ctid.State.NEEDS_RECONNECT
    assert (
        AuditEvent.objects.filter(category="ctid", action="token_refresh", outcome="needs_reconnect").count()
        == 1
    )
    assert [s["ctid"].pk for s in reconnect_signals] == [ctid.pk]
    # A needs_reconnect token is not refreshed again.
    assert ctid_token_refresh(ctid_id=ctid.pk, reason="test").outcome == RefreshOutcome.NOT_ACTIVE
    assert ctrader_id.calls == ["refresh_token"]


def test_rotate_then_drop_keeps_old_values_and_needs_reconnect_only_after_the_recheck(
    world, ctrader_id, reconnect_signals
):
    ctid, issued = connect_in_world(world, trader=make_trader())
    world.next_refresh_failure = "drop"
    with pytest.raises(TokenRefreshTransient) as info:
        ctid_token_refresh(ctid_id=ctid.pk, reason="test")
    assert info.value.ambiguous is True
    token = stored(ctid)
    # Spotware rotated, the answer was lost: nothing stored changed and the link is still considered healthy.
    assert issued["refreshToken"] in world.used_refresh_tokens
    assert (token.access_token, token.refresh_token, token.version) == (
        issued["accessToken"],
        issued["refreshToken"],
        1,
    )
    assert token.state == CtidToken.State.ACTIVE
    assert token.last_refresh_outcome == CtidToken.Outcome.TRANSIENT
    assert token.lease_owner == ""
    assert Ctid.objects.get(pk=ctid.pk).state == Ctid.State.CONNECTED
    assert reconnect_signals == []

    # The retry uses the same (now dead) refresh token: refused, re-checked against the unmoved version.
    result = ctid_token_refresh(ctid_id=ctid.pk, reason="retry")
    token = stored(ctid)
    assert result.outcome == RefreshOutcome.REJECTED
    assert token.state == CtidToken.State.NEEDS_RECONNECT
    assert (token.access_token, token.refresh_token) == (issued["accessToken"], issued["refreshToken"])
    assert Ctid.objects.get(pk=ctid.pk).state == Ctid.State.NEEDS_RECONNECT
    assert len(reconnect_signals) == 1
    assert ctrader_id.calls == ["refresh_token", "refresh_token"]


def test_timeout_is_transient_and_the_retry_succeeds(world, ctrader_id, settings):
    settings.TOKEN_HTTP_READ_TIMEOUT = 0.5
    ctrader_id.hang_seconds = 1.5
    ctid, issued = connect_in_world(world, trader=make_trader())
    world.next_refresh_failure = "timeout"
    with pytest.raises(TokenRefreshTransient):
        ctid_token_refresh(ctid_id=ctid.pk, reason="test")
    token = stored(ctid)
    assert token.state == CtidToken.State.ACTIVE
    assert token.refresh_token == issued["refreshToken"]
    assert token.last_refresh_outcome == CtidToken.Outcome.TRANSIENT
    assert token.refresh_failures == 1
    result = ctid_token_refresh(ctid_id=ctid.pk, reason="retry")
    assert result.outcome == RefreshOutcome.REFRESHED
    token = stored(ctid)
    assert token.refresh_token in world.refresh_tokens
    assert token.refresh_failures == 0


@pytest.mark.django_db(transaction=True)
def test_refused_refresh_after_a_new_consent_is_superseded_not_needs_reconnect(
    world, ctrader_id, reconnect_signals
):
    ctid, _ = connect_in_world(world, trader=make_trader())
    original = ctrader_id.token

    def consent_meanwhile(request: Request) -> Response:
        if request.query.get("grant_type") == "refresh_token":
            # The trader re-consents while the refresh is on the wire; Spotware kills the old chain.
            connect_again(world, ctid)
        return original(request)

    ctrader_id.server.add_routes([])  # keep the server, swap the handler below
    ctrader_id.server._server.routes = [
        (m, p, consent_meanwhile if p.endswith("/apps/token") else h)
        for m, p, h in ctrader_id.server._server.routes
    ]
    result = ctid_token_refresh(ctid_id=ctid.pk, reason="test")
    token = stored(ctid)
    assert result.outcome == RefreshOutcome.SUPERSEDED
    assert token.state == CtidToken.State.ACTIVE
    assert token.version == 2
    assert world.grant_for_access_token(token.access_token) is not None
    assert reconnect_signals == []


def connect_again(world, ctid):
    from accounts.ctrader.oauth import TokenPair
    from accounts.services.tokens import ctid_token_store
    from sandbox.world import Grant

    issued = world.issue_tokens(Grant(ctid.user_id, (61000001,), "accounts"))
    try:
        ctid_token_store(
            ctid=ctid,
            pair=TokenPair(str(issued["accessToken"]), str(issued["refreshToken"]), 2628000, "bearer"),
            scope="accounts",
        )
    finally:
        if threading.current_thread() is not threading.main_thread():
            connection.close()


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_refreshes_make_one_call_and_store_its_pair(world, ctrader_id):
    ctid, _ = connect_in_world(world, trader=make_trader())
    original = ctrader_id.token
    returned: list[dict] = []

    def slow_token(request: Request) -> Response:
        # Keep the one call in flight long enough for every other caller to find the lease taken.
        time.sleep(0.5)
        response = original(request)
        returned.append(__import__("json").loads(response.body))
        return response

    ctrader_id.server._server.routes = [
        (m, p, slow_token if p.endswith("/apps/token") else h) for m, p, h in ctrader_id.server._server.routes
    ]
    callers = 10
    barrier = threading.Barrier(callers)
    results: list[tokens.RefreshResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(ctid_token_refresh(ctid_id=ctid.pk, reason="concurrent", seen_version=1))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert world.token_calls == 1
    assert len(returned) == 1
    assert sorted(r.outcome for r in results) == sorted(
        [RefreshOutcome.REFRESHED] + [RefreshOutcome.SUPERSEDED] * (callers - 1)
    )
    assert sum(r.coalesced for r in results) >= 1
    token = stored(ctid)
    assert (token.access_token, token.refresh_token) == (
        returned[0]["accessToken"],
        returned[0]["refreshToken"],
    )
    assert token.version == 2
    assert token.lease_owner == ""


@pytest.mark.django_db(transaction=True)
def test_waiting_callers_share_a_transient_failure_without_calling_again(world, ctrader_id, settings):
    settings.TOKEN_HTTP_READ_TIMEOUT = 0.5
    ctrader_id.hang_seconds = 1.0
    ctid, issued = connect_in_world(world, trader=make_trader())
    world.next_refresh_failure = "timeout"
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def run() -> None:
        try:
            barrier.wait()
            ctid_token_refresh(ctid_id=ctid.pk, reason="concurrent", seen_version=1)
            outcomes.append("ok")
        except TokenRefreshTransient:
            outcomes.append("transient")
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes == ["transient"] * 4
    assert world.token_calls == 1
    assert stored(ctid).refresh_token == issued["refreshToken"]


def test_refresh_inside_a_transaction_is_refused(world, ctrader_id):
    from django.db import transaction

    ctid, _ = connect_in_world(world, trader=make_trader())
    with transaction.atomic(), pytest.raises(RuntimeError):
        ctid_token_refresh(ctid_id=ctid.pk, reason="test")
    assert world.token_calls == 0


@pytest.mark.django_db(transaction=True)
def test_the_claims_asynchronous_commit_stays_inside_its_own_statement(world, ctrader_id):
    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is a PostgreSQL setting")
    ctid, _ = connect_in_world(world, trader=make_trader())
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        before = cursor.fetchone()[0]
    assert before != "off"
    assert ctid_token_refresh(ctid_id=ctid.pk, reason="test").outcome == RefreshOutcome.REFRESHED
    # The write of the new pair, and everything after it on this connection, commits as durably as before.
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == before
    token = stored(ctid)
    assert token.version == 2
    assert token.lease_owner == ""
    assert token.lease_until is None


@pytest.mark.django_db(transaction=True)
def test_bursts_of_eight_refresh_now_make_exactly_one_token_call_each(world, ctrader_id):
    """As staff's "Refresh now" asks: no stale version named. Twenty bursts, each exactly one call."""
    ctid, _ = connect_in_world(world, trader=make_trader())
    callers = 8
    for burst in range(20):
        # Time passes between bursts: the previous burst's refresh is no longer "just finished".
        CtidToken.objects.filter(ctid=ctid).update(last_refresh_at=timezone.now() - timedelta(hours=1))
        calls_before = world.token_calls
        version_before = stored(ctid).version
        barrier = threading.Barrier(callers)
        results: list[tokens.RefreshResult] = []
        errors: list[BaseException] = []

        def run(barrier=barrier, results=results, errors=errors) -> None:
            try:
                barrier.wait()
                results.append(ctid_token_refresh(ctid_id=ctid.pk, reason="admin: staff"))
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=run) for _ in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == [], f"burst {burst}"
        assert world.token_calls - calls_before == 1, f"burst {burst}"
        assert sorted(r.outcome for r in results) == sorted(
            [RefreshOutcome.REFRESHED] + [RefreshOutcome.SUPERSEDED] * (callers - 1)
        ), f"burst {burst}"
        token = stored(ctid)
        assert token.version == version_before + 1
        assert token.lease_owner == ""
        assert token.refresh_token in world.refresh_tokens


def test_a_refresh_asked_for_just_after_one_succeeded_takes_its_result(world, ctrader_id, settings):
    settings.TOKEN_REFRESH_RECENT_SECONDS = 30
    ctid, _ = connect_in_world(world, trader=make_trader())
    first = ctid_token_refresh(ctid_id=ctid.pk, reason="admin: staff")
    again = ctid_token_refresh(ctid_id=ctid.pk, reason="admin: staff")
    assert first.outcome == RefreshOutcome.REFRESHED
    assert again.outcome == RefreshOutcome.SUPERSEDED
    assert again.coalesced
    assert again.version == first.version
    assert ctrader_id.calls == ["refresh_token"]
    # A caller naming the version it found stale (the token Spotware just refused) still refreshes.
    named = ctid_token_refresh(ctid_id=ctid.pk, reason="refused", seen_version=first.version)
    assert named.outcome == RefreshOutcome.REFRESHED
    assert ctrader_id.calls == ["refresh_token"] * 2


def test_a_refresh_costs_two_statements_and_a_coalesced_one_two_reads(
    world, ctrader_id, settings, django_assert_num_queries
):
    """The claim (with the refresh token read) and the conditional write: nothing else on the hot path."""
    settings.TOKEN_REFRESH_RECENT_SECONDS = 30
    ctid, _ = connect_in_world(world, trader=make_trader())
    with django_assert_num_queries(2):
        assert ctid_token_refresh(ctid_id=ctid.pk, reason="sweep").outcome == RefreshOutcome.REFRESHED
    # Asked for again at once: the refused claim and one read of the row that answers it.
    with django_assert_num_queries(2):
        assert ctid_token_refresh(ctid_id=ctid.pk, reason="admin").outcome == RefreshOutcome.SUPERSEDED
    # A version named and already superseded: the same two.
    with django_assert_num_queries(2):
        assert ctid_token_refresh(ctid_id=ctid.pk, reason="gateway", seen_version=1).coalesced is False
    assert ctrader_id.calls == ["refresh_token"]


def test_the_claim_and_the_write_go_through_one_cursor(world, ctrader_id, monkeypatch):
    """Setting a cursor up again after the token call (the process has waited on the network) costs more than
    the write's own client work: the claim's cursor carries the write."""
    from clientarea import prepared

    opened = []
    real = prepared.cursor

    def counting():
        opened.append(1)
        return real()

    monkeypatch.setattr(prepared, "cursor", counting)
    ctid, _ = connect_in_world(world, trader=make_trader())
    assert ctid_token_refresh(ctid_id=ctid.pk, reason="sweep").outcome == RefreshOutcome.REFRESHED
    assert len(opened) == 1
    assert stored(ctid).version == 2
