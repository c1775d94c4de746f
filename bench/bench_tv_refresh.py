"""Benchmark of TradingView's refresh grant (``POST /tradingview/oauth/token``, ``grant_type=refresh_token``).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_tv_refresh.py

It creates a scratch database ``bench_tv_refresh_<pid>`` on the same PostgreSQL server (dropped at the end),
links BENCH_LINKS traders to a TradingView client through the real consent and code exchange, starts the adapter
simulator in a subprocess on loopback, and then measures, in interleaved rounds in this one process (so every
figure shares the same machine state):

- bare: a POST to a view that answers a small JSON body, through the project's whole middleware stack;
- adapter: the adapter's ``/generate/token`` call alone, through our adapter client (pooled session);
- refresh: the token endpoint's refresh grant, each link rotating its own chain of refresh tokens.

It prints the medians, refreshes per second against the bare request and against the adapter call alone, the
CPU one refresh costs (this process: Django and the adapter client; the PostgreSQL backend serving it, read
from /proc), the SQL statements and encryptions of one refresh, and what 100,000 linked traders refreshing
every ``expires_in`` cost in cores. Options: BENCH_LINKS (20), BENCH_ROUNDS (7), BENCH_PER_ROUND (60),
BENCH_PROFILE (1: first print where 200 refreshes spend their CPU),
BENCH_LATENCY_MS (0: adapter latency added to every answer).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe, python_speed_us  # noqa: E402
from bench.scratch import scratch_database  # noqa: E402

LINKS = int(os.environ.get("BENCH_LINKS", "20"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
PER_ROUND = int(os.environ.get("BENCH_PER_ROUND", "60"))
LATENCY_MS = float(os.environ.get("BENCH_LATENCY_MS", "0"))
BEARER = "bench-broker-bearer"
REDIRECT_URI = "https://tv.bench.example/callback"
TRADERS = 100_000
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_adapter(port: int, latency: float) -> None:
    """The adapter simulator, in its own process (its CPU is not this process's)."""
    from sandbox.adapter import AdapterSim, routes
    from sandbox.httpd import serve

    sim = AdapterSim(bearer=BEARER, latency=latency, record=False)
    serve(routes(bearer=BEARER, sim=sim), port=port)
    threading.Event().wait()


def proc_cpu_ms(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def run(adapter_url: str) -> None:
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    os.environ.pop("REDIS_URL", None)
    os.environ["TRADINGVIEW_ADAPTER_URL"] = adapter_url
    os.environ["TRADINGVIEW_ADAPTER_TOKEN"] = BEARER
    import django

    django.setup()

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from accounts.models import Ctid, Jurisdiction, Trader, TradingAccount
    from clientarea import crypto
    from tradingview import adapter
    from tradingview.services.clients import oauth_client_create

    call_command("migrate", verbosity=0)
    settings.ALLOWED_HOSTS = ["testserver"]

    # --- links: the real consent and code exchange ---
    jurisdiction = Jurisdiction.objects.create(
        broker_name="BENCHBROKER", display_name="Bench broker", tradingview_enabled=True
    )
    client, secret = oauth_client_create(name="bench", redirect_uris=[REDIRECT_URI])
    refresh_tokens: list[str] = []
    nonce = re.compile(rb'name="consent" value="([^"]+)"')
    for t in range(LINKS):
        user = get_user_model().objects.create_user(username=f"bench{t}", password=None)
        trader = Trader.objects.create(user=user, kyc_verified=True, kyc_verified_at=timezone.now())
        ctid = Ctid.objects.create(user_id=5_000_000 + t, trader=trader)
        accounts = TradingAccount.objects.bulk_create(
            TradingAccount(
                ctid=ctid,
                ctid_trader_account_id=700_000_000 + t * 10 + i,
                login=1000 + i,
                is_live=i == 0,
                jurisdiction=jurisdiction,
            )
            for i in range(2)
        )
        browser = Client()
        browser.force_login(user)
        params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT_URI}
        page = browser.get("/tradingview/oauth/authorize", params)
        match = nonce.search(page.content)
        assert match, page.status_code
        consent = browser.post(
            "/tradingview/oauth/authorize",
            {"consent": match.group(1).decode(), "action": "allow", "accounts": [a.pk for a in accounts]},
        )
        code = parse_qs(urlsplit(consent["Location"]).query)["code"][0]
        answer = _token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "client_id": client.client_id,
                "client_secret": secret,
            }
        )
        refresh_tokens.append(answer["refresh_token"])

    api = Client()
    cursor_index = [0]

    def bare() -> None:
        response = api.post(
            "/bench/bare", urlencode({"x": "1"}), content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 200

    def adapter_alone() -> None:
        adapter.generate_token(
            user_id=5_000_000,
            broker_names=["BENCHBROKER"],
            ctid_trader_account_ids=[700_000_000],
            is_verified=True,
        )

    def refresh() -> None:
        i = cursor_index[0] % LINKS
        cursor_index[0] += 1
        # TradingView sends only the secret with a refresh.
        answer = _token(
            {"grant_type": "refresh_token", "refresh_token": refresh_tokens[i], "client_secret": secret}
        )
        refresh_tokens[i] = answer["refresh_token"]

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]

    # --- statements and encryptions of one refresh ---
    encryptions = [0]
    original_encrypt = crypto.encrypt

    def counting_encrypt(value: str) -> str:
        encryptions[0] += 1
        return original_encrypt(value)

    crypto.encrypt = counting_encrypt  # type: ignore[assignment]
    with CaptureQueriesContext(connection) as ctx:
        refresh()
    crypto.encrypt = original_encrypt  # type: ignore[assignment]
    statements = [q["sql"].split(" ", 1)[0] for q in ctx.captured_queries]

    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for _ in range(200):
            refresh()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)

    # --- interleaved rounds ---
    work = {"bare": bare, "adapter": adapter_alone, "refresh": refresh}
    for fn in work.values():  # warm up: connections, pools, imports
        for _ in range(10):
            fn()
    wall: dict[str, list[float]] = {k: [] for k in work}
    cpu: dict[str, list[float]] = {k: [] for k in work}
    db_cpu: dict[str, list[float]] = {k: [] for k in work}
    speed_before = python_speed_us()
    for _ in range(ROUNDS):
        for name, fn in work.items():
            cpu0, db0, t0 = time.process_time(), proc_cpu_ms(backend_pid), time.perf_counter()
            for _ in range(PER_ROUND):
                fn()
            wall[name].append((time.perf_counter() - t0) / PER_ROUND * 1000)
            cpu[name].append((time.process_time() - cpu0) / PER_ROUND * 1000)
            db_cpu[name].append((proc_cpu_ms(backend_pid) - db0) / PER_ROUND)

    # The floor a refresh's one durable commit sets on this server (its disk's flush), for reading the wall times.
    commits = []
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_commit (id int PRIMARY KEY, n int)")
        cursor.execute("INSERT INTO bench_commit VALUES (1, 0)")
        for _ in range(50):
            t0 = time.perf_counter()
            cursor.execute("UPDATE bench_commit SET n = n + 1 WHERE id = 1")
            commits.append((time.perf_counter() - t0) * 1000)

    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    med_db = {k: statistics.median(v) for k, v in db_cpu.items()}
    rate = {k: 1000 / v for k, v in med.items()}
    print(
        f"\nTradingView refresh grant: {LINKS} links, {ROUNDS} rounds x {PER_ROUND} calls each, "
        f"adapter latency {LATENCY_MS:.0f} ms (medians of the rounds)"
    )
    print(f"{'':10}{'ms/call':>10}{'calls/s':>10}{'CPU ms (this process)':>24}{'CPU ms (PostgreSQL)':>22}")
    for name in work:
        print(f"{name:10}{med[name]:>10.2f}{rate[name]:>10.0f}{med_cpu[name]:>24.2f}{med_db[name]:>22.2f}")
    print(
        f"\nrefreshes/s ÷ bare requests/s:      {rate['refresh'] / rate['bare']:.2f}x"
        f"\nrefreshes/s ÷ adapter calls alone/s: {rate['refresh'] / rate['adapter']:.2f}x"
    )
    print(
        f"statements per refresh: {len(statements)} ({', '.join(statements)}); "
        f"encryptions per refresh: {encryptions[0]} (the new adapter token and the new refresh token kept for "
        f"repeats)"
    )
    print(f"one durable autocommit UPDATE on this server: {statistics.median(commits):.2f} ms (median)")
    per_refresh_ms = med_cpu["refresh"] + med_db["refresh"]
    own_ms = per_refresh_ms - (med_cpu["adapter"] + med_db["adapter"])
    expires_in = settings.TRADINGVIEW_TOKEN_EXPIRES_IN
    per_second = TRADERS / expires_in
    print(
        f"CPU per refresh: {per_refresh_ms:.2f} ms (web {med_cpu['refresh']:.2f} + PostgreSQL "
        f"{med_db['refresh']:.2f}), of which the adapter client {med_cpu['adapter']:.2f} ms"
        f"\n{TRADERS:,} linked traders refreshing every expires_in ({expires_in} s) = {per_second:.1f} refreshes/s "
        f"= {per_second * per_refresh_ms / 1000:.2f} cores ({per_second * own_ms / 1000:.2f} without the adapter "
        f"client)"
    )
    print(describe(speed_before, python_speed_us()))
    connection.close()


_token_client = None


def _token(data: dict[str, str]) -> dict:
    global _token_client
    if _token_client is None:
        from django.test import Client

        _token_client = Client()
    response = _token_client.post(
        "/tradingview/oauth/token", urlencode(data), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200, response.content
    return response.json()


def main() -> None:
    port = free_port()
    server = multiprocessing.Process(target=serve_adapter, args=(port, LATENCY_MS / 1000), daemon=True)
    server.start()
    try:
        with scratch_database("bench_tv_refresh"):
            run(f"http://127.0.0.1:{port}/adapter")
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
