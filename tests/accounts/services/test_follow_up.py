"""A refresh whose answer was lost is followed up whoever asked for it, with no Open API gateway running."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import tasks
from accounts.models import AuditEvent, Ctid, CtidToken
from accounts.services.gateway import gateway_token_refresh
from accounts.services.tokens import TokenRefreshTransient, ctid_token_refresh
from tests.helpers.ctrader import connect_in_world, make_trader, stored, wait_for


def refresh_now_from_the_admin(staff_client: Client, ctid: Ctid) -> None:
    response = staff_client.post(
        reverse("admin:accounts_ctid_changelist"),
        {"action": "refresh_now", "_selected_action": [ctid.pk]},
        follow=True,
    )
    assert response.status_code == 200


def refresh_from_the_gateway(staff_client: Client, ctid: Ctid) -> None:
    gateway_token_refresh(ctid_id=ctid.pk, seen_version=1, reason="account auth refused")


def refresh_from_a_page_or_service(staff_client: Client, ctid: Ctid) -> None:
    with pytest.raises(TokenRefreshTransient) as info:
        ctid_token_refresh(ctid_id=ctid.pk, reason="admin: staff")
    assert info.value.ambiguous
    assert info.value.followed_up


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "ask",
    [refresh_now_from_the_admin, refresh_from_the_gateway, refresh_from_a_page_or_service],
    ids=["admin-refresh-now", "gateway", "service"],
)
def test_a_lost_answer_is_followed_up_and_the_trader_sees_the_reconnect_banner(
    world, ctrader_id, celery_worker, staff_client, ask
):
    trader = make_trader()
    ctid, issued = connect_in_world(world, trader=trader)
    world.next_refresh_failure = "drop"  # the endpoint rotates the token and the answer never arrives
    ask(staff_client, ctid)
    # The admin action queues the refresh on the worker: wait for the token endpoint to have spent the token.
    wait_for(lambda: issued["refreshToken"] in world.used_refresh_tokens)
    assert issued["refreshToken"] in world.used_refresh_tokens

    # No gateway, no sweep: only the queued follow-up can find out that the chain is dead.
    wait_for(lambda: Ctid.objects.get(pk=ctid.pk).state == Ctid.State.NEEDS_RECONNECT)
    token = stored(ctid)
    assert token.state == CtidToken.State.NEEDS_RECONNECT
    # Nothing stored was cleared: the values are the last ones the trader's consent chain produced.
    assert (token.access_token, token.refresh_token, token.version) == (
        issued["accessToken"],
        issued["refreshToken"],
        1,
    )
    assert world.token_calls == 2
    assert ctrader_id.calls == ["refresh_token", "refresh_token"]
    assert AuditEvent.objects.filter(
        trader=trader, category="ctid", action="token_refresh", outcome="needs_reconnect"
    ).exists()
    client = Client()
    client.force_login(trader.user)
    page = client.get(reverse("dashboard")).content.decode()
    assert f"cTrader ID {ctid.user_id} needs to be reconnected" in page


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_lost_answer_that_rotated_nothing_is_followed_up_and_the_chain_stays_alive(
    world, ctrader_id, celery_worker, staff_client, settings
):
    settings.TOKEN_HTTP_READ_TIMEOUT = 0.5
    ctrader_id.hang_seconds = 1.0
    ctid, issued = connect_in_world(world, trader=make_trader())
    world.next_refresh_failure = "timeout"  # read timeout: ambiguous, but the endpoint never rotated
    refresh_now_from_the_admin(staff_client, ctid)
    wait_for(lambda: stored(ctid).version == 2)
    token = stored(ctid)
    assert token.state == CtidToken.State.ACTIVE
    assert token.last_refresh_outcome == CtidToken.Outcome.OK
    assert token.refresh_token in world.refresh_tokens
    assert issued["refreshToken"] in world.used_refresh_tokens
    assert Ctid.objects.get(pk=ctid.pk).state == Ctid.State.CONNECTED
    assert world.token_calls == 2


@pytest.mark.django_db
def test_in_embedded_mode_the_periodic_follow_up_finds_the_dead_chain(world, ctrader_id, settings):
    settings.TOKEN_REFRESH_FOLLOW_UP_SECONDS = 30
    ctid, issued = connect_in_world(world, trader=make_trader())
    world.next_refresh_failure = "drop"
    with pytest.raises(TokenRefreshTransient) as info:
        ctid_token_refresh(ctid_id=ctid.pk, reason="admin: staff")
    assert info.value.ambiguous
    assert not info.value.followed_up
    assert tasks.run_lost_refresh_follow_ups() == 0  # not yet: the answer was lost a moment ago
    CtidToken.objects.filter(ctid=ctid).update(last_refresh_at=timezone.now() - timedelta(minutes=1))
    assert tasks.run_lost_refresh_follow_ups() == 1
    assert Ctid.objects.get(pk=ctid.pk).state == Ctid.State.NEEDS_RECONNECT
    assert stored(ctid).refresh_token == issued["refreshToken"]
    assert tasks.run_lost_refresh_follow_ups() == 0
    assert world.token_calls == 2


def test_the_periodic_follow_up_is_scheduled(settings):
    from django.conf import settings as live

    entries = {spec["task"] for spec in live.CELERY_BEAT_SCHEDULE.values()}
    assert "accounts.tasks.follow_up_lost_refreshes" in entries
