"""Shared fixtures. Peers (token endpoint, Open API, adapter) are real servers on loopback.

``trader`` and ``other_trader`` are ``Trader`` rows (their user is ``trader.user``, password
``tests.factories.PASSWORD``); ``trader_client`` is a Django test client signed in as ``trader``;
``staff_client`` is signed in as a superuser who has no Trader profile.
"""

from __future__ import annotations

import os

import pytest
from django.test import Client

from accounts.models import Trader
from tests.factories import StaffUserFactory, TraderFactory


@pytest.fixture
def trader(db: None) -> Trader:
    return TraderFactory()


@pytest.fixture
def other_trader(db: None) -> Trader:
    return TraderFactory()


@pytest.fixture
def trader_client(trader: Trader) -> Client:
    client = Client()
    client.force_login(trader.user)
    return client


@pytest.fixture
def staff_user(db: None):
    return StaffUserFactory()


@pytest.fixture
def staff_client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


# The Redis database the real Celery worker of the tests uses (CI: .ci/run sets it).
REDIS_TEST_URL = os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def _celery_worker_session():
    """A real Celery worker (in this process, its own threads) consuming from the real Redis.

    One per test session: a worker started after another one stopped in the same process does not run
    ETA (retry) messages any more.
    """
    from celery.contrib.testing.worker import start_worker

    import accounts.tasks  # noqa: F401  (registers the tasks)
    import tradingview.tasks  # noqa: F401
    from clientarea.celery import app

    # Settings come from Django with the CELERY_ namespace: overrides must use the prefixed names.
    keys = ("CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "CELERY_RESULT_BACKEND")
    saved = {key: getattr(app.conf, key.removeprefix("CELERY_").lower()) for key in keys}
    app.conf.update(
        CELERY_BROKER_URL=REDIS_TEST_URL, CELERY_TASK_ALWAYS_EAGER=False, CELERY_RESULT_BACKEND=None
    )
    assert app.conf.task_always_eager is False and app.conf.broker_url == REDIS_TEST_URL
    app._pool = None  # connections made for the previous broker must not be reused
    app.amqp._producer_pool = None
    app.control.purge()
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="WARNING"):
        # Between the tests that use the worker, everything else keeps running tasks eagerly.
        app.conf.update(CELERY_TASK_ALWAYS_EAGER=saved["CELERY_TASK_ALWAYS_EAGER"])
        yield app
    app.control.purge()
    app.conf.update(saved)
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def celery_worker(_celery_worker_session, settings):
    """The session's real worker, with task retries shortened so retry paths run within a test."""
    settings.TASK_RETRY_BASE_SECONDS = 0.2
    settings.TASK_RETRY_CAP_SECONDS = 1.0
    settings.TRADINGVIEW_LOGOUT_RETRY_SECONDS = 0.2
    app = _celery_worker_session
    eager = app.conf.task_always_eager
    app.conf.update(CELERY_TASK_ALWAYS_EAGER=False)
    yield app
    app.control.purge()
    app.conf.update(CELERY_TASK_ALWAYS_EAGER=eager)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the message catalogues when a .mo file is missing or older than its .po (needs gettext)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for po in (root / "locale").glob("*/LC_MESSAGES/django.po"):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            from django.core.management import call_command

            call_command("compilemessages", ignore_patterns=[".venv"], verbosity=0)
            break
