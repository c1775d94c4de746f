"""Benchmark of the TradingView link.

1. Throughput of the whole link (authorize page -> consent POST -> redirect with code -> token exchange) under
   concurrent load against a local adapter simulator, compared with two floors in the same gunicorn server:
   the fair floor (the same three requests as minimal views through the same middleware and session sign-in,
   6 statements) and the bare floor (one view making the same adapter POST). Printed: links per second over
   fair-floor links per second, and over bare requests per second, and a verdict against the aim (link / fair
   floor >= 0.70; met or missed only when the 95% interval of the rounds says so, bench/rounds.py), for each
   way of keeping sessions: in the database with no Redis; with a Redis URL, also in the database with the
   cache (throttles, brand) in Redis, as the project runs with REDIS_URL; and in Redis
   (``cached_db``: read from Redis, written through to the database). The server's web CPU per
   request, step by step, for the link and the fair floor (read by the serving thread, in a response header
   bench/settings.py adds).
2. Database statements per link for 10 and for 200 chosen accounts (must not grow; 3, 4 and 1 as
   tests/tradingview/test_link_queries.py pins them).
3. CPU per request, step by step, of the link and the fair floor made one request at a time in this process:
   the serving thread's and its PostgreSQL backend's (where the throughput run splits the database's CPU only
   by operation).
4. CPU per operation, split between the web workers, the PostgreSQL backends serving them, the adapter
   simulator, the load generator, whatever else runs on the machine and the time the hypervisor gave to other
   virtual machines (steal) (read from /proc before and after each measurement), so a ratio measured on a busy
   machine can be read for what it is; a measurement during which steal took 5% of the CPU or more is marked
   noisy.

Run (``DATABASE_URL`` names the PostgreSQL server: the benchmark works in a database of its own, created and
migrated at the start and dropped at the end with everything it wrote, bench/scratch.py):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres DEBUG=1 .venv/bin/python bench/bench_link.py \
        --latency 0 --redis redis://127.0.0.1:6379/5

Options: --redis URL (also runs with the cache, then the sessions, in Redis; default $BENCH_REDIS_URL),
--threads N (client threads, default 8), --seconds S (per measurement, default 8, taken in --rounds turns,
default 8: a burst of load elsewhere on the machine falls on a short turn of each, and the ratio of each round
is printed beside the whole run's), --latency MS (added by the adapter to every answer, repeatable; default 0, 20 and 50: a remote
adapter is not on loopback; with 0 ms the load generator, the adapter, PostgreSQL and gunicorn compete for the
same cores and the ratio is one of CPU costs), --what-if minimal-page / no-foreign-keys (repeatable: the link with
its branded authorization page replaced by the fair floor's one-line form, or with the foreign keys of the tables it
writes dropped in the benchmark's database; every verdict then says it is not the product's: what each part takes
of the ratio), --instructions N (also the web process's instructions per link, link and fair floor, over N links
under valgrind's callgrind: a count that does not move with the machine's speed, for comparing two checkouts;
30 takes about 4 minutes; default 0, not counted).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import STEAL, cpu_ticks, describe, python_speed_us  # noqa: E402
from bench.rounds import judged  # noqa: E402
from bench.scratch import scratch_database  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("LOG_FORMAT", "plain")

BEARER = "bench-broker-bearer"
REDIRECT_URI = "https://tv.bench.example/callback"
PREFIX = "bench-tv-"
# The aim: a link costs at most 1 / 0.7 of what its three requests cost as minimal views.
AIM = 0.70
# Where the server keeps sessions and its cache: (label, with Redis, sessions in Redis).
SETUPS = {
    "database": ("sessions in the database, no Redis", False, False),
    "database+redis": ("sessions in the database, cache in Redis", True, False),
    "redis": ("sessions in Redis (cached_db), cache in Redis", True, True),
}
# Parts of the link a run can take away, to measure what each takes of the ratio (--what-if).
WHAT_IFS = {
    "minimal-page": "the authorization page is the fair floor's one-line form with the signed consent field"
    " (bench/templates) instead of the product's branded, translated page",
    "no-foreign-keys": "the grant, its account links, the code and the audit records are written without their"
    " foreign-key constraints (dropped in the benchmark's own database)",
}
# The tables whose foreign keys the link's writes check.
LINK_TABLES = (
    "tradingview_grant",
    "tradingview_grant_accounts",
    "tradingview_authorizationcode",
    "accounts_auditevent",
)


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
    from tradingview.services.clients import oauth_client_create

    jurisdiction, _ = Jurisdiction.objects.get_or_create(
        broker_name=f"{PREFIX}BROKER", defaults={"display_name": "Bench broker", "tradingview_enabled": True}
    )
    client, secret = oauth_client_create(name=f"{PREFIX}client", redirect_uris=[REDIRECT_URI])
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


def drop_link_foreign_keys() -> None:
    """Drop the foreign-key constraints of the tables the link writes (--what-if no-foreign-keys), in the
    benchmark's own database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f'"
            " AND conrelid::regclass::text = ANY(%s)",
            [list(LINK_TABLES)],
        )
        for table, name in cursor.fetchall():
            cursor.execute(
                f"ALTER TABLE {connection.ops.quote_name(table)} DROP CONSTRAINT {connection.ops.quote_name(name)}"
            )
            print(f"  dropped {table}.{name}")


