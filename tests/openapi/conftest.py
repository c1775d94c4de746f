"""Fixtures for the Open API client, simulator and gateway: real WebSocket servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.openapi_server import OpenApiSimulator
from sandbox.world import Grant, SimAccount, World

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret-value"


@pytest.fixture
def world() -> World:
    world = World()
    world.add_ctid(
        9100001,
        "Ann",
        [
            SimAccount(61000001, 7100001, True, "BROKER-EU", "Broker EU", 1_250_050, 2, "EUR"),
            SimAccount(61000002, 7100002, False, "BROKER-EU", "Broker EU", 10_000_000, 2, "USD"),
            SimAccount(61000003, 7100003, True, "BROKER-INTL", "Broker Intl", 52_015_000_000, 8, "USD"),
        ],
    )
    return world


def issue(world: World, user_id: int, scope: str = "accounts") -> dict[str, object]:
    """Tokens for every account of a simulated cTID, as a consent ticking all of them would give."""
    with world.lock:
        account_ids = tuple(a.ctid_trader_account_id for a in world.ctids[user_id].accounts)
    return world.issue_tokens(Grant(user_id, account_ids, scope))


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
