"""Fixtures for the Open API client, simulator and gateway: real WebSocket servers on loopback.

The simulated world here holds Ann (``world_people``); ``world`` and ``ctrader_id`` come from tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.ctrader_id import CtraderIdSimulator
from sandbox.openapi_server import OpenApiSimulator
from sandbox.world import World
from tests.helpers.ctrader import CLIENT_ID, CLIENT_SECRET
from tests.helpers.gateway import GatewayRunner, gateway_config_for_tests


@pytest.fixture
def world_people() -> str:
    return "ann"


def _start(world: World, environment: str, heartbeat: float | None) -> OpenApiSimulator:
    sim = OpenApiSimulator(
        world,
        environment,  # type: ignore[arg-type]
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        heartbeat_interval=heartbeat,
    )
    sim.start_in_thread()
    return sim


@pytest.fixture
def live_sim(world: World) -> Iterator[OpenApiSimulator]:
    sim = _start(world, "live", None)
    yield sim
    sim.stop()


@pytest.fixture
def demo_sim(world: World) -> Iterator[OpenApiSimulator]:
    sim = _start(world, "demo", None)
    yield sim
    sim.stop()


@pytest.fixture
def start_gateway(
    live_sim: OpenApiSimulator, demo_sim: OpenApiSimulator, ctrader_id: CtraderIdSimulator
) -> Iterator[Callable[..., GatewayRunner]]:
    runners: list[GatewayRunner] = []

    def start(urls: dict[str, str] | None = None, store: Any = None, **overrides: Any) -> GatewayRunner:
        runner = GatewayRunner(
            urls or {"live": live_sim.url, "demo": demo_sim.url}, gateway_config_for_tests(**overrides), store
        ).start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()