def vacuum_analyze() -> None:
    """Vacuum and analyze the database, as autovacuum keeps a production database: dead rows of the earlier
    measurements gone and statistics current (the link's statements are planned from them; the fair floor's table is new)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


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


def one_link(
    http,
    token_http,
    base: str,
    client_id: str,
    secret: str,
    account_ids: list[int],
    steps: StepCpu | None = None,
) -> None:
    state = secrets.token_urlsafe(8)
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "state": state}
    page = http.get(f"{base}/tradingview/oauth/authorize", params=params, timeout=30)
    page.raise_for_status()
    if steps:
        steps.add("authorize", page)
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
    if steps:
        steps.add("consent", consent)
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
    if steps:
        steps.add("token", token)
    assert token.json()["token_type"] == "bearer"


TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def proc_cpu_ms(pid: int) -> float:
    """User + system CPU a process has used so far, in ms (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def machine_busy_ms() -> float:
    """CPU time every core of the machine spent busy so far (all processes, everyone's), in ms; the time the
    hypervisor gave to other virtual machines (steal) is not in it."""
    values = cpu_ticks()
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:STEAL]) - idle) * TICK_MS


def machine_stolen_ms() -> float:
    """CPU time the hypervisor took from this machine's cores for other virtual machines so far (steal), in ms:
    time the benchmark's processes wanted to run and could not."""
    return cpu_ticks()[STEAL] * TICK_MS


