"""Benchmark of the TradingView link.

1. Throughput of the whole link (authorize page -> consent POST -> redirect with code -> token exchange) under
   concurrent load against a local adapter simulator, compared with the floor: a bare Django view that makes
   the same single POST to the same adapter with a pooled session. Both run in the same gunicorn server; the
   figure is the ratio of links per second to floor requests per second.
2. Database queries per link for 10 and for 200 chosen accounts (must not grow).

Run (PostgreSQL database migrated with `manage.py migrate`):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/helper_c DEBUG=1 .venv/bin/python bench/bench_link.py

Options: --threads N (client threads, default 8), --seconds S (per measurement, default 10),
--latency MS (added by the adapter to every answer; default 0, 50 and 100: a remote adapter is not on
loopback, and with 0 ms the run is CPU-bound on this machine).
The data it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("LOG_FORMAT", "plain")

BEARER = "bench-broker-bearer"
REDIRECT_URI = "https://tv.bench.example/callback"
PREFIX = "bench-tv-"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_adapter(port: int, latency: float) -> None:
    """Entry point of the adapter subprocess (kept out of the load generator's GIL)."""
    from sandbox.adapter import AdapterSim, routes
    from sandbox.httpd import serve

    sim = AdapterSim(bearer=BEARER, latency=latency, record=False)
    serve(routes(bearer=BEARER, sim=sim), port=port)
    threading.Event().wait()


def wait_http(url: str, timeout: float = 30.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def setup_data(accounts_per_trader: int, traders: int) -> tuple[str, str, list[tuple[int, list[int]]]]:
    """A client and traders with accounts; returns client_id, secret, [(user_pk, account_pks)]."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.models import Ctid, Jurisdiction, Trader, TradingAccount
    from tradingview import services

    jurisdiction, _ = Jurisdiction.objects.get_or_create(
        broker_name=f"{PREFIX}BROKER", defaults={"display_name": "Bench broker", "tradingview_enabled": True}
    )
    client, secret = services.oauth_client_create(name=f"{PREFIX}client", redirect_uris=[REDIRECT_URI])
    people = []
    base = 9_000_000_000 + secrets.randbelow(10**8) * 1000
    for t in range(traders):
        user = get_user_model().objects.create_user(username=f"{PREFIX}{secrets.token_hex(6)}", password=None)
        trader = Trader.objects.create(user=user, kyc_verified=True, kyc_verified_at=timezone.now())
        ctid = Ctid.objects.create(user_id=base + t * 1000, trader=trader)
        created = TradingAccount.objects.bulk_create(
            TradingAccount(
                ctid=ctid,
                ctid_trader_account_id=base + t * 1000 + i + 1,
                login=1000 + i,
                is_live=i % 2 == 0,
                jurisdiction=jurisdiction,
            )
            for i in range(accounts_per_trader)
        )
        people.append((user.pk, [a.pk for a in created]))
    return client.client_id, secret, people


def cleanup() -> None:
    from django.contrib.auth import get_user_model

    from accounts.models import AuditEvent, Jurisdiction
    from tradingview.models import Grant, OAuthClient

    clients = OAuthClient.objects.filter(name__startswith=PREFIX)
    Grant.objects.filter(client__in=clients).delete()
    clients.delete()
    users = get_user_model().objects.filter(username__startswith=PREFIX)
    AuditEvent.objects.filter(trader__user__in=users).delete()
    users.delete()
    Jurisdiction.objects.filter(broker_name__startswith=PREFIX).delete()


def session_cookie(user_pk: int) -> str:
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model

    user = get_user_model().objects.get(pk=user_pk)
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    # The backend that holds users (the last one; axes' comes first and only throttles).
    store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return str(store.session_key)


NONCE = re.compile(r'name="consent" value="([^"]+)"')
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def one_link(http, token_http, base: str, client_id: str, secret: str, account_ids: list[int]) -> None:
    state = secrets.token_urlsafe(8)
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "state": state}
    page = http.get(f"{base}/tradingview/oauth/authorize", params=params, timeout=30)
    page.raise_for_status()
    nonce = NONCE.search(page.text).group(1)
    csrf = CSRF.search(page.text).group(1)
    consent = http.post(
        f"{base}/tradingview/oauth/authorize",
        data={"csrfmiddlewaretoken": csrf, "consent": nonce, "action": "allow", "accounts": account_ids},
        allow_redirects=False,
        timeout=30,
    )
    if consent.status_code != 302:
        raise RuntimeError(f"consent answered {consent.status_code}")
    query = parse_qs(urlsplit(consent.headers["Location"]).query)
    assert query["state"] == [state]
    token = token_http.post(
        f"{base}/tradingview/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT_URI,
            "client_id": client_id,
            "client_secret": secret,
        },
        timeout=30,
    )
    token.raise_for_status()
    assert token.json()["token_type"] == "bearer"


def measure(work, threads: int, seconds: float) -> tuple[float, int]:
    """Run ``work(thread_index)`` in a loop on ``threads`` threads; returns (operations per second, errors)."""
    stop = time.monotonic() + seconds
    counts = [0] * threads
    errors = [0] * threads

    def loop(i: int) -> None:
        while time.monotonic() < stop:
            try:
                work(i)
                counts[i] += 1
            except Exception as exc:
                if not errors[i]:
                    print(f"    first error on thread {i}: {type(exc).__name__}: {str(exc)[:200]}")
                errors[i] += 1

    started = time.monotonic()
    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.monotonic() - started), sum(errors)


def throughput(threads: int, seconds: float, latency_ms: float) -> tuple[float, float, int]:
    import requests

    adapter_port = free_port()
    adapter = subprocess.Popen(
        [sys.executable, __file__, "--serve-adapter", str(adapter_port), "--latency", str(latency_ms)],
        cwd=ROOT,
    )
    web_port = free_port()
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="bench.settings",
        TRADINGVIEW_ADAPTER_URL=f"http://127.0.0.1:{adapter_port}/adapter",
        TRADINGVIEW_ADAPTER_TOKEN=BEARER,
    )
    web = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "clientarea.wsgi",
            "--bind",
            f"127.0.0.1:{web_port}",
            "--workers",
            "2",
            "--threads",
            str(threads),
            "--worker-class",
            "gthread",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{web_port}"
    try:
        wait_http(f"{base}/bench/floor")
        client_id, secret, people = setup_data(2, threads)
        sessions = []
        for user_pk, _ in people:
            s = requests.Session()
            s.trust_env = False
            s.cookies.set("sessionid", session_cookie(user_pk), domain="127.0.0.1")
            sessions.append(s)
        token_sessions = [requests.Session() for _ in range(threads)]
        floor_sessions = [requests.Session() for _ in range(threads)]

        def floor(i: int) -> None:
            floor_sessions[i].post(f"{base}/bench/floor", timeout=30).raise_for_status()

        def link(i: int) -> None:
            one_link(sessions[i], token_sessions[i], base, client_id, secret, people[i][1])

        # Warm up both paths (connections, the client secret check) before measuring.
        measure(floor, threads, 1.5)
        measure(link, threads, 1.5)
        floor_rate, floor_errors = measure(floor, threads, seconds)
        link_rate, link_errors = measure(link, threads, seconds)
        return link_rate, floor_rate, floor_errors + link_errors
    finally:
        web.terminate()
        adapter.terminate()
        web.wait(timeout=20)
        adapter.wait(timeout=20)


def queries_per_link(accounts: int) -> dict[str, int]:
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    port = free_port()
    adapter = subprocess.Popen(
        [sys.executable, __file__, "--serve-adapter", str(port), "--latency", "0"], cwd=ROOT
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        settings.TRADINGVIEW_ADAPTER_URL = f"http://127.0.0.1:{port}/adapter"
        settings.TRADINGVIEW_ADAPTER_TOKEN = BEARER
        client_id, secret, [(user_pk, account_ids)] = setup_data(accounts, 1)
        from django.contrib.auth import get_user_model

        browser = Client()
        browser.force_login(get_user_model().objects.get(pk=user_pk))
        counts: dict[str, int] = {}
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "state": "s"}
        with CaptureQueriesContext(connection) as q:
            page = browser.get("/tradingview/oauth/authorize", params)
        counts["authorize"] = len(q)
        nonce = NONCE.search(page.content.decode()).group(1)
        with CaptureQueriesContext(connection) as q:
            consent = browser.post(
                "/tradingview/oauth/authorize", {"consent": nonce, "action": "allow", "accounts": account_ids}
            )
        counts["consent"] = len(q)
        code = parse_qs(urlsplit(consent["Location"]).query)["code"][0]
        # Verify the secret once outside the count: it is remembered per process, as in the server.
        from tradingview import services
        from tradingview.models import OAuthClient

        services.client_authenticate(client_id=client_id, client_secret=secret)
        assert OAuthClient.objects.filter(client_id=client_id).exists()
        with CaptureQueriesContext(connection) as q:
            token = Client().post(
                "/tradingview/oauth/token",
                f"grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_URI}"
                f"&client_id={client_id}&client_secret={secret}",
                content_type="application/x-www-form-urlencoded",
            )
        assert token.status_code == 200, token.content
        counts["token"] = len(q)
        counts["total"] = counts["authorize"] + counts["consent"] + counts["token"]
        return counts
    finally:
        adapter.terminate()
        adapter.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency", type=float, action="append", help="adapter latency in ms (repeatable)")
    parser.add_argument("--serve-adapter", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_adapter:
        serve_adapter(args.serve_adapter, (args.latency or [0.0])[0] / 1000)
        return

    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()
    cleanup()
    try:
        print("Database queries per link (authorize + consent + token):")
        small, large = queries_per_link(10), queries_per_link(200)
        for n, counts in ((10, small), (200, large)):
            print(f"  {n:>3} accounts: {counts}")
        verdict = "constant" if small["total"] == large["total"] else "GROWS"
        print(f"  -> {verdict} ({small['total']} vs {large['total']})")

        print(f"\nThroughput, {args.threads} client threads, gunicorn 2 workers x {args.threads} threads:")
        for latency in args.latency or [0.0, 50.0, 100.0]:
            link_rate, floor_rate, errors = throughput(args.threads, args.seconds, latency)
            print(
                f"  adapter latency {latency:>4.0f} ms: link {link_rate:7.1f}/s, floor {floor_rate:7.1f}/s, "
                f"ratio {link_rate / floor_rate:.2f}, errors {errors}"
            )
    finally:
        cleanup()


if __name__ == "__main__":
    main()
