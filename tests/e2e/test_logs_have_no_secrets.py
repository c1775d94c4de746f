"""No secret the run used appears in any log line written during the journeys.

It drives a journey of its own (connect, refresh, link to TradingView and refresh that link), so it has
material in any order and when run alone, then scans every line captured since the session started — raw
records, before the formatters' safety net — for every token the simulators issued, every authorization
code, the client secrets, the adapter bearer and the adapter tokens. The journeys that run after it are
scanned the same way when the session's record closes (``run_record`` in tests/e2e/conftest.py).
"""

from __future__ import annotations

import logging
import re

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Ctid
from sandbox.control import Sandbox
from tests.helpers.journeys import ALICE, DEMO_TRADER, Run, leaked_secrets

from .steps import connect_ctid, sign_in, start_tradingview_link

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_no_secret_used_by_the_journeys_reaches_the_logs(
    page: Page, clientarea: str, sandbox: Sandbox, run_record: Run
):
    from accounts.tasks import refresh_ctid_token

    sign_in(page, clientarea, *DEMO_TRADER)
    connect_ctid(page, clientarea, ALICE)
    refresh_ctid_token.apply(args=[Ctid.objects.get(user_id=ALICE).pk])
    start_tradingview_link(page, sandbox)
    page.get_by_role("checkbox", name=re.compile(r"Account 5100101\b")).check()
    page.get_by_role("button", name="Use the chosen accounts").click()
    expect(page.locator("#links .accounts").first).to_contain_text("40000101")
    page.get_by_role("button", name="Refresh the token").click()
    expect(page.locator("#links li")).to_have_count(2)

    # The capture sees what the application logs.
    logging.getLogger("accounts").warning("log capture check")
    assert any("log capture check" in line for line in run_record.log.lines)

    run_record.collect(sandbox)
    with sandbox.world.lock:
        assert sandbox.world.used_refresh_tokens, "the journey did not rotate a refresh token"
    assert sandbox.adapter.tokens, "the journey did not get an adapter token"
    secrets = {s for s in run_record.secrets if len(s) >= 8}
    assert len(secrets) >= 8

    leaks = leaked_secrets(run_record)
    assert not leaks, f"{len(leaks)} log line(s) carry a secret: {leaks[:5]}"
