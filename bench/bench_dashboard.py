"""Benchmark of the trader's dashboard and account list API with 200 accounts (in-process, production settings).

Prints, side by side in one run, the median time of the dashboard and of one 200-item page of
``/api/v1/accounts/`` for a trader with 200 accounts (each with figures) and for one with 20, the statements
each makes (constant in the number of accounts), and each time divided by the 15 ms target and by a bare
request through the same middleware and session sign-in (the floor any page pays on this machine, so the
ratio still means something when the machine is busy). The requests take turns in rounds, so a burst of load
from elsewhere falls on all of them alike. Run (``DATABASE_URL`` names the PostgreSQL server: the benchmark
works in a database of its own, created and migrated at the start and dropped at the end, bench/scratch.py):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres DEBUG=1 .venv/bin/python bench/bench_dashboard.py

Options: --rounds N (requests per measurement, default 60).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe, python_speed_us  # noqa: E402
from bench.scratch import scratch_database  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("LOG_FORMAT", "plain")

PREFIX = "bench-dash-"


def setup_trader(accounts: int):  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.models import AccountFigures, Ctid, Jurisdiction, Trader, TradingAccount

    jurisdiction, _ = Jurisdiction.objects.get_or_create(
        broker_name=f"{PREFIX}BROKER", defaults={"display_name": "Bench broker", "tradingview_enabled": True}
    )
    user = get_user_model().objects.create_user(username=f"{PREFIX}{secrets.token_hex(6)}", password=None)
    trader = Trader.objects.create(user=user, kyc_verified=True, kyc_verified_at=timezone.now())
    base = 8_000_000_000 + secrets.randbelow(10**8) * 1000
    now = timezone.now()
    rows = []
    for c in range(2):
        ctid = Ctid.objects.create(user_id=base + c * 500, trader=trader)
        rows += TradingAccount.objects.bulk_create(
            TradingAccount(
                ctid=ctid,
                ctid_trader_account_id=base + c * 500 + i + 1,
                login=100_000 + c * 500 + i,
                is_live=i % 2 == 0,
                jurisdiction=jurisdiction,
                balance=Decimal("10250.75") + i,
                currency="USD" if i % 3 else "EUR",
                balance_updated_at=now,
            )
            for i in range(accounts // 2)
        )
    AccountFigures.objects.bulk_create(
        AccountFigures(
            account=a,
            source="webservices",
            currency=a.currency,
            balance=a.balance,
            equity=a.balance + Decimal("12.5"),
            used_margin=Decimal("150.25"),
            free_margin=a.balance - Decimal("137.75"),
            unrealized_pnl=Decimal("12.5"),
            margin_level=Decimal("6830.12"),
            read_at=now,
        )
        for a in rows
    )
    return user


TARGET_MS = 15.0
API = "/api/v1/accounts/?page_size=200"


def statements(client, url: str) -> int:  # type: ignore[no-untyped-def]
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def measure(cases: list[tuple[str, int, object, str]], rounds: int) -> dict[tuple[str, int], list[float]]:
    """Median milliseconds of each (label, accounts, client, url), the cases taking turns in each round."""
    samples: dict[tuple[str, int], list[float]] = {(label, n): [] for label, n, _, _ in cases}
    for _ in range(5):
        for _label, _n, client, url in cases:
            assert client.get(url).status_code == 200  # type: ignore[attr-defined]
    for _ in range(rounds):
        for label, n, client, url in cases:
            started = time.perf_counter()
            response = client.get(url)  # type: ignore[attr-defined]
            samples[(label, n)].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()

    with scratch_database("bench_dashboard"):
        measure_all(args.rounds)


def measure_all(rounds: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    call_command("migrate", verbosity=0)
    setup_test_environment()
    speed_before = python_speed_us()
    big, small = setup_trader(200), setup_trader(20)
    clients = {}
    for n, user in ((200, big), (20, small)):
        clients[n] = Client()
        clients[n].force_login(user)
    cases = [("bare request", 0, clients[20], "/bench/bare")]
    for label, url in (("dashboard", "/"), ("accounts API, 200 a page", API)):
        cases += [(label, n, clients[n], url) for n in (20, 200)]
    assert len(clients[200].get(API).json()["results"]) == 200
    samples = measure(cases, rounds)
    ms = {key: statistics.median(values) for key, values in samples.items()}
    queries = {(label, n): statements(client, url) for label, n, client, url in cases}
    bare = ms[("bare request", 0)]
    print(
        f"Median of {rounds} rounds, in-process client, production settings (DEBUG off), "
        f"target {TARGET_MS:.0f} ms:"
    )
    print(f"  {'':<26} {'accounts':>8} {'ms':>7} {'statements':>11} {'/ target':>9} {'/ bare':>7}")
    for label, n, _, _ in cases:
        value = ms[(label, n)]
        print(
            f"  {label:<26} {n or '':>8} {value:7.2f} {queries[(label, n)]:>11} "
            f"{value / TARGET_MS:9.2f} {value / bare:7.2f}"
        )
    for label in ("dashboard", "accounts API, 200 a page"):
        (big_ms, big_q), (small_ms, small_q) = ((ms[(label, n)], queries[(label, n)]) for n in (200, 20))
        verdict = f"constant ({big_q})" if big_q == small_q else f"GROW ({small_q} -> {big_q})"
        met = "within" if big_ms <= TARGET_MS else "OVER"
        print(
            f"  {label}: 200 / 20 accounts time {big_ms / small_ms:.2f}; statements {verdict}; "
            f"200 accounts {met} the {TARGET_MS:.0f} ms target"
        )
    print(f"  {describe(speed_before, python_speed_us())}")


if __name__ == "__main__":
    main()
