"""Connect and "Refresh accounts" return before the Open API has answered anything: the work runs in a
worker (the in-process worker threads without a broker, a real Celery worker with one), and the page
follows its progress from the JSON endpoint."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Ctid, CtidJob, TradingAccount
from tests.helpers.ctrader import wait_for

from .test_connect import callback, consent, start

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def peers(ctrader_id, openapi, settings):
    settings.CTRADER_REDIRECT_URI = "http://testserver/ctrader/callback/"
    return ctrader_id, openapi


def progress(client: Client, job: CtidJob) -> dict:
    response = client.get(reverse("ctid-job", args=[job.public_id]))
    assert response.status_code == 200
    return response.json()


def _connect_then_refresh(peers, trader, trader_client: Client) -> None:
    _, openapi = peers
    live = openapi["live"]

    # Connect: the code exchange happens in the request; the Open API work does not.
    live.hold()
    redirect = consent(start(trader_client))
    response = callback(trader_client, redirect)
    answered_when_returned = live.answers_sent
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    assert answered_when_returned == 0  # the request finished before the Open API answered anything
    job = CtidJob.objects.get(trader=trader, kind=CtidJob.Kind.CONNECT)
    assert job.state in (CtidJob.State.QUEUED, CtidJob.State.RUNNING)
    assert progress(trader_client, job)["finished"] is False
    page = trader_client.get(reverse("dashboard")).content.decode()
    assert "Connecting your cTrader ID" in page
    assert "js/progress.js" in page
    live.release()
    wait_for(lambda: progress(trader_client, job)["finished"])
    assert "3 trading account(s) found" in progress(trader_client, job)["message"]
    ctid = Ctid.objects.get(user_id=9100001)
    assert TradingAccount.objects.filter(ctid=ctid).count() == 3
    job.refresh_from_db()
    assert job.access_token is None
    assert job.refresh_token is None

    # "Refresh accounts": queued, returns at once, the page shows the outcome.
    live.hold()
    response = trader_client.post(reverse("ctid-sync", args=[ctid.pk]))
    answered_when_returned = live.answers_sent
    assert response.status_code == 302
    sync = CtidJob.objects.get(ctid=ctid, kind=CtidJob.Kind.SYNC)
    assert progress(trader_client, sync)["finished"] is False
    assert live.answers_sent == answered_when_returned  # nothing answered since the request began waiting
    # Pressing again while it is queued or running does not queue a second read.
    trader_client.post(reverse("ctid-sync", args=[ctid.pk]))
    assert CtidJob.objects.filter(ctid=ctid, state=CtidJob.State.QUEUED).count() <= 1
    live.release()
    wait_for(lambda: all(j.finished for j in CtidJob.objects.filter(ctid=ctid)))
    assert "are up to date: 3 active account(s)" in progress(trader_client, sync)["message"]
    page = trader_client.get(reverse("dashboard")).content.decode()
    assert "are up to date: 3 active account(s)" in page
    assert (
        "are up to date: 3 active account(s)" not in trader_client.get(reverse("dashboard")).content.decode()
    )


def test_embedded_mode_runs_the_work_on_the_in_process_worker(peers, trader, trader_client) -> None:
    _connect_then_refresh(peers, trader, trader_client)


def test_with_a_broker_a_celery_worker_runs_the_work(peers, trader, trader_client, celery_worker) -> None:
    _connect_then_refresh(peers, trader, trader_client)


def test_another_traders_progress_is_not_found(peers, trader, trader_client, other_trader) -> None:
    live = peers[1]["live"]
    live.hold()
    callback(trader_client, consent(start(trader_client)))
    job = CtidJob.objects.get(trader=trader)
    other = Client()
    other.force_login(other_trader.user)
    assert other.get(reverse("ctid-job", args=[job.public_id])).status_code == 404
    live.release()
    wait_for(lambda: progress(trader_client, job)["finished"])


def test_an_abandoned_connect_job_is_expired_by_the_sweep_and_its_pair_cleared(trader) -> None:
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from accounts.tasks import sweep_due_tokens

    job = CtidJob.objects.create(
        public_id=uuid.uuid4(),
        kind=CtidJob.Kind.CONNECT,
        trader=trader,
        state=CtidJob.State.RUNNING,  # its worker was killed mid-job
        access_token="pending-access",
        refresh_token="pending-refresh",
        expires_in=2_628_000,
    )
    CtidJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
    fresh = CtidJob.objects.create(public_id=uuid.uuid4(), kind=CtidJob.Kind.CONNECT, trader=trader)

    sweep_due_tokens.apply()  # as beat (or the embedded periodic loop) runs it

    job.refresh_from_db()
    assert job.state == CtidJob.State.FAILED
    assert job.finished_at is not None
    assert job.access_token is None
    assert job.refresh_token is None
    fresh.refresh_from_db()
    assert fresh.state == CtidJob.State.QUEUED


def _connect_in_german(peers, trader) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9")
    client.force_login(trader.user)
    callback(client, consent(start(client)))
    job = CtidJob.objects.get(trader=trader, kind=CtidJob.Kind.CONNECT)
    wait_for(lambda: progress(client, job)["finished"])
    message = progress(client, job)["message"]
    assert "Handelskonto/-konten gefunden" in message, message
    ctid = Ctid.objects.get(user_id=9100001)
    client.post(reverse("ctid-sync", args=[ctid.pk]))
    sync = CtidJob.objects.get(ctid=ctid, kind=CtidJob.Kind.SYNC)
    wait_for(lambda: progress(client, sync)["finished"])
    message = progress(client, sync)["message"]
    assert "sind aktuell: 3 aktive(s) Konto/Konten" in message, message


def test_the_progress_speaks_the_language_of_the_page_that_queued_it(peers, trader) -> None:
    _connect_in_german(peers, trader)


def test_a_celery_worker_writes_the_progress_in_the_language_of_the_page(
    peers, trader, celery_worker
) -> None:
    _connect_in_german(peers, trader)
