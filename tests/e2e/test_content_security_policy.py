"""Only our code in the browser: every page runs under the Content-Security-Policy without a violation (the
``page`` fixture fails the test on any), the API docs come from our own static files, and nothing is fetched
from another host."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.contrib import admin
from playwright.sync_api import Page, expect

from tests.helpers.journeys import DEMO_TRADER, STAFF

from .steps import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _foreign_requests(page: Page, base: str) -> list[str]:
    ours = urlsplit(base).netloc
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if urlsplit(r.url).netloc not in ("", ours) else None)
    return seen


def test_the_pages_send_the_policy_headers(page: Page, clientarea: str):
    response = page.goto(f"{clientarea}/account/login/")
    assert response is not None
    headers = response.headers
    policy = headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "camera=()" in headers["permissions-policy"]
    assert headers["referrer-policy"] == "same-origin"


def test_the_api_docs_run_from_our_static_files(page: Page, clientarea: str):
    foreign = _foreign_requests(page, clientarea)
    sign_in(page, clientarea, *DEMO_TRADER)
    page.goto(f"{clientarea}/api/v1/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("clientarea API")
    expect(page.get_by_text("/api/v1/me/").first).to_be_visible()
    assert foreign == []


def test_every_admin_page_of_the_staff_runs_under_the_policy(page: Page, clientarea: str):
    foreign = _foreign_requests(page, clientarea)
    page.goto(f"{clientarea}/admin/")
    page.get_by_label("Username").fill(STAFF[0])
    page.get_by_label("Password").fill(STAFF[1])
    page.locator("main").get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name=re.compile("Log out|View site"))).to_have_count(1)
    for model in admin.site._registry:
        opts = model._meta
        page.goto(f"{clientarea}/admin/{opts.app_label}/{opts.model_name}/")
        expect(page.locator("#content")).to_be_visible()
        first = page.locator("#result_list tbody tr th a").first
        if first.count():
            first.click()
            expect(page.locator("#content")).to_be_visible()
    page.goto(f"{clientarea}/admin/tradingview/oauthclient/add/")
    expect(page.locator("#content")).to_be_visible()
    assert foreign == []
