"""Several real gateway processes against the simulators and PostgreSQL: each cTID is held by exactly one
process, a killed process's cTIDs are taken over within the lease time, and a joining process gets its share
without an account ever being authorized on two connections at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import GatewayAssignment, GatewayProcess
from sandbox.openapi_server import OpenApiSimulator
from sandbox.world import SimAccount, World
from tests.helpers.ctrader import CLIENT_ID, CLIENT_SECRET, link_ctid

from .test_gateway import wait_db

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parents[4]
CTIDS = 24
LEASE_SECONDS = 3.0


@pytest.fixture
def accounts(world: World) -> tuple[set[int], set[int]]:
    """24 cTIDs, each with one live and one demo account."""
    live: set[int] = set()
    demo: set[int] = set()
    for n in range(CTIDS):
        user_id = 9300000 + n
        pair = [
            SimAccount(63000000 + 2 * n, 8300000 + 2 * n, True, "BROKER-EU", "Broker EU", 100_000, 2, "EUR"),
            SimAccount(63000001 + 2 * n, 8300001 + 2 * n, False, "BROKER-EU", "Broker EU", 100_000, 2, "EUR"),
        ]
        world.add_ctid(user_id, f"Trader {n}", pair)
        link_ctid(world, user_id, username=f"multi{n}")
        live.add(pair[0].ctid_trader_account_id)
        demo.add(pair[1].ctid_trader_account_id)
    return live, demo


@pytest.fixture
def start_process(
    live_sim: OpenApiSimulator, demo_sim: OpenApiSimulator
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TOKEN_ENCRYPTION_KEYS": ",".join(settings.TOKEN_ENCRYPTION_KEYS),
        "CTRADER_CLIENT_ID": CLIENT_ID,
        "CTRADER_CLIENT_SECRET": CLIENT_SECRET,
        "CTRADER_OPENAPI_LIVE_URL": live_sim.url,
        "CTRADER_OPENAPI_DEMO_URL": demo_sim.url,
        "OPENAPI_GATEWAY_LEASE_SECONDS": str(LEASE_SECONDS),
        "OPENAPI_GATEWAY_REBALANCE_BATCH": "2",
        "OPENAPI_DB_POLL_SECONDS": "0.5",
    }
    env.pop("REDIS_URL", None)
    processes: list[subprocess.Popen[bytes]] = []
    logs = tempfile.TemporaryDirectory()

    def start() -> subprocess.Popen[bytes]:
        log = open(Path(logs.name) / f"gateway-{len(processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "manage.py", "openapi_gateway"], cwd=BASE_DIR, env=env, stdout=log, stderr=log
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    logs.cleanup()


def each_held_once(sim: OpenApiSimulator, expected: set[int]) -> bool:
    """Every expected account authorized, on exactly one connection."""
    held: list[int] = []
    for connection_id in sim.connection_ids():
        held.extend(sim.authorized_accounts(connection_id))
    return sorted(held) == sorted(expected)


def shares() -> list[int]:
    return sorted(p.assignments.count() for p in GatewayProcess.objects.all())


def test_three_processes_divide_the_ctids_and_hold_each_account_exactly_once(
    accounts: tuple[set[int], set[int]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    start_process: Callable[[], subprocess.Popen[bytes]],
) -> None:
    live, demo = accounts
    started = [start_process() for _ in range(3)]
    wait_db(lambda: shares() == [8, 8, 8], timeout=120)
    live_sim.wait_until(lambda: each_held_once(live_sim, live), timeout=90)
    demo_sim.wait_until(lambda: each_held_once(demo_sim, demo), timeout=90)

    assert GatewayAssignment.objects.count() == CTIDS
    assert len(live_sim.connection_ids()) == len(demo_sim.connection_ids()) == 3
    assert live_sim.double_holds == []
    assert demo_sim.double_holds == []
    # A cTID's live and demo accounts stay in one process: 8 cTIDs, 16 accounts, all authorized, each.
    wait_db(
        lambda: sorted(
            (p.ctids_held, p.accounts_held, p.accounts_authorized) for p in GatewayProcess.objects.all()
        )
        == [(8, 16, 16)] * 3
    )
    # Staff see every process on the status API.
    from django.contrib.auth import get_user_model
    from django.test import Client

    staff = get_user_model().objects.create_user("ops", password="x-Pass-123", is_staff=True)
    client = Client()
    client.force_login(staff)
    report = client.get("/api/v1/gateway/status/").json()
    assert sorted(p["pid"] for p in report["processes"]) == sorted(pr.pid for pr in started)
    for process in report["processes"]:
        assert process["alive"]
        assert process["ctids_held"] == 8
        assert process["accounts_authorized"] == 16
        assert set(process["connections"]) == {"live", "demo"}
        assert process["connections"]["live"]["state"] == "connected"


def test_a_killed_process_is_taken_over_within_the_lease_time(
    accounts: tuple[set[int], set[int]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    start_process: Callable[[], subprocess.Popen[bytes]],
) -> None:
    live, demo = accounts
    victims = [start_process() for _ in range(3)]
    wait_db(lambda: shares() == [8, 8, 8], timeout=120)
    live_sim.wait_until(lambda: each_held_once(live_sim, live), timeout=90)
    demo_sim.wait_until(lambda: each_held_once(demo_sim, demo), timeout=90)

    killed_at = time.monotonic()
    os.kill(victims[0].pid, signal.SIGKILL)
    live_sim.wait_until(lambda: len(live_sim.connection_ids()) == 2, timeout=5)
    live_sim.wait_until(lambda: each_held_once(live_sim, live), timeout=LEASE_SECONDS + 30)
    demo_sim.wait_until(lambda: each_held_once(demo_sim, demo), timeout=30)
    took = time.monotonic() - killed_at

    # The lease, a lease tick to notice, then 12 accounts re-authorized (the bound allows for a loaded machine).
    assert took <= LEASE_SECONDS + 10, f"take-over took {took:.1f} s"
    assert shares() == [12, 12]
    assert live_sim.double_holds == []
    assert demo_sim.double_holds == []


def test_a_joining_process_gets_its_share_gradually_without_a_double_hold(
    accounts: tuple[set[int], set[int]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    start_process: Callable[[], subprocess.Popen[bytes]],
) -> None:
    live, demo = accounts
    start_process()
    wait_db(lambda: shares() == [CTIDS], timeout=120)
    live_sim.wait_until(lambda: each_held_once(live_sim, live), timeout=90)
    demo_sim.wait_until(lambda: each_held_once(demo_sim, demo), timeout=90)

    start_process()
    seen: set[tuple[int, ...]] = set()

    def balanced() -> bool:
        seen.add(tuple(shares()))
        return shares() == [12, 12]

    wait_db(balanced, timeout=120)
    live_sim.wait_until(lambda: each_held_once(live_sim, live), timeout=90)
    demo_sim.wait_until(lambda: each_held_once(demo_sim, demo), timeout=90)

    assert live_sim.double_holds == []
    assert demo_sim.double_holds == []
    # Gradual: the newcomer's share grew in steps of the rebalance batch (2), not all at once.
    assert len({min(s) for s in seen if len(s) == 2}) >= 3


def test_changes_are_picked_up_from_the_change_feed(
    world: World,
    accounts: tuple[set[int], set[int]],
    live_sim: OpenApiSimulator,
    demo_sim: OpenApiSimulator,
    start_process: Callable[[], subprocess.Popen[bytes]],
) -> None:
    from accounts.models import GatewayChange, Trader

    live, _demo = accounts
    start_process()
    live_sim.wait_until(lambda: each_held_once(live_sim, live), timeout=120)

    # A new cTID: claimed by the next lease tick and authorized.
    world.add_ctid(
        9399999, "Late", [SimAccount(63999999, 8399999, True, "BROKER-EU", "Broker EU", 5_000, 2, "EUR")]
    )
    link_ctid(world, 9399999, username="late")
    live_sim.wait_until(lambda: each_held_once(live_sim, live | {63999999}), timeout=30)

    # A suspension: the trigger lists the cTID, the gateway reloads it alone and logs its account out.
    changes_before = GatewayChange.objects.count()
    Trader.objects.filter(user__username="late").update(suspended=True, suspended_at="2026-01-01T00:00Z")
    assert GatewayChange.objects.count() == changes_before + 1
    live_sim.wait_until(lambda: each_held_once(live_sim, live), timeout=30)
