"""Benchmark of the gateway on several processes: real `manage.py openapi_gateway` processes, PostgreSQL
leases, the loopback Open API simulator.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres DEBUG=1 .venv/bin/python bench/bench_gateway_scale.py

It creates a scratch database ``bench_gateway_<pid>`` (dropped at the end) with BENCH_ACCOUNTS cTIDs of one
live account each, and prints, each against its floor:

1. one process: time to authorize every account after a ProtoOAClientDisconnectEvent, against
   accounts / limit (the floor the per-connection rate limit sets); its memory (RSS) and CPU at steady
   state (a Django process is about 90 MiB before it holds anything); the CPU per incremental change picked
   up (a token rotation of one cTID through the change feed): run with BENCH_ACCOUNTS=1000 and 10000 to
   see that it does not grow with the number of accounts held;
2. four processes (one connection each) after a ClientDisconnect on every connection: against
   accounts / (limit x 4); and the ratio of the two recoveries;
3. kill -9 of one of the four: time until its accounts are authorized elsewhere, against
   lease time + its share / limit;
4. the sync of one cTID with 300 accounts against the pacing floor (requests / limit).

The limit is BENCH_LIMIT requests/s per connection (default 100, to keep the run within a few minutes;
Spotware's is 50; the pacer aims 10% below it), the lease BENCH_LEASE seconds (default 10).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import scratch_database  # noqa: E402

ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", "10000"))
LIMIT = int(os.environ.get("BENCH_LIMIT", "100"))
LEASE = float(os.environ.get("BENCH_LEASE", "10"))
SYNC_ACCOUNTS = int(os.environ.get("BENCH_SYNC_ACCOUNTS", "300"))
# BENCH_PHASES=1: only the one-process part (memory, CPU, change cost, recovery), e.g. to compare sizes.
PHASES = os.environ.get("BENCH_PHASES", "1,2,3,4")
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
FIRST = 70_000_000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait(predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - start


def run() -> None:
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientarea.settings")
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    import logging
    from datetime import timedelta

    from asgiref.sync import async_to_sync
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Ctid, CtidToken, GatewayProcess, Trader, TradingAccount
    from accounts.services import sync as sync_service
    from clientarea import crypto
    from sandbox.openapi_server import OpenApiSimulator
    from sandbox.world import Grant, SimAccount, World

    logging.getLogger("websockets").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)
    world = World()
    world.add_ctid(
        1,
        "Bench",
        [SimAccount(FIRST + i, 900_000 + i, True, "B", "B", 1000, 2, "EUR") for i in range(ACCOUNTS)],
    )
    token = str(
        world.issue_tokens(Grant(1, tuple(FIRST + i for i in range(ACCOUNTS)), "accounts"))["accessToken"]
    )
    sim = OpenApiSimulator(
        world, "live", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, heartbeat_interval=10
    )
    sim.start_in_thread()

    started = time.perf_counter()
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"b{i}", password="!") for i in range(ACCOUNTS)], batch_size=5000
    )
    traders = Trader.objects.bulk_create([Trader(user=u) for u in users], batch_size=5000)
    ctids = Ctid.objects.bulk_create(
        [Ctid(user_id=20_000_000 + i, trader=t) for i, t in enumerate(traders)], batch_size=5000
    )
    expires = timezone.now() + timedelta(days=25)
    CtidToken.objects.bulk_create(
        [CtidToken(ctid=c, access_token="x", refresh_token="x", expires_at=expires) for c in ctids],
        batch_size=5000,
    )
    TradingAccount.objects.bulk_create(
        [
            TradingAccount(ctid_trader_account_id=FIRST + i, ctid=c, login=900_000 + i, is_live=True)
            for i, c in enumerate(ctids)
        ],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_ctidtoken SET access_token = %s, refresh_token = %s",
            [crypto.encrypt(token), crypto.encrypt("unused")],
        )
        cursor.execute("DELETE FROM accounts_gatewaychange")
        cursor.execute("ANALYZE")
    print(
        f"{ACCOUNTS:,} cTIDs of one live account each, created in {time.perf_counter() - started:.1f} s; "
        f"limit {LIMIT}/s per connection, lease {LEASE:.0f} s"
    )

    env = {
        **os.environ,
        "TOKEN_ENCRYPTION_KEYS": ",".join(settings.TOKEN_ENCRYPTION_KEYS),
        "CTRADER_CLIENT_ID": CLIENT_ID,
        "CTRADER_CLIENT_SECRET": CLIENT_SECRET,
        "CTRADER_OPENAPI_LIVE_URL": sim.url,
        "OPENAPI_MAX_REQUESTS_PER_SECOND": str(LIMIT),
        "OPENAPI_GATEWAY_LEASE_SECONDS": str(LEASE),
        "OPENAPI_GATEWAY_REBALANCE_BATCH": "500",
        "OPENAPI_DB_POLL_SECONDS": "1",
        "LOG_LEVEL": "ERROR",
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "openapi_gateway", "--environment", "live"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        return process

    def authorized() -> int:
        return len(sim.authorized_accounts())

    effective = int(LIMIT * 0.9)
    try:
        # --- 1. one process ---
        one = start()
        took = wait(
            lambda: authorized() == ACCOUNTS, ACCOUNTS / effective * 3 + 60, "the first authorization"
        )
        print(f"\n1. one process: first authorization of {ACCOUNTS:,} accounts in {took:.1f} s")
        time.sleep(3)
        cpu0, t0 = cpu_seconds(one.pid), time.monotonic()
        time.sleep(10)
        steady = (cpu_seconds(one.pid) - cpu0) / (time.monotonic() - t0)
        rss = rss_mib(one.pid)
        print(
            f"   steady state holding {ACCOUNTS:,} accounts: {rss:.0f} MiB RSS (a bare Django process is about "
            f"90 MiB), CPU {steady * 100:.2f}% of a core"
        )

        def change_cost(count: int, among: int) -> float:
            """CPU of the gateway per token rotation picked up from the change feed."""
            ids = list(Ctid.objects.order_by("pk").values_list("pk", flat=True)[:among])[
                :: max(among // count, 1)
            ][:count]
            base0, b0 = cpu_seconds(one.pid), time.monotonic()
            time.sleep(5)
            idle = (cpu_seconds(one.pid) - base0) / (time.monotonic() - b0)
            c0, w0 = cpu_seconds(one.pid), time.monotonic()
            for pk in ids:
                CtidToken.objects.filter(ctid_id=pk).update(version=models_f("version") + 1)
                time.sleep(0.02)
            time.sleep(3)
            spent = cpu_seconds(one.pid) - c0 - idle * (time.monotonic() - w0)
            return max(spent, 0.0) / len(ids)

        from django.db.models import F as models_f

        per_change = change_cost(200, ACCOUNTS)
        print(
            f"   CPU per incremental change picked up: {per_change * 1e3:.2f} ms "
            f"(200 token rotations among {ACCOUNTS:,} held accounts)"
        )

        if "2" not in PHASES:
            return
        sim.clear_received()
        t0 = time.monotonic()
        sim.client_disconnect("bench")
        took_one = wait(lambda: authorized() == ACCOUNTS, ACCOUNTS / effective * 3 + 60, "re-authorization")
        floor_one = ACCOUNTS / LIMIT
        print(
            f"   after ClientDisconnect: all {ACCOUNTS:,} authorized again in {took_one:.1f} s; "
            f"floor {floor_one:.1f} s; ratio {took_one / floor_one:.2f}x"
        )

        # --- 2. four processes ---
        for _ in range(3):
            start()
        took = wait(
            lambda: sorted(GatewayProcess.objects.values_list("ctids_held", flat=True)) == [ACCOUNTS // 4] * 4
            and authorized() == ACCOUNTS
            and len(sim.connection_ids()) == 4,
            600,
            "the rebalance to four processes",
        )
        print(
            f"\n2. three processes joined: shares {ACCOUNTS // 4:,} each after {took:.1f} s, "
            f"double holds seen by the simulator: {len(sim.double_holds)}"
        )
        time.sleep(2)
        sim.client_disconnect("bench")
        took_four = wait(
            lambda: authorized() == ACCOUNTS, ACCOUNTS / effective + 120, "re-authorization on four"
        )
        floor_four = ACCOUNTS / (LIMIT * 4)
        print(
            f"   after ClientDisconnect on every connection: all authorized again in {took_four:.1f} s; "
            f"floor {floor_four:.1f} s; ratio {took_four / floor_four:.2f}x"
        )
        print(f"   four processes against one: {took_one / took_four:.2f}x faster")

        # --- 3. kill -9 ---
        time.sleep(2)
        victim = processes[1]
        share = ACCOUNTS // 4
        t0 = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        wait(lambda: authorized() <= ACCOUNTS - share, 10, "the victim's sessions to end")
        took_kill = (
            time.monotonic() - t0 + wait(lambda: authorized() == ACCOUNTS, LEASE + 120, "the take-over")
        )
        floor_kill = LEASE + share / (LIMIT * 3)
        print(
            f"\n3. kill -9 of one of four: its {share:,} accounts authorized elsewhere after {took_kill:.1f} s; "
            f"floor (lease + share / (limit x 3 survivors)) {floor_kill:.1f} s; ratio {took_kill / floor_kill:.2f}x; "
            f"double holds: {len(sim.double_holds)}"
        )
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    if "4" not in PHASES:
        sim.stop()
        connection.close()
        return
    # --- 4. sync of one cTID with 300 accounts ---
    world.add_ctid(
        2,
        "Large",
        [SimAccount(FIRST + ACCOUNTS + i, 1, True, "B", "B", 1000, 2, "EUR") for i in range(SYNC_ACCOUNTS)],
    )
    large = str(
        world.issue_tokens(Grant(2, tuple(FIRST + ACCOUNTS + i for i in range(SYNC_ACCOUNTS)), "accounts"))[
            "accessToken"
        ]
    )
    settings.CTRADER_CLIENT_ID, settings.CTRADER_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
    settings.CTRADER_OPENAPI_LIVE_URL = settings.CTRADER_OPENAPI_DEMO_URL = sim.url
    sim_limit = 50
    original = sync_service._connect

    async def connect_at(is_live: bool):  # type: ignore[no-untyped-def]
        from accounts.ctrader.openapi.client import OpenApiConnection

        return await OpenApiConnection.connect(
            sim.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, max_requests_per_second=sim_limit
        )

    sync_service._connect = connect_at  # type: ignore[assignment]
    sim.clear_received()
    t0 = time.monotonic()
    fetched = async_to_sync(sync_service._fetch)(large)
    took_sync = time.monotonic() - t0
    sync_service._connect = original  # type: ignore[assignment]
    requests = len([r for r in sim.received() if r.payload_type not in (51, 2100)])
    floor_sync = requests / sim_limit
    print(
        f"\n4. sync of one cTID with {len(fetched)} accounts at {sim_limit}/s: {requests} requests in "
        f"{took_sync:.1f} s; floor {floor_sync:.1f} s; ratio {took_sync / floor_sync:.2f}x "
        f"(the pacer's 10% margin alone makes it 1.11x)"
    )
    sim.stop()
    connection.close()


def main() -> None:
    with scratch_database("bench_gateway"):
        run()


if __name__ == "__main__":
    main()
