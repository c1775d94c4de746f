"""Shared fixtures. Peers (token endpoint, Open API, adapter) are real servers on loopback.

``trader`` and ``other_trader`` are ``Trader`` rows (their user is ``trader.user``, password
``tests.factories.PASSWORD``); a folder that needs a particular trader overrides ``trader_traits`` (the
factory's keyword arguments), not ``trader``. ``trader_client`` is a Django test client signed in as
``trader``; ``staff_client`` is signed in as a superuser who has no Trader profile.

``world`` is a fresh simulated cTrader world (``make_world``, the factory, builds more) holding the people
``world_people`` names; ``ctrader_id`` is the simulated cTrader ID (consent page and token endpoint) on that
world, wired into the settings. Functions and constants tests import are in tests/helpers/.

The fixtures of the simulated peers that tests of several folders use (the cTID area's Open API simulators,
the figures' simulators, the WebServices and SMTP servers of account opening) are in
tests/helpers/fixtures_*.py, loaded below for the whole suite; none of them is autouse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from accounts.models import Trader
from sandbox.ctrader_id import CtraderIdSimulator
from sandbox.httpd import serve
from sandbox.world import World
from tests.factories import StaffUserFactory, TraderFactory
from tests.helpers import ctrader
from tests.helpers.ops import TEST_REDIS_URL

pytest_plugins = [
    "tests.helpers.fixtures_ctid",
    "tests.helpers.fixtures_figures",
    "tests.helpers.fixtures_webservices",
]


@pytest.fixture
def trader_traits() -> dict[str, Any]:
    """What ``trader`` is built with (TraderFactory keyword arguments); folders override this fixture."""
    return {}


@pytest.fixture
def trader(db: None, trader_traits: dict[str, Any]) -> Trader:
    return TraderFactory(**trader_traits)


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


@pytest.fixture
def make_world() -> Callable[..., World]:
    """The factory of simulated worlds: ``make_world("ann")`` (people from tests.helpers.ctrader.PEOPLE)."""
    return ctrader.make_world


@pytest.fixture
def world_people() -> str:
    """Who the ``world`` fixture starts with; a folder overrides this to pick another cast."""
    return "alice_and_bob"


@pytest.fixture
def world(make_world: Callable[..., World], world_people: str) -> World:
    return make_world(world_people)


@pytest.fixture
def ctrader_id(world: World, settings: Any) -> Iterator[CtraderIdSimulator]:
    """The cTrader ID simulator (consent page and token endpoint) on a loopback port, wired into settings.

    It shares ``world`` with the Open API simulators: a refresh through it rotates the World's tokens, so
    they refuse the old access token and end its sessions with ProtoOAAccountsTokenInvalidatedEvent, as
    Spotware does. ``calls`` lists every token call; ``server`` is its loopback server.
    """
    sim = CtraderIdSimulator(
        world, client_id=ctrader.CLIENT_ID, client_secret=ctrader.CLIENT_SECRET, hang_seconds=3.0
    )
    server = serve(sim.routes())
    settings.CTRADER_CLIENT_ID = ctrader.CLIENT_ID
    settings.CTRADER_CLIENT_SECRET = ctrader.CLIENT_SECRET
    settings.CTRADER_AUTH_URL = f"{server.url}/ctrader-id/grantingaccess/"
    settings.CTRADER_TOKEN_URL = f"{server.url}/ctrader-id/apps/token"
    settings.CTRADER_REDIRECT_URI = "http://testserver/ctrader/callback/"
    settings.TOKEN_HTTP_READ_TIMEOUT = 2.0
    sim.server = server  # type: ignore[attr-defined]
    yield sim
    sim.release_hangs()
    server.stop()


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
        CELERY_BROKER_URL=TEST_REDIS_URL, CELERY_TASK_ALWAYS_EAGER=False, CELERY_RESULT_BACKEND=None
    )
    assert app.conf.task_always_eager is False
    assert app.conf.broker_url == TEST_REDIS_URL
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
    settings.TOKEN_REFRESH_FOLLOW_UP_SECONDS = 0.2
    app = _celery_worker_session
    eager = app.conf.task_always_eager
    app.conf.update(CELERY_TASK_ALWAYS_EAGER=False)
    yield app
    app.control.purge()
    app.conf.update(CELERY_TASK_ALWAYS_EAGER=eager)


@pytest.fixture(autouse=True)
def _fresh_readiness():
    """/readyz caches its answer for a few seconds: each test sees its own."""
    from clientarea.health import reset_readiness_cache

    reset_readiness_cache()
    yield
    reset_readiness_cache()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The cache carries per-address flags (the token endpoint's failure flag): each test starts without any,
    and without the brand a process keeps for a few seconds."""
    from django.core.cache import cache

    from branding.selectors import brand_forget

    cache.clear()
    brand_forget()
    return


@pytest.fixture(autouse=True)
def _default_language():
    """A request through the test client leaves its language active in the test's thread (a server's next
    request activates its own); each test starts in the default language, whatever ran before."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


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
