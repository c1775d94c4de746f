"""Benchmark of account opening: time from submitting the form to the account stored, against the floor.

The simulated WebServices API (the sandbox's, in its own process) answers every call after ``--latency`` ms
(default 50). A new trader's opening must make three calls in sequence: ``ctid/create``, ``traders`` create,
``ctid/link`` (the manager token is fetched once per process and reused). The floor is those three calls made
back to back with a pooled session and nothing else; the opening is the real path: the form POSTed through
Django (middleware, session, validation, the opening record), the task handed to a real Celery worker over
Redis, the steps recorded in PostgreSQL, the account stored. "Stored" is the moment another database connection
(the benchmark, polling every 2 ms) sees the opening done, which is committed in the same transaction as the
account.

Run (PostgreSQL database migrated with `manage.py migrate`, Redis up):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h10 DEBUG=1 .venv/bin/python bench/bench_open_account.py

Options: --openings N (default 20), --latency MS (default 50), --redis URL (default REDIS_URL_FOR_TESTS or
redis://127.0.0.1:6379/3), --eager (run the task in the web request, as the embedded mode does, instead of on
a worker). The data it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import socket
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientarea.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("LOG_FORMAT", "plain")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1")

MANAGER = (52001, "bench-manager-password")
PREFIX = "bench-open-"
PASSWORD = "Bench-Trading-Pw1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_webservices(port: int, latency: float) -> None:
    """Entry point of the simulator's process (kept out of the measured process's GIL)."""
    from accounts.ctrader.webservices import md5_hex
    from sandbox.httpd import serve
    from sandbox.webservices_server import WebServicesSim, join
    from sandbox.world import World

    world = World()
    # cTIDs the simulator creates must not collide with cTIDs already in the database.
    world._next_user_id = 800_000_000 + secrets.randbelow(100_000_000)
    world._next_account_id = 800_000_000 + secrets.randbelow(100_000_000)
    sims = [
        WebServicesSim(
            world,
            env,
            {MANAGER[0]: md5_hex(MANAGER[1])},
            broker_names=("BENCH-EU",),
            latency=latency,
            record=False,
        )
        for env in ("live", "demo")
    ]
    join(*sims)
    serve([r for sim in sims for r in sim.routes(f"/{sim.environment}")], port=port)
    threading.Event().wait()


def floor_once(base: str, session, tokens: dict[str, str], email: str) -> float:
    """The three calls a new trader's opening makes, back to back, and nothing else."""
    from accounts.ctrader.webservices import md5_hex

    started = time.perf_counter()
    user_id = session.post(
        f"{base}/live/cid/ctid/create",
        params={"token": tokens["live"]},
        json={"email": email, "brokerName": "BENCH-EU"},
    ).json()["userId"]
    login = session.post(
        f"{base}/demo/v2/webserv/traders",
        params={"token": tokens["demo"]},
        json={
            "accessRights": "FULL_ACCESS", "accountType": "HEDGED", "balance": 100000, "brokerName": "BENCH-EU",
            "depositCurrency": "EUR", "groupName": "SANDBOX-TV", "hashedPassword": md5_hex(PASSWORD),
            "leverageInCents": 10000, "totalMarginCalculationType": "MAX",
        },
    ).json()["login"]  # fmt: skip
    session.post(
        f"{base}/live/cid/ctid/link",
        params={"token": tokens["live"]},
        json={
            "traderLogin": login, "traderPasswordHash": md5_hex(PASSWORD), "userId": user_id,
            "brokerName": "BENCH-EU", "environmentName": "demo", "returnAccountDetails": True,
        },
    ).raise_for_status()  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--openings", type=int, default=20)
    parser.add_argument("--latency", type=float, default=50.0)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/3"))
    parser.add_argument("--eager", action="store_true")
    args = parser.parse_args()

    port = free_port()
    simulator = multiprocessing.get_context("spawn").Process(
        target=serve_webservices, args=(port, args.latency / 1000), daemon=True
    )
    simulator.start()
    base = f"http://127.0.0.1:{port}"

    import django

    django.setup()
    import requests
    from django.conf import settings
    from django.test import Client
    from django.utils import timezone

    from accounts.ctrader.webservices import md5_hex
    from accounts.models import AccountOpening, AccountType, AuditEvent, Ctid, Jurisdiction, Trader
    from clientarea.celery import app
    from tests.factories import TraderFactory

    settings.CTRADER_WEBSERVICES_LIVE_URL, settings.CTRADER_WEBSERVICES_DEMO_URL = (
        f"{base}/live",
        f"{base}/demo",
    )
    settings.CTRADER_MANAGER_LIVE_LOGIN = settings.CTRADER_MANAGER_DEMO_LOGIN = MANAGER[0]
    settings.CTRADER_MANAGER_LIVE_PASSWORD = settings.CTRADER_MANAGER_DEMO_PASSWORD = MANAGER[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

    session = requests.Session()
    deadline = time.monotonic() + 30
    while True:
        try:
            tokens = {
                env: session.post(
                    f"{base}/{env}/v2/webserv/managers/token",
                    json={"login": MANAGER[0], "hashedPassword": md5_hex(MANAGER[1])},
                ).json()["webservToken"]
                for env in ("live", "demo")
            }
            break
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise SystemExit("the simulator did not start") from None
            time.sleep(0.1)

    jurisdiction, _ = Jurisdiction.objects.get_or_create(
        broker_name="BENCH-EU", defaults={"display_name": "Bench EU"}
    )
    account_type = AccountType.objects.create(
        jurisdiction=jurisdiction, name=f"{PREFIX}demo", environment="demo", group_name="SANDBOX-TV",
        deposit_currencies="EUR", leverage_choices="100", who_may_open="anyone", starting_balance=1000,
    )  # fmt: skip

    worker = None
    if not args.eager:
        # A worker process of its own, as deployed (`celery -A clientarea worker`), on the same Redis.
        import subprocess

        app.conf.update(
            CELERY_BROKER_URL=args.redis, CELERY_TASK_ALWAYS_EAGER=False, CELERY_RESULT_BACKEND=None
        )
        app._pool = None
        app.amqp._producer_pool = None
        app.control.purge()
        worker_env = {
            **os.environ,
            "REDIS_URL": args.redis,
            "CTRADER_WEBSERVICES_LIVE_URL": f"{base}/live",
            "CTRADER_WEBSERVICES_DEMO_URL": f"{base}/demo",
            "CTRADER_MANAGER_LIVE_LOGIN": str(MANAGER[0]),
            "CTRADER_MANAGER_DEMO_LOGIN": str(MANAGER[0]),
            "CTRADER_MANAGER_LIVE_PASSWORD": MANAGER[1],
            "CTRADER_MANAGER_DEMO_PASSWORD": MANAGER[1],
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "DJANGO_SETTINGS_MODULE": "clientarea.settings",
        }
        worker = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "celery"), "-A", "clientarea", "worker", "--pool", "threads",
             "--concurrency", "2", "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip",
             "--without-mingle"],
            cwd=ROOT, env=worker_env, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    traders: list[Trader] = []
    try:
        floors: list[float] = []
        # Warm-up: the manager token, connections, templates.
        totals: list[float] = []
        for i in range(args.openings + 1):
            trader = TraderFactory(
                user__username=f"{PREFIX}{secrets.token_hex(4)}",
                user__email=f"{PREFIX}{i}-{secrets.token_hex(3)}@example.com",
            )
            trader.email_verified, trader.email_verified_at = trader.user.email.lower(), timezone.now()
            trader.save()
            traders.append(trader)
            client = Client()
            client.force_login(trader.user)
            data = {
                "account_type": account_type.pk, "key": secrets.token_urlsafe(12), "deposit_currency": "EUR",
                "leverage": "100", "password": PASSWORD, "password_confirm": PASSWORD,
            }  # fmt: skip
            submitted = time.perf_counter()
            response = client.post("/open/", data)
            assert response.status_code == 302, response.status_code
            rows = AccountOpening.objects.filter(trader=trader).values_list("state", flat=True)
            # "Stored" is when the account is visible to another connection (the poller), not a timestamp
            # taken inside the transaction: the measure includes the commit.
            while (state := rows.first()) not in (AccountOpening.State.DONE, AccountOpening.State.FAILED):
                time.sleep(0.002)
                if i == 0 and time.perf_counter() - submitted > 60:
                    raise SystemExit("the worker did not run the first opening within a minute")
            stored = time.perf_counter()
            assert state == AccountOpening.State.DONE, state
            if i:
                totals.append(stored - submitted)
                # The floor is measured right after each opening, so both see the same load on the machine.
                floors.append(
                    floor_once(base, session, tokens, f"{PREFIX}floor{i}-{secrets.token_hex(3)}@example.com")
                )
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        AccountOpening.objects.filter(trader__in=traders).delete()
        Ctid.objects.filter(trader__in=traders).delete()
        AuditEvent.objects.filter(trader__in=traders).delete()
        for trader in traders:
            trader.user.delete()
        account_type.delete()
        simulator.terminate()

    floor = statistics.median(floors)
    median, p90 = statistics.median(totals), sorted(totals)[int(len(totals) * 0.9) - 1]
    pairs = sorted(t / f for t, f in zip(totals, floors, strict=True))
    mode = "task in the web request (embedded mode)" if args.eager else "task on a Celery worker over Redis"
    print(
        f"account opening, {args.openings} new traders, simulated WebServices answering after {args.latency:.0f} ms per call"
    )
    print(f"  {mode}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"  floor (ctid/create + traders + ctid/link, back to back): median {floor * 1000:7.1f} ms")
    print(
        f"  submit -> account stored:                              median {median * 1000:7.1f} ms, p90 {p90 * 1000:7.1f} ms"
    )
    print(f"  ratio to the floor: median {median / floor:.2f}x, p90 {p90 / floor:.2f}x (aim: <= 1.2x)")
    print(
        f"  each opening against the floor measured next to it: median {statistics.median(pairs):.2f}x, min {pairs[0]:.2f}x"
    )


if __name__ == "__main__":
    main()
