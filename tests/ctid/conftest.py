"""Fixtures for the cTID area: a real cTrader ID simulator on loopback and the rows it issues tokens for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model

from accounts.ctrader.oauth import TokenPair
from accounts.models import Ctid, CtidToken, Trader
from accounts.services.tokens import ctid_token_store
from sandbox.ctrader_id import CtraderIdSimulator
from sandbox.httpd import RunningServer, serve
from sandbox.openapi_server import OpenApiSimulator
from sandbox.world import Grant, SimAccount, World

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret-Zq8Vw2"


@pytest.fixture
def world() -> World:
    w = World()
    w.add_ctid(
        9100001,
        "Alice",
        [
            SimAccount(61000001, 710001, True, "TEST-EU", "Test EU", 1_250_050, 2, "EUR"),
            SimAccount(61000002, 710002, False, "TEST-EU", "Test EU", 10_000_000, 2, "EUR"),
            SimAccount(61000003, 710003, True, "TEST-UNKNOWN", "Test Other", 52_015_000_000, 8, "USD"),
        ],
    )
    w.add_ctid(9100002, "Bob", [SimAccount(61000011, 710011, False, "TEST-EU", "Test EU", 500_000, 2, "USD")])
    return w


@pytest.fixture
def ctrader_id(world: World, settings) -> Iterator[CtraderIdSimulator]:
    """The cTrader ID simulator (consent page and token endpoint) on a loopback port, wired into settings."""
    sim = CtraderIdSimulator(world, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, hang_seconds=3.0)
    server = serve(sim.routes())
    settings.CTRADER_CLIENT_ID = CLIENT_ID
    settings.CTRADER_CLIENT_SECRET = CLIENT_SECRET
    settings.CTRADER_AUTH_URL = f"{server.url}/ctrader-id/grantingaccess/"
    settings.CTRADER_TOKEN_URL = f"{server.url}/ctrader-id/apps/token"
    settings.CTRADER_REDIRECT_URI = "http://testserver/ctrader/callback/"
    sim.server = server  # type: ignore[attr-defined]
    yield sim
    sim.release_hangs()
    server.stop()


@pytest.fixture
def token_server() -> Iterator[RunningServer]:
    """A bare loopback HTTP server; tests add scripted routes."""
    server = serve([])
    yield server
    server.stop()


def make_trader(username: str = "alice") -> Trader:
    user = get_user_model().objects.create_user(username, f"{username}@example.com", "pw-Strong-123!")
    return Trader.objects.create(user=user)


def connect_in_world(world: World, *, trader: Trader, user_id: int = 9100001) -> tuple[Ctid, dict]:
    """A cTID with a token pair that the simulated cTrader ID really issued (as after a consent)."""
    account_ids = tuple(a.ctid_trader_account_id for a in world.ctids[user_id].accounts)
    issued = world.issue_tokens(Grant(user_id, account_ids, "accounts"))
    ctid = Ctid.objects.create(user_id=user_id, trader=trader)
    ctid_token_store(
        ctid=ctid,
        pair=TokenPair(
            str(issued["accessToken"]), str(issued["refreshToken"]), int(str(issued["expiresIn"])), "bearer"
        ),
        scope="accounts",
    )
    return ctid, issued


def stored(ctid: Ctid) -> CtidToken:
    return CtidToken.objects.get(ctid=ctid)


@pytest.fixture
def openapi(world: World, settings) -> Iterator[dict[str, OpenApiSimulator]]:
    """The Open API simulators, one per environment, on loopback ports, wired into settings."""
    sims: dict[str, OpenApiSimulator] = {}
    for env in ("live", "demo"):
        sim = OpenApiSimulator(
            world, env, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, heartbeat_interval=None
        )
        sim.start_in_thread()
        sims[env] = sim
    settings.CTRADER_CLIENT_ID = CLIENT_ID
    settings.CTRADER_CLIENT_SECRET = CLIENT_SECRET
    settings.CTRADER_OPENAPI_LIVE_URL = sims["live"].url
    settings.CTRADER_OPENAPI_DEMO_URL = sims["demo"].url
    settings.OPENAPI_REQUEST_TIMEOUT = 5.0
    yield sims
    for sim in sims.values():
        sim.stop()


def wait_for(predicate, timeout: float = 30.0) -> None:
    """Poll until the worker has done its part (not a timing assertion: only a bound on waiting)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the worker did not reach the expected state in time")
        time.sleep(0.05)


@pytest.fixture
def jobs_run_inline(monkeypatch):
    """Run queued cTID work at once in the test's thread and transaction, for tests of what the work does.

    The tests of where and when it runs (off the request, in a worker) are in test_off_request.py and do not
    use this.
    """
    from accounts.services import jobs

    monkeypatch.setattr(jobs, "_dispatch", lambda job_id: jobs.ctid_job_run(job_id=job_id))
    monkeypatch.setattr(
        jobs, "task_queue", lambda task, *args, **kwargs: task.apply(args=args, kwargs=kwargs)
    )
    monkeypatch.setattr(
        "accounts.admin.task_queue", lambda task, *args, **kwargs: task.apply(args=args, kwargs=kwargs)
    )
