"""Opening an account page queues a fresh Open API read for a real Celery worker and never waits for it."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import AccountFigures
from tests.helpers.ctrader import wait_for
from tests.helpers.figures import LIVE_USD, link


# The figures tests' World: one cTID whose open positions have known P/L (tests.helpers.figures).
@pytest.fixture
def world_people() -> str:
    return "figures"


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_account_page_queues_a_figures_read_that_the_worker_stores(
    world, figures_openapi, celery_worker, settings
):
    settings.FIGURES_ON_VIEW_REFRESH_SECONDS = 30
    ctid = link(world)
    client = Client()
    client.force_login(ctid.trader.user)
    figures_openapi["live"].clear_received()

    started = time.monotonic()
    page = client.get(f"/accounts/{LIVE_USD}/").content.decode()
    elapsed = time.monotonic() - started

    assert "Fresh figures for this account are on their way" in page
    assert "not known yet" in page
    assert elapsed < 5
    wait_for(lambda: AccountFigures.objects.filter(account__ctid_trader_account_id=LIVE_USD).exists())
    figures = AccountFigures.objects.get(account__ctid_trader_account_id=LIVE_USD)
    assert figures.equity == Decimal("10100.00")
    # Only the account on the page was read.
    reads = {r.payload["ctidTraderAccountId"] for r in figures_openapi["live"].received(2124)}
    assert reads == {LIVE_USD}
    # Fresh now: the next view queues nothing.
    page = client.get(f"/accounts/{LIVE_USD}/").content.decode()
    assert "on their way" not in page
    assert "10,100.00" in page