def db_backend_pids() -> list[int]:
    """The PostgreSQL server processes serving this benchmark's database (the web workers' connections)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


class CpuMeter:
    """CPU used during a measurement, split by who used it: web workers, database, adapter, load generator."""

    def __init__(self, web_pid: int, adapter_pid: int) -> None:
        self.web_pid, self.adapter_pid = web_pid, adapter_pid

    def snapshot(self) -> dict[str, float | dict[int, float]]:
        return {
            "web": sum(proc_cpu_ms(p) for p in children(self.web_pid)) + proc_cpu_ms(self.web_pid),
            "db": {p: proc_cpu_ms(p) for p in db_backend_pids()},
            "adapter": proc_cpu_ms(self.adapter_pid),
            "client": time.process_time() * 1000,
            "machine": machine_busy_ms(),
            "stolen": machine_stolen_ms(),
        }

    @staticmethod
    def used(before: dict, after: dict) -> dict[str, float]:
        used = {k: after[k] - before[k] for k in ("web", "adapter", "client", "machine", "stolen")}
        used["db"] = sum(v - before["db"].get(p, 0.0) for p, v in after["db"].items())
        used["other"] = max(
            0.0, used["machine"] - used["web"] - used["db"] - used["adapter"] - used["client"]
        )
        return used


@dataclass
class Tally:
    """Operations, errors, seconds and CPU used (ms, by consumer) over one or more measurement rounds."""

    ops: int = 0
    errors: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] | None = None

    def add(self, other: Tally) -> None:
        self.ops += other.ops
        self.errors += other.errors
        self.seconds += other.seconds
        if other.cpu is not None:
            self.cpu = {k: (self.cpu or {}).get(k, 0.0) + v for k, v in other.cpu.items()}

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def cpu_per_op(self) -> dict[str, float]:
        if not self.cpu:
            return {}
        done = max(1, self.ops)
        per_op = {k: v / done for k, v in self.cpu.items()}
        per_op["capacity"] = (
            (os.cpu_count() or 1) * self.seconds * 1000 / done
        )  # CPU ms the machine had per op
        return per_op


def measure(work, threads: int, seconds: float, meter: CpuMeter | None = None) -> Tally:
    """Run ``work(thread_index)`` in a loop on ``threads`` threads for ``seconds``."""
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

    before = meter.snapshot() if meter else None
    started = time.monotonic()
    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    used = CpuMeter.used(before, meter.snapshot()) if meter and before else None
    return Tally(ops=sum(counts), errors=sum(errors), seconds=elapsed, cpu=used)


STEPS = ("authorize", "consent", "token")


@dataclass
class Measured:
    rate: float
    errors: int
    cpu: dict[str, float]  # CPU ms per operation by consumer (see CpuMeter)
    steps: dict[str, float]  # web CPU ms per request, by step, as the serving thread measured it


@dataclass
class Run:
    latency_ms: float
    setup: str
    link: Measured
    fair: Measured
    bare: Measured
    turn_ratios: list[float]  # link / fair floor in each round of turns, in order

    @property
    def ratio(self) -> float:
        return self.link.rate / self.fair.rate if self.fair.rate else 0.0

    @property
    def bare_ratio(self) -> float:
        return self.link.rate / self.bare.rate if self.bare.rate else 0.0


class StepCpu:
    """Sums of the X-Bench-CPU-Us header the server puts on every answer, by step."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.us: dict[str, int] = {}
        self.count: dict[str, int] = {}

    def add(self, step: str, response) -> None:
        value = int(response.headers.get("X-Bench-CPU-Us", "0"))
        with self.lock:
            self.us[step] = self.us.get(step, 0) + value
            self.count[step] = self.count.get(step, 0) + 1

    def per_request_ms(self) -> dict[str, float]:
        return {k: self.us[k] / self.count[k] / 1000 for k in self.us if self.count[k]}


def fair_link(http, token_http, base: str, steps: StepCpu) -> None:
    """The fair floor: the link's three requests as minimal views (bench/urls.py)."""
    page = http.get(f"{base}/bench/fair/authorize", timeout=30)
    page.raise_for_status()
    steps.add("authorize", page)
    csrf = CSRF.search(page.text).group(1)
    consent = http.post(
        f"{base}/bench/fair/authorize",
        data={"csrfmiddlewaretoken": csrf, "action": "allow"},
        allow_redirects=False,
        timeout=30,
    )
    if consent.status_code != 302:
        raise RuntimeError(f"fair consent answered {consent.status_code}")
    steps.add("consent", consent)
    code = parse_qs(urlsplit(consent.headers["Location"]).query)["code"][0]
    token = token_http.post(f"{base}/bench/fair/token", data={"code": code}, timeout=30)
    token.raise_for_status()
    steps.add("token", token)
    assert token.json()["token_type"] == "bearer"


def create_fair_table() -> None:
    """The fair floor's code table (bench/urls.py); it goes with the benchmark's database."""
    from django.db import connection

    from bench.urls import FAIR_TABLE

    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {FAIR_TABLE} (code_hash varchar(64) PRIMARY KEY, token text NOT NULL,"
            " user_id bigint NOT NULL, used boolean NOT NULL DEFAULT false)"
        )


