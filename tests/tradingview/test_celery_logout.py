"""The delayed /logout after a refresh, run by a real Celery worker on Redis."""

from __future__ import annotations

import pytest

from tests.helpers.ctrader import wait_for
from tests.helpers.tradingview import exchange, link, token_post
from tradingview.models import Grant


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_worker_logs_out_the_superseded_token_after_the_grace_and_retries_failures(
    settings, adapter, tv_client, browser_client, accounts, celery_worker
):
    settings.TRADINGVIEW_REFRESH_GRACE_SECONDS = 1
    code = link(browser_client, tv_client, [a.pk for a in accounts])
    first = exchange(tv_client, code).json()
    response = token_post(
        {
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_secret": tv_client.secret,
        }
    )
    assert response.status_code == 200
    second = response.json()
    # Right after the refresh both tokens are valid: TradingView may still be using the old one.
    assert not adapter.sim.is_revoked(first["access_token"])
    old = Grant.objects.get(state=Grant.State.REVOKING)

    # The adapter fails the first /logout; the task retries until it gets through.
    adapter.sim.mode = "500"
    wait_for(lambda: len(adapter.sim.calls_to("/logout")) >= 1)
    adapter.sim.mode = ""
    wait_for(lambda: Grant.objects.get(pk=old.pk).state == Grant.State.REVOKED)

    calls = adapter.sim.calls_to("/logout")
    assert len(calls) >= 2
    assert {c.headers["authorization"] for c in calls} == {f"Bearer {first['access_token']}"}
    assert adapter.sim.is_revoked(first["access_token"])
    assert not adapter.sim.is_revoked(second["access_token"])
    assert Grant.objects.get(pk=old.pk).revoke_attempts >= 2
