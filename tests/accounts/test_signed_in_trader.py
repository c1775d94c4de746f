"""Every trader-facing page and endpoint finds the signed-in trader the same way: the profile loaded with the
user by the authentication backend (which shuts suspended traders out), never a query of its own."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.selectors import trader_for_user
from tests.factories import StaffUserFactory

BACKEND = "accounts.backends.TraderModelBackend"  # the backend a password sign-in ends on

# (method, path, status for a trader); the pages that need a trader.
TRADER_PAGES = [
    ("get", "/", 200),
    ("get", "/api/v1/me/", 200),
    ("get", "/api/v1/tradingview/grants/", 200),
    ("get", "/tradingview/", 200),
    ("get", "/tradingview/account-request/", 200),
    ("post", "/ctrader/connect/", 302),
]


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user, backend=BACKEND)
    return client


def _trader_reads(queries) -> list[str]:
    """Queries that read the trader table on their own (not joined to the user they belong to)."""
    return [q["sql"] for q in queries if re.match(r'^SELECT .* FROM "accounts_trader"', q["sql"])]


@pytest.mark.parametrize(("method", "path", "status"), TRADER_PAGES)
def test_the_signed_in_trader_comes_with_the_user(trader, method, path, status, settings):
    settings.CTRADER_CLIENT_ID = settings.CTRADER_CLIENT_ID or "client"
    client = _signed_in(trader.user)
    with CaptureQueriesContext(connection) as queries:
        response = getattr(client, method)(path)
    assert response.status_code == status, response.content[:300]
    assert _trader_reads(queries.captured_queries) == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/ctrader/connect/", 404),
        ("post", "/ctrids/1/sync/", 404),
        ("get", "/api/v1/tradingview/grants/", 404),
        ("post", "/api/v1/tradingview/grants/1/disconnect/", 404),
        ("post", "/tradingview/grants/1/disconnect/", 404),
        ("get", "/tradingview/account-request/", 403),
    ],
)
def test_a_user_without_a_trader_profile_is_refused_alike(db, method, path, status):
    client = _signed_in(StaffUserFactory())
    assert getattr(client, method)(path).status_code == status


def test_trader_for_user(trader, db):
    assert trader_for_user(user=trader.user) == trader
    assert trader_for_user(user=StaffUserFactory()) is None
    from django.contrib.auth.models import AnonymousUser

    assert trader_for_user(user=AnonymousUser()) is None