def throughput(
    threads: int, seconds: float, latency_ms: float, setup: str, redis_url: str = "", rounds: int = 8
) -> Run:
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
    # With REDIS_URL the server's cache is Redis; the project keeps sessions in the database whatever the
    # cache, and BENCH_SESSIONS=redis has bench/settings.py read them from Redis instead (cached_db).
    _label, with_redis, redis_sessions = SETUPS[setup]
    env.pop("REDIS_URL", None)
    env.pop("BENCH_SESSIONS", None)
    if with_redis:
        env["REDIS_URL"] = redis_url
    if redis_sessions:
        env["BENCH_SESSIONS"] = "redis"
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
            # Idle client connections stay open between the measurements, as behind a proxy.
            "--keep-alive",
            "75",
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
        vacuum_analyze()

        def signed_in() -> list:
            sessions = []
            for user_pk, _ in people:
                s = requests.Session()
                s.trust_env = False
                s.cookies.set("sessionid", session_cookie(user_pk), domain="127.0.0.1")
                sessions.append(s)
            return sessions

        link_sessions, fair_sessions = signed_in(), signed_in()
        token_sessions = [requests.Session() for _ in range(threads)]
        floor_sessions = [requests.Session() for _ in range(threads)]
        for s in token_sessions + floor_sessions:
            s.trust_env = False
        link_steps, fair_steps, floor_steps = StepCpu(), StepCpu(), StepCpu()

        def floor(i: int) -> None:
            response = floor_sessions[i].post(f"{base}/bench/floor", timeout=30)
            response.raise_for_status()
            floor_steps.add("floor", response)

        def fair(i: int) -> None:
            fair_link(fair_sessions[i], token_sessions[i], base, fair_steps)

        def link(i: int) -> None:
            one_link(link_sessions[i], token_sessions[i], base, client_id, secret, people[i][1], link_steps)

        # Warm up every path (connections, imports, templates, cached sessions) before measuring.
        for work in (floor, fair, link):
            measure(work, threads, 1.5)
        for steps in (link_steps, fair_steps, floor_steps):
            steps.us.clear()
            steps.count.clear()
        meter = CpuMeter(web.pid, adapter.pid)
        paths = {"fair": (fair, fair_steps), "link": (link, link_steps), "bare": (floor, floor_steps)}
        tallies = {name: Tally() for name in paths}
        turn_ratios = []
        # Short rounds, taking turns: a change in the machine's load (other users of its cores) falls on all
        # three alike instead of on whichever was being measured at the time.
        for _ in range(rounds):
            turn = {}
            for name, (work, _steps) in paths.items():
                turn[name] = measure(work, threads, seconds / rounds, meter)
                tallies[name].add(turn[name])
            if turn["fair"].rate:
                turn_ratios.append(turn["link"].rate / turn["fair"].rate)
        results = {
            name: Measured(tally.rate, tally.errors, tally.cpu_per_op(), paths[name][1].per_request_ms())
            for name, tally in tallies.items()
        }
        return Run(latency_ms, setup, results["link"], results["fair"], results["bare"], turn_ratios)
    finally:
        web.terminate()
        adapter.terminate()
        web.wait(timeout=20)
        adapter.wait(timeout=20)


@contextmanager
def in_process_link(accounts: int) -> Iterator[tuple[Any, str, str, list[int]]]:
    """An adapter simulator for this process and a trader with ``accounts`` accounts, signed in to a test client
    as a browser that has been signed in for a while (and as tests/tradingview/test_link_queries.py counts):
    the session's last-seen time written and the brand cached by an earlier page. Yields the client, the OAuth
    client's id and secret, and the account ids."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    port = free_port()
    adapter = subprocess.Popen(
        [sys.executable, __file__, "--serve-adapter", str(port), "--latency", "0"], cwd=ROOT
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        settings.TRADINGVIEW_ADAPTER_URL = f"http://127.0.0.1:{port}/adapter"
        settings.TRADINGVIEW_ADAPTER_TOKEN = BEARER
        client_id, secret, [(user_pk, account_ids)] = setup_data(accounts, 1)
        browser = Client()
        browser.force_login(get_user_model().objects.get(pk=user_pk))
        browser.get("/")
        yield browser, client_id, secret, account_ids
    finally:
        adapter.terminate()
        adapter.wait(timeout=20)


FORM = "application/x-www-form-urlencoded"


def link_in_process(
    browser: Any,
    token_client: Any,
    client_id: str,
    secret: str,
    account_ids: list[int],
    step: Callable[..., Any],
) -> None:
    """One link through Django's test clients, as the load generator makes it (``one_link``); each request is
    made by ``step(name, request)``, which calls ``request()`` and returns its response."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "state": "s"}
    page = step("authorize", lambda: browser.get("/tradingview/oauth/authorize", params))
    text = page.content.decode()
    fields = {
        "csrfmiddlewaretoken": CSRF.search(text).group(1),
        "consent": NONCE.search(text).group(1),
        "action": "allow",
        "accounts": account_ids,
    }
    consent = step(
        "consent", lambda: browser.post("/tradingview/oauth/authorize", urlencode(fields, doseq=True), FORM)
    )
    code = parse_qs(urlsplit(consent["Location"]).query)["code"][0]
    body = urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": client_id,
            "client_secret": secret,
        }
    )
    token = step("token", lambda: token_client.post("/tradingview/oauth/token", body, FORM))
    assert token.status_code == 200, token.content


