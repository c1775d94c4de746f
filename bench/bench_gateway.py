"""Benchmark of the Open API gateway against the simulator (in a separate process), over loopback.

1. 1,000 accounts authorized on one connection, then ProtoOAClientDisconnectEvent: the time until all are
   authorized again, against the floor set by the rate limit (accounts / limit per second).
2. The gateway's CPU time per message at a steady 50 ProtoOATraderUpdatedEvent per second (net of the
   gateway's idle CPU over the same time).

The gateway runs with an in-memory store, so the figures are the protocol and event handling cost, without
database writes. Run (about 1.5 minutes):

    DEBUG=1 .venv/bin/python bench/bench_gateway.py [--accounts 1000] [--limit 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Hashable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientarea.settings")

from accounts.ctrader.openapi.client import TraderInfo
from accounts.ctrader.openapi.gateway import (
    AccountTarget,
    Environment,
    Gateway,
    GatewayConfig,
    TokenRenewal,
)
from accounts.ctrader.openapi.messages import PayloadType

CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
FIRST_ACCOUNT = 80_000_000


def simulator_process(pipe: Connection, accounts: int) -> None:
    """The simulated Open API host, driven by commands over a pipe."""
    from sandbox.openapi_server import OpenApiSimulator
    from sandbox.world import Grant, SimAccount, World

    world = World()
    sim_accounts = [
        SimAccount(FIRST_ACCOUNT + i, 9_000_000 + i, True, "BENCH-BROKER", "Bench", 1_000_00 + i, 2, "USD")
        for i in range(accounts)
    ]
    world.add_ctid(5_000_001, "bench", sim_accounts)
    tokens = world.issue_tokens(
        Grant(5_000_001, tuple(a.ctid_trader_account_id for a in sim_accounts), "accounts")
    )
    sim = OpenApiSimulator(
        world, "live", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, heartbeat_interval=None
    )
    url = sim.start_in_thread()
    pipe.send((url, tokens["accessToken"]))
    while True:
        command, arg = pipe.recv()
        if command == "authorized":
            pipe.send(len(sim.authorized_accounts()))
        elif command == "client_disconnect":
            sim.clear_received()
            sim.client_disconnect("bench")
            pipe.send(None)
        elif command == "auth_times":
            pipe.send([r.at for r in sim.received(PayloadType.ACCOUNT_AUTH_REQ)])
        elif command == "trader_updates":
            count, rate = arg
            start = time.monotonic()
            for i in range(count):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sim.trader_updated(FIRST_ACCOUNT + i % accounts)
            pipe.send(time.monotonic() - start)
        elif command == "stop":
            sim.stop()
            pipe.send(None)
            return


class MemoryStore:
    def __init__(self, targets: dict[int, AccountTarget]) -> None:
        self.targets = targets
        self.balances: dict[int, Any] = {}
        self.trader_saves = 0

    async def snapshot(self) -> Hashable:
        return len(self.targets)

    async def load_targets(self, environment: Environment) -> dict[int, AccountTarget]:
        return dict(self.targets)

    async def load_target(self, ctid_trader_account_id: int) -> AccountTarget | None:
        return self.targets.get(ctid_trader_account_id)

    async def refresh_token(self, *, ctid_id: int, seen_version: int, reason: str) -> TokenRenewal:
        return TokenRenewal.TRANSIENT

    async def mark_ctid_needs_reconnect(self, *, ctid_id: int, reason: str) -> None:
        pass

    async def mark_account(self, *, ctid_trader_account_id: int, status: str, reason: str) -> None:
        pass

    async def save_trader(self, *, info: TraderInfo, currency: str) -> None:
        self.trader_saves += 1
        self.balances[info.ctid_trader_account_id] = info.balance

    async def save_status(self, *, environment: Environment, **fields: Any) -> None:
        pass

    async def alert(self, *, environment: Environment, action: str, message: str) -> None:
        pass


async def ask(pipe: Connection, command: str, arg: Any = None) -> Any:
    pipe.send((command, arg))
    return await asyncio.to_thread(pipe.recv)


async def wait_authorized(pipe: Connection, count: int, timeout: float) -> float:
    start = time.monotonic()
    while await ask(pipe, "authorized") < count:
        if time.monotonic() - start > timeout:
            raise SystemExit(f"not all {count} accounts were authorized within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=simulator_process, args=(child, args.accounts), daemon=True)
    process.start()
    url, access_token = await asyncio.to_thread(parent.recv)
    targets = {
        FIRST_ACCOUNT + i: AccountTarget(FIRST_ACCOUNT + i, 1, True, 1, access_token)
        for i in range(args.accounts)
    }
    store = MemoryStore(targets)
    config = GatewayConfig(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        max_requests_per_second=args.limit,
        heartbeat_interval=10.0,
        request_timeout=10.0,
        db_poll_seconds=3600,
        status_interval=1.0,
    )
    gateway = Gateway(store, config, {"live": url})  # type: ignore[arg-type]
    runner = asyncio.create_task(gateway.run())
    floor = args.accounts / args.limit
    try:
        initial = await wait_authorized(parent, args.accounts, floor * 3 + 30)
        print(f"accounts: {args.accounts}, limit: {args.limit}/s, floor: {floor:.2f} s")
        print(f"initial authorization: {initial:.2f} s ({initial / floor:.3f}x floor)")

        started = time.monotonic()
        saves_at_disconnect = store.trader_saves
        await ask(parent, "client_disconnect")
        await wait_authorized(parent, args.accounts, floor * 3 + 30)
        again = time.monotonic() - started
        times = sorted(await ask(parent, "auth_times"))
        wave = times[-1] - times[0] if times else 0.0
        print(
            f"after ClientDisconnectEvent: all authorized again in {again:.2f} s "
            f"= {again / floor:.3f}x floor (includes the reconnect backoff)"
        )
        print(f"  account-auth wave on the new connection: {wave:.2f} s = {wave / floor:.3f}x floor")

        # Let the trader reads that follow the re-authorization drain before measuring the steady state.
        deadline = time.monotonic() + floor * 2 + 30
        while store.trader_saves < saves_at_disconnect + args.accounts and time.monotonic() < deadline:
            await asyncio.sleep(0.2)

        rate, count = 50, 50 * args.seconds
        idle_cpu = time.process_time()
        await asyncio.sleep(args.seconds)
        idle_cpu = time.process_time() - idle_cpu
        saves_before, cpu_before = store.trader_saves, time.process_time()
        elapsed = await ask(parent, "trader_updates", (count, rate))
        deadline = time.monotonic() + 10
        while store.trader_saves < saves_before + count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        busy_cpu = time.process_time() - cpu_before
        handled = store.trader_saves - saves_before
        net = max(busy_cpu - idle_cpu * (elapsed / args.seconds), 0.0)
        print(
            f"steady {rate} msg/s for {elapsed:.1f} s: {handled}/{count} TraderUpdated handled; "
            f"gateway CPU {busy_cpu * 1000:.1f} ms (idle {idle_cpu * 1000:.1f} ms per {args.seconds} s); "
            f"{net / max(handled, 1) * 1e6:.0f} us CPU per message, "
            f"{net / elapsed * 100:.2f}% of one core"
        )
    finally:
        gateway.stop()
        await asyncio.wait_for(runner, 30)
        await ask(parent, "stop")
        process.join(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
