"""Fixtures for the cTID area: the Open API simulators on loopback, on the shared simulated world.

``world`` and ``ctrader_id`` come from tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.httpd import RunningServer, serve
from sandbox.openapi_server import OpenApiSimulator
from sandbox.world import World
from tests.helpers.ctrader import CLIENT_ID, CLIENT_SECRET


@pytest.fixture
def token_server() -> Iterator[RunningServer]:
    """A bare loopback HTTP server; tests add scripted routes."""
    server = serve([])
    yield server
    server.stop()


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


@pytest.fixture
def jobs_run_inline(monkeypatch):
    """Run queued cTID work at once in the test's thread and transaction, for tests of what the work does.

    The tests of where and when it runs (off the request, in a worker), in
    tests/accounts/services/test_off_request.py, do not use this.
    """
    from accounts.services import jobs

    monkeypatch.setattr(jobs, "_dispatch", lambda job_id: jobs.ctid_job_run(job_id=job_id))
    monkeypatch.setattr(
        jobs, "task_queue", lambda task, *args, **kwargs: task.apply(args=args, kwargs=kwargs)
    )
    monkeypatch.setattr(
        "accounts.admin.task_queue", lambda task, *args, **kwargs: task.apply(args=args, kwargs=kwargs)
    )
