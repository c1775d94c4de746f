"""Fixtures for account figures: the Open API and WebServices simulators on loopback, on ``world``.

A module of figures tests sets ``world_people`` to ``"figures"`` so that the World's open positions have known
P/L (tests.helpers.figures).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from accounts.ctrader.webservices import md5_hex
from sandbox.httpd import RunningServer, serve
from sandbox.openapi_server import OpenApiSimulator
from sandbox.webservices_server import WebServicesSim
from sandbox.world import World
from tests.helpers.ctrader import CLIENT_ID, CLIENT_SECRET
from tests.helpers.figures import MANAGER_LOGIN, MANAGER_PASSWORD


@pytest.fixture
def figures_openapi(world: World, settings: Any) -> Iterator[dict[str, OpenApiSimulator]]:
    sims = {}
    for environment in ("live", "demo"):
        sim = OpenApiSimulator(
            world, environment, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, heartbeat_interval=None
        )  # type: ignore[arg-type]
        sim.start_in_thread()
        sims[environment] = sim
    settings.CTRADER_CLIENT_ID = CLIENT_ID
    settings.CTRADER_CLIENT_SECRET = CLIENT_SECRET
    settings.CTRADER_OPENAPI_LIVE_URL = sims["live"].url
    settings.CTRADER_OPENAPI_DEMO_URL = sims["demo"].url
    settings.OPENAPI_REQUEST_TIMEOUT = 5.0
    yield sims
    for sim in sims.values():
        sim.stop()


@pytest.fixture
def figures_webservices(
    world: World, settings: Any
) -> Iterator[dict[str, tuple[WebServicesSim, RunningServer]]]:
    running = {}
    for environment in ("live", "demo"):
        state = WebServicesSim(world, environment, {MANAGER_LOGIN: md5_hex(MANAGER_PASSWORD)}, hang_seconds=3)
        server = serve(state.routes("/ws"))
        running[environment] = (state, server)
        upper = environment.upper()
        setattr(settings, f"CTRADER_WEBSERVICES_{upper}_URL", f"{server.url}/ws")
        setattr(settings, f"CTRADER_MANAGER_{upper}_LOGIN", str(MANAGER_LOGIN))
        setattr(settings, f"CTRADER_MANAGER_{upper}_PASSWORD", MANAGER_PASSWORD)
    settings.HTTP_READ_TIMEOUT = 3.0
    yield running
    for state, server in running.values():
        state.release_hangs()
        server.stop()
