"""Every signed-in request reads its session and its user (with the trader profile) through two statements
prepared once per connection, with Django's own conditions: an expired session, an inactive user and a
suspended trader are still turned away."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.backends import TraderModelBackend
from tests.factories import TraderFactory

needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")


def _prepared(pattern: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql AND statement LIKE %s", [pattern]
        )
        return int(cursor.fetchone()[0])


@needs_postgres
def test_the_session_and_the_user_are_read_through_statements_prepared_once_per_connection(
    trader, trader_client
):
    for _ in range(3):
        with CaptureQueriesContext(connection) as captured:
            assert trader_client.get("/account/settings/").status_code == 200
        sqls = [q["sql"] for q in captured]
        assert sum('FROM "django_session"' in sql for sql in sqls) == 1, sqls
        assert sum('LEFT OUTER JOIN "accounts_trader"' in sql for sql in sqls) == 1, sqls
    assert _prepared('%FROM "django_session"%') == 1
    assert _prepared('%FROM "auth_user" LEFT OUTER JOIN "accounts_trader"%') == 1


@pytest.mark.django_db
def test_the_loaded_user_carries_its_trader_profile_or_none_without_another_query():
    trader = TraderFactory()
    plain = User.objects.create_user(username="no-profile", password=None)
    backend = TraderModelBackend()

    user = backend.get_user(trader.user.pk)
    with CaptureQueriesContext(connection) as captured:
        assert user is not None
        assert user.trader.pk == trader.pk
        assert user.trader.user is user
    assert len(captured) == 0
    assert user.get_username() == trader.user.get_username()
    assert user.password == trader.user.password

    other = backend.get_user(plain.pk)
    with CaptureQueriesContext(connection) as captured:
        assert other is not None
        assert getattr(other, "trader", None) is None
    assert len(captured) == 0
    assert backend.get_user(plain.pk + 10_000) is None
    assert backend.get_user("not a number") is None


@pytest.mark.django_db
def test_an_expired_session_an_inactive_user_and_a_suspended_trader_are_signed_out(trader, trader_client):
    assert trader_client.get("/account/settings/").status_code == 200

    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    assert trader_client.get("/account/settings/").status_code == 302

    trader_client.force_login(trader.user)
    assert trader_client.get("/account/settings/").status_code == 200
    User.objects.filter(pk=trader.user.pk).update(is_active=False)
    assert trader_client.get("/account/settings/").status_code == 302

    User.objects.filter(pk=trader.user.pk).update(is_active=True)
    client = Client()
    client.force_login(trader.user)
    assert client.get("/account/settings/").status_code == 200
    type(trader).objects.filter(pk=trader.pk).update(suspended=True, suspended_at=timezone.now())
    assert client.get("/account/settings/").status_code == 302


@pytest.mark.django_db
def test_without_prepared_statements_the_reads_are_djangos(trader, trader_client, monkeypatch):
    from django.db import connections

    monkeypatch.setitem(connections["default"].settings_dict["OPTIONS"], "prepare_threshold", None)
    postgres = connection.vendor == "postgresql"
    before = _prepared("%") if postgres else 0
    with CaptureQueriesContext(connection) as captured:
        assert trader_client.get("/account/settings/").status_code == 200
    assert any('FROM "django_session"' in q["sql"] for q in captured)
    assert any('LEFT OUTER JOIN "accounts_trader"' in q["sql"] for q in captured)
    if postgres:
        assert _prepared("%") == before  # nothing prepared
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    assert trader_client.get("/account/settings/").status_code == 302