def fair_link_in_process(browser: Any, token_client: Any, step: Callable[..., Any]) -> None:
    """The fair floor's link through Django's test clients, as ``fair_link`` makes it; requests as in
    ``link_in_process``."""
    page = step("authorize", lambda: browser.get("/bench/fair/authorize"))
    fields = {"csrfmiddlewaretoken": CSRF.search(page.content.decode()).group(1), "action": "allow"}
    consent = step("consent", lambda: browser.post("/bench/fair/authorize", urlencode(fields), FORM))
    code = parse_qs(urlsplit(consent["Location"]).query)["code"][0]
    token = step("token", lambda: token_client.post("/bench/fair/token", urlencode({"code": code}), FORM))
    assert token.status_code == 200, token.content


def queries_per_link(accounts: int) -> dict[str, int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    counts: dict[str, int] = {}

    def counted(name: str, request: Callable[[], Any]) -> Any:
        with CaptureQueriesContext(connection) as q:
            response = request()
        counts[name] = len(q)
        return response

    with in_process_link(accounts) as (browser, client_id, secret, account_ids):
        link_in_process(browser, Client(), client_id, secret, account_ids, counted)
    counts["total"] = counts["authorize"] + counts["consent"] + counts["token"]
    return counts


def backend_cpu_ns() -> int:
    """CPU time the PostgreSQL backend serving this process's connection has used so far, in ns
    (/proc/<pid>/schedstat: exact, where /proc/<pid>/stat counts clock ticks)."""
    from django.db import connection

    connection.ensure_connection()
    with open(f"/proc/{connection.connection.info.backend_pid}/schedstat") as f:
        return int(f.read().split()[0])


def serial_cpu_per_step(links: int) -> dict[str, dict[str, tuple[float, float]]]:
    """CPU ms per request, step by step, of the link and the fair floor made one request at a time in this
    process (Django's test client, the adapter in a process of its own): (this thread, its database backend).
    Where the throughput run splits the database's CPU only by operation, this splits it by step."""
    from django.test import Client

    used: dict[str, dict[str, list[float]]] = {
        name: {step: [0.0, 0.0] for step in STEPS} for name in ("link", "fair floor", "warm-up")
    }

    def timed(name: str) -> Callable[[str, Callable[[], Any]], Any]:
        def step(step_name: str, request: Callable[[], Any]) -> Any:
            web, db = time.thread_time_ns(), backend_cpu_ns()
            response = request()
            used[name][step_name][0] += time.thread_time_ns() - web
            used[name][step_name][1] += backend_cpu_ns() - db
            return response

        return step

    with in_process_link(2) as (browser, client_id, secret, account_ids):
        token_client = Client()
        # Warmed up uncounted, then in turns, so both see the same machine.
        for (link_as, fair_as), times in ((("warm-up", "warm-up"), 50), (("link", "fair floor"), links)):
            for _ in range(times):
                link_in_process(browser, token_client, client_id, secret, account_ids, timed(link_as))
                fair_link_in_process(browser, token_client, timed(fair_as))
    return {
        name: {step: (web / links / 1e6, db / links / 1e6) for step, (web, db) in steps.items()}
        for name, steps in used.items()
        if name != "warm-up"
    }


def print_serial(links: int, measured: dict[str, dict[str, tuple[float, float]]]) -> None:
    print(
        f"\nCPU ms per request, one request at a time in this process ({links} links and fair-floor links in turns,"
        "\nDjango's test client): the serving thread (web) and the PostgreSQL backend serving it (db)."
    )
    print(f"  {'':<12}" + "".join(f"{step:>16}" for step in (*STEPS, "total")))
    print(f"  {'':<12}" + f"{'web':>10}{'db':>6}" * (len(STEPS) + 1))
    for name, steps in measured.items():
        web = sum(w for w, _ in steps.values())
        db = sum(d for _, d in steps.values())
        print(
            f"  {name:<12}"
            + "".join(f"{w:10.2f}{d:6.2f}" for w, d in steps.values())
            + f"{web:10.2f}{db:6.2f}"
        )


# Links made before the counted ones in each instruction count (imports, templates, prepared statements).
INSTRUCTIONS_WARM_UP = 10


def instructions_child(path: str, links: int) -> None:
    """Entry point of a process run under callgrind (``--instructions-child``): ``INSTRUCTIONS_WARM_UP`` then
    ``links`` links of ``path`` (``link`` or ``fair``) made in this process as the serial measurement makes
    them, with garbage collection off (a collection falls wherever the allocations happen to reach its
    threshold, and one more or less moves a count by far more than a change does)."""
    import gc

    gc.disable()
    import django

    django.setup()
    from django.test import Client

    with in_process_link(2) as (browser, client_id, secret, account_ids):
        token_client = Client()

        def step(_name: str, request: Callable[[], Any]) -> Any:
            return request()

        for _ in range(INSTRUCTIONS_WARM_UP + links):
            if path == "link":
                link_in_process(browser, token_client, client_id, secret, account_ids, step)
            else:
                fair_link_in_process(browser, token_client, step)
    # Out without the interpreter's teardown, whose freeing of every module and object varies from run to run
    # by tens of millions of instructions: callgrind counts up to here.
    from django.db import connections

    connections.close_all()
    sys.stdout.flush()
    os._exit(0)


def _callgrind_total(path: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"no summary in {path}")


def instructions_per_link(links: int) -> dict[str, float] | None:
    """Instructions per link of the web process's serving thread, for the link and the fair floor (valgrind's
    callgrind, which counts instructions, the same whatever else the machine does): a run making ``links``
    links after the warm-up minus a run making none. None without valgrind."""
    import shutil
    import tempfile

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    env = dict(os.environ, PYTHONHASHSEED="0")
    totals: dict[tuple[str, int], int] = {}
    with tempfile.TemporaryDirectory() as out:
        runs = []
        for path in ("link", "fair"):
            for n in (0, links):
                name = f"{out}/{path}.{n}"
                command = [
                    valgrind,
                    "--tool=callgrind",
                    "--separate-threads=yes",
                    f"--callgrind-out-file={name}",
                    sys.executable,
                    __file__,
                    "--instructions-child",
                    path,
                    str(n),
                ]
                process = subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
                runs.append(((path, n), name, process))
        for key, name, process in runs:
            _, errors = process.communicate(timeout=1800)
            if process.returncode != 0:
                raise RuntimeError(f"callgrind run {key} failed: {errors.decode()[-2000:]}")
            # The first file is the main thread's, the one that serves the requests.
            totals[key] = _callgrind_total(f"{name}-01")
    return {path: (totals[(path, links)] - totals[(path, 0)]) / links for path in ("link", "fair")}


def print_instructions(links: int, counted: dict[str, float] | None) -> None:
    if counted is None:
        print("\nInstructions per link: valgrind is not installed (apt-get install valgrind); not counted.")
        return
    print(
        f"\nInstructions per link in the web process (valgrind's callgrind; the serving thread, {links} links after"
        f" {INSTRUCTIONS_WARM_UP} of warm-up\nminus a run with none, made as above, garbage collection off; counts"
        " of one checkout agree within about 1%\nwhatever else the machine does, where timings move by 10%: compare"
        " checkouts by several counts each):"
    )
    print(
        f"  link {counted['link'] / 1e6:.2f} M, fair floor {counted['fair'] / 1e6:.2f} M:"
        f" fair floor / link {counted['fair'] / counted['link']:.3f}"
    )


FLOOR_TEXT = """
Two floors, in the same gunicorn server with the same settings and middleware, measured side by side with the
link in one run:
- fair floor: the link's three requests as minimal views (bench/urls.py, /bench/fair/...): a GET rendering a
  form with a CSRF token and a POST making the adapter call, both signed in through the same session; the POST
  stores the adapter token (encrypted) under a fresh code's hash and redirects; the token request takes the
  code once and answers with the token. 6 statements: what any link must do. The target is link / fair floor.
- bare floor: one view making the one adapter call, no session, no database (/bench/floor).
Before each setup's measurement the database is vacuumed and analyzed, as autovacuum keeps a production one.
At 0 ms adapter latency the ratios are ratios of CPU costs; with a remote adapter's latency both wait on the
adapter and the ratio shows what the link adds to that wait. Beside the throughput ratio, the same ratio by the
CPU each operation used (web + db + adapter + client), which other users of the machine do not move.
With Redis the server's cache is clientarea.cache.RedisCache (bench/settings.py: one Redis client per pool).
"""


def cpu_ratio(run: Run) -> float:
    def own(cpu: dict[str, float]) -> float:
        return sum(cpu[k] for k in ("web", "db", "adapter", "client"))

    return own(run.fair.cpu) / own(run.link.cpu) if run.link.cpu and run.fair.cpu else 0.0


def _spread(run: Run) -> str:
    if not run.turn_ratios:
        return "-"
    turns = sorted(run.turn_ratios)
    return f"{turns[0]:.2f}-{turns[-1]:.2f} (median {statistics.median(turns):.2f})"


def verdict(run: Run) -> str:
    what_if = os.environ.get("BENCH_WHAT_IF", "")
    return (
        f"link / fair floor {run.ratio:.2f}, aim >= {AIM:.2f}: {judged(run.ratio, run.turn_ratios, AIM)}"
        f" ({SETUPS[run.setup][0]}, adapter latency {run.latency_ms:.0f} ms"
        + (f"; what-if {what_if}, not the product" if what_if else "")
        + ")"
    )


def print_run(run: Run, threads: int) -> None:
    print(
        f"\n  adapter latency {run.latency_ms:>3.0f} ms, {SETUPS[run.setup][0]}: link {run.link.rate:6.1f}/s, "
        f"fair floor {run.fair.rate:6.1f}/s, bare floor {run.bare.rate:6.1f}/s, errors "
        f"{run.link.errors + run.fair.errors + run.bare.errors}"
    )
    print(f"    link / fair floor {run.ratio:.2f}   link / bare floor {run.bare_ratio:.3f}")
    if run.turn_ratios:
        print(
            f"    link / fair floor in each of the {len(run.turn_ratios)} rounds: "
            + " ".join(f"{r:.2f}" for r in run.turn_ratios)
            + f" ({_spread(run)})"
        )
    print(f"    verdict: {verdict(run)}")
    if run.link.cpu and run.fair.cpu:
        print(
            f"    link / fair floor by CPU per operation (web + db + adapter + client): {cpu_ratio(run):.2f}"
        )
    print(
        f"    time per operation seen by a client thread: link {threads / run.link.rate * 1000:.0f} ms, "
        f"fair floor {threads / run.fair.rate * 1000:.0f} ms, bare floor {threads / run.bare.rate * 1000:.0f} ms"
    )
    print("    web CPU ms per request (serving thread)  authorize  consent    token    total")
    for name, measured in (("link", run.link), ("fair floor", run.fair)):
        steps = measured.steps
        print(
            f"    {name:<41}"
            + "".join(f"{steps.get(s, 0.0):9.2f}" for s in STEPS)
            + f"{sum(steps.get(s, 0.0) for s in STEPS):9.2f}"
        )
    print(f"    {'bare floor (one request)':<41}{run.bare.steps.get('floor', 0.0):9.2f}")
    print("    CPU ms per op    web     db  adapter  client   other  stolen  capacity")
    for name, cpu in (("link", run.link.cpu), ("fair floor", run.fair.cpu), ("bare floor", run.bare.cpu)):
        if cpu:
            print(
                f"    {name:<12}{cpu['web']:7.1f}{cpu['db']:7.1f}{cpu['adapter']:9.1f}{cpu['client']:8.1f}"
                f"{cpu['other']:8.1f}{cpu['stolen']:8.1f}{cpu['capacity']:10.1f}"
            )
    if run_steal(run) >= NOISY_STEAL:
        print(f"    {steal_warning(run)}")


# Above this share of the machine's CPU taken by the hypervisor during a measurement, its ratios are not to be
# trusted: what is taken comes in bursts that fall unevenly on the link's and the floors' turns.
NOISY_STEAL = 0.05


def run_steal(run: Run) -> float:
    """The share of the machine's CPU the hypervisor took during the link's and the fair floor's turns."""
    # Per operation, weighted by the operations of each: both had turns of the same length.
    measured = [m for m in (run.link, run.fair) if m.cpu]
    capacity = sum(m.cpu["capacity"] * m.rate for m in measured)
    return sum(m.cpu["stolen"] * m.rate for m in measured) / capacity if capacity else 0.0


def steal_warning(run: Run) -> str:
    return (
        f"noisy: the hypervisor took {run_steal(run):.0%} of the machine's CPU during this measurement (steal);"
        " its ratios move with where that fell, measure again"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=8, help="turns the three measurements take (default 8)")
    parser.add_argument("--latency", type=float, action="append", help="adapter latency in ms (repeatable)")
    parser.add_argument(
        "--redis",
        default=os.environ.get("BENCH_REDIS_URL", ""),
        help="Redis URL for the runs with the cache and the sessions in Redis (default $BENCH_REDIS_URL; none: "
        "database only)",
    )
    parser.add_argument(
        "--serial",
        type=int,
        default=500,
        help="links for the CPU per step one request at a time (default 500)",
    )
    parser.add_argument(
        "--what-if",
        action="append",
        choices=sorted(WHAT_IFS),
        default=[],
        help="measure the link with a part of it taken away (repeatable): "
        + "; ".join(f"{name}: {text}" for name, text in sorted(WHAT_IFS.items())),
    )
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="also count the web process's instructions per link, link and fair floor, over N links under"
        " valgrind (about 4 minutes for 30; default 0: not counted)",
    )
    parser.add_argument("--serve-adapter", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--instructions-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_adapter:
        serve_adapter(args.serve_adapter, (args.latency or [0.0])[0] / 1000)
        return
    if args.instructions_child:
        path, links = args.instructions_child
        instructions_child(path, int(links))
        return

    # Read by bench/settings.py, here and in the server.
    os.environ["BENCH_WHAT_IF"] = ",".join(args.what_if)
    with scratch_database("bench_link"):
        measure_all(args)


def measure_all(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    call_command("migrate", verbosity=0)
    setup_test_environment()
    create_fair_table()
    if "no-foreign-keys" in args.what_if:
        drop_link_foreign_keys()
    for name in args.what_if:
        print(f"WHAT-IF {name}: {WHAT_IFS[name]}. The ratios below are not the product's.")
    speed_before = python_speed_us()
    print("Database statements per link (authorize + consent + token), sessions in the database:")
    small, large = queries_per_link(10), queries_per_link(200)
    for n, counts in ((10, small), (200, large)):
        print(f"  {n:>3} accounts: {counts}")
    growth = "constant" if small["total"] == large["total"] else "GROWS"
    print(f"  -> {growth} ({small['total']} vs {large['total']}); the fair floor makes 6")

    print_serial(args.serial, serial_cpu_per_step(args.serial))
    counted = instructions_per_link(args.instructions) if args.instructions else None
    if args.instructions:
        print_instructions(args.instructions, counted)

    print(FLOOR_TEXT)
    print(
        f"Throughput: {args.threads} client threads; gunicorn 2 workers x {args.threads} threads (gthread)."
    )
    print(
        "CPU ms per operation, by consumer: web = gunicorn workers, db = PostgreSQL backends serving them,\n"
        "adapter = the simulator, client = this load generator, other = everything else on the machine\n"
        f"(other users of its {os.cpu_count()} cores), stolen = CPU time the hypervisor gave to other virtual\n"
        "machines while this one wanted it (steal); capacity = CPU ms the machine had per operation."
    )
    runs = []
    setups = list(SETUPS) if args.redis else ["database"]
    for latency in args.latency or [0.0, 20.0, 50.0]:
        for setup in setups:
            run = throughput(args.threads, args.seconds, latency, setup, args.redis, args.rounds)
            runs.append(run)
            print_run(run, args.threads)
    print("\nSummary:")
    for run in runs:
        steps = run.link.steps
        print(
            f"  {verdict(run)}; by CPU {cpu_ratio(run):.2f}; rounds {_spread(run)}; link / bare floor"
            f" {run.bare_ratio:.3f};"
            " web CPU per request: " + ", ".join(f"{s} {steps.get(s, 0.0):.2f} ms" for s in STEPS)
        )
        if run_steal(run) >= NOISY_STEAL:
            print(f"    {steal_warning(run)}")
    print(f"  statements per link: {small['total']} (10 accounts), {large['total']} (200 accounts)")
    if counted:
        print(
            f"  web instructions per link: link {counted['link'] / 1e6:.2f} M, fair floor {counted['fair'] / 1e6:.2f} M"
            f" (fair floor / link {counted['fair'] / counted['link']:.3f})"
        )
    print(f"  {describe(speed_before, python_speed_us())}")


if __name__ == "__main__":
    main()
