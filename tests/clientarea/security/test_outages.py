"""Redis or PostgreSQL stalling or refusing: pages that need neither keep answering, /readyz answers fast.

A real gunicorn serves the client area against the test database, with REDIS_URL (or DATABASE_URL) pointed at
a loopback port that refuses connections or at a black hole that accepts and never answers.
"""

from __future__ import annotations

import time

import pytest
import requests
from django.db import connection

from tests.factories import PASSWORD, TraderFactory

from .peers import BlackHole, database_url, refusing_port, web_process

BOUND_SECONDS = 5.0


@pytest.fixture
def black_hole():
    hole = BlackHole()
    yield hole
    hole.close()


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _sign_in_and_open_the_dashboard(base: str, username: str) -> None:
    browser = requests.Session()
    page, elapsed = _timed(lambda: browser.get(f"{base}/account/login/", timeout=BOUND_SECONDS * 2))
    assert page.status_code == 200
    assert elapsed < BOUND_SECONDS
    signed_in, elapsed = _timed(
        lambda: browser.post(
            f"{base}/account/login/",
            data={
                "username": username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/account/login/"},
            allow_redirects=False,
            timeout=BOUND_SECONDS * 2,
        )
    )
    assert signed_in.status_code == 302, signed_in.text[:500]
    assert elapsed < BOUND_SECONDS
    dashboard, elapsed = _timed(lambda: browser.get(f"{base}/", timeout=BOUND_SECONDS * 2))
    assert dashboard.status_code == 200, dashboard.text[:500]
    assert elapsed < BOUND_SECONDS
    assert username in dashboard.text
    api, elapsed = _timed(lambda: browser.get(f"{base}/api/v1/me/", timeout=BOUND_SECONDS * 2))
    assert api.status_code == 200
    assert elapsed < BOUND_SECONDS


@pytest.mark.django_db(transaction=True)
def test_sign_in_and_dashboard_answer_while_redis_refuses_connections():
    trader = TraderFactory()
    env = {
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": f"redis://127.0.0.1:{refusing_port()}/0",
    }
    with web_process(env) as base:
        _sign_in_and_open_the_dashboard(base, trader.user.username)


@pytest.mark.django_db(transaction=True)
def test_sign_in_and_dashboard_answer_while_redis_is_black_holed(black_hole):
    trader = TraderFactory()
    env = {
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": f"redis://127.0.0.1:{black_hole.port}/0",
    }
    with web_process(env) as base:
        _sign_in_and_open_the_dashboard(base, trader.user.username)
        ready, elapsed = _timed(lambda: requests.get(f"{base}/readyz", timeout=BOUND_SECONDS))
        assert ready.status_code == 503
        assert elapsed < 1.0
        assert ready.json()["checks"]["redis"]["ok"] is False


def test_readyz_answers_503_within_a_second_while_postgresql_is_black_holed(black_hole, db):
    env = {"DATABASE_URL": database_url(connection.settings_dict, port=black_hole.port)}
    with web_process(env) as base:
        for _ in range(3):
            ready, elapsed = _timed(lambda: requests.get(f"{base}/readyz", timeout=BOUND_SECONDS))
            assert ready.status_code == 503
            assert elapsed < 1.0, f"/readyz took {elapsed:.2f} s"
            assert ready.json()["checks"]["database"]["ok"] is False
        alive, elapsed = _timed(lambda: requests.get(f"{base}/healthz", timeout=BOUND_SECONDS))
        assert alive.status_code == 200
        assert elapsed < 1.0


@pytest.fixture
def broker_down(settings):
    """The Celery app publishing to a Redis that refuses connections, as a web process would.

    Set on the app itself (a session's real worker may have pinned the broker there) and put back exactly as it
    was, so the change ends with the test.
    """
    from clientarea.celery import app

    url = f"redis://127.0.0.1:{refusing_port()}/0"
    keys = ("CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER")
    before = {key: app.conf.changes[key] for key in keys if key in app.conf.changes}
    settings.CELERY_BROKER_URL = url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.update(CELERY_BROKER_URL=url, CELERY_TASK_ALWAYS_EAGER=False)
    app._pool = None
    app.amqp._producer_pool = None
    assert app.conf.broker_url == url
    assert not app.conf.task_always_eager
    yield app
    for key in keys:
        if key in before:
            app.conf.changes[key] = before[key]
        else:
            app.conf.changes.pop(key, None)
    app._pool = None
    app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)
def test_queueing_while_redis_is_down_fails_fast_with_a_clear_message(broker_down, staff_client):
    from accounts.models import AuditEvent
    from tests.factories import CtidTokenFactory

    tokens = [CtidTokenFactory() for _ in range(3)]
    response, elapsed = _timed(
        lambda: staff_client.post(
            "/admin/accounts/ctid/",
            {"action": "refresh_now", "_selected_action": [t.ctid_id for t in tokens]},
            follow=True,
        )
    )
    assert response.status_code == 200
    assert elapsed < BOUND_SECONDS
    shown = " ".join(str(m) for m in response.context["messages"])
    assert "task queue is not reachable" in shown
    assert not AuditEvent.objects.filter(action="token_refresh", outcome="queued").exists()
