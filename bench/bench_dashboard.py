"""Benchmark of the trader's dashboard and account list API with 200 accounts (in-process, production settings).

Prints the median time of the dashboard and of the first page of ``/api/v1/accounts/`` for a trader with 200
accounts (each with figures) beside the same for 20 accounts, and the statements each makes (constant in the
number of accounts). Run (PostgreSQL database migrated with `manage.py migrate`):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/NAME DEBUG=1 .venv/bin/python bench/bench_dashboard.py

Options: --views N (requests per measurement, default 60). The data it creates is removed at the end.
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


def cleanup() -> None:
    from django.contrib.auth import get_user_model

    from accounts.models import Jurisdiction, TradingAccount

    users = get_user_model().objects.filter(username__startswith=PREFIX)
    TradingAccount.objects.filter(ctid__trader__user__in=users).delete()
    users.delete()
    Jurisdiction.objects.filter(broker_name__startswith=PREFIX).delete()


def measure(user, url: str, views: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    for _ in range(5):
        assert client.get(url).status_code == 200
    samples = []
    for _ in range(views):
        started = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    return statistics.median(samples) * 1000, len(captured)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--views", type=int, default=60)
    args = parser.parse_args()

    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()
    cleanup()
    try:
        big, small = setup_trader(200), setup_trader(20)
        print(f"Median of {args.views} requests, in-process client, production settings (DEBUG off):")
        results = {}
        for url, label in (("/", "dashboard"), ("/api/v1/accounts/", "/api/v1/accounts/ (first page, 100)")):
            for n, user in ((200, big), (20, small)):
                ms, queries = measure(user, url, args.views)
                results[(label, n)] = (ms, queries)
                print(f"  {label:<38} {n:>3} accounts: {ms:6.1f} ms, {queries} statements")
        for label in ("dashboard", "/api/v1/accounts/ (first page, 100)"):
            (big_ms, big_q), (small_ms, small_q) = results[(label, 200)], results[(label, 20)]
            verdict = "constant" if big_q == small_q else "GROWS"
            print(f"  {label}: 200 / 20 accounts time {big_ms / small_ms:.2f}; statements {verdict}")
    finally:
        cleanup()


if __name__ == "__main__":
    main()
