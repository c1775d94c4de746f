"""The signed-in dashboard and /readyz while Redis or PostgreSQL is down, side by side with a healthy run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres BENCH_REDIS_URL=redis://127.0.0.1:6379/11 \\
        .venv/bin/python bench/bench_outages.py

It creates a scratch database ``bench_outages_<pid>`` on the same PostgreSQL server (dropped at the end),
migrates it, adds one trader, and for each case starts a real gunicorn (1 worker, 4 threads) on a free
loopback port, signs in and times BENCH_REQUESTS dashboard requests (median, p95, slowest). Cases: no Redis
(embedded), Redis answering, Redis refusing connections, Redis black-holed (a loopback server that accepts
and never answers). Then /readyz with PostgreSQL answering and black-holed (its answer cache off). It prints
each case's figures and its ratio to the healthy case. Runtime: about a minute.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
SOURCE_URL = os.environ.get("DATABASE_URL", "")
if not SOURCE_URL.startswith("postgres"):
    sys.exit("Set DATABASE_URL to a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "30"))
BENCH_DB = f"bench_outages_{os.getpid()}"
USERNAME, PASSWORD = "bench-trader", "Bench-Password-2026"


def _url(database: str, port: int | None = None) -> str:
    parts = urlsplit(SOURCE_URL)
    netloc = parts.netloc if port is None else f"{parts.netloc.rsplit(':', 1)[0]}:{port}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", "", ""))


class BlackHole:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                continue


def refusing_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "clientarea.wsgi",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--threads",
            "4",
            "--timeout",
            "30",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DEBUG": "1",
            "SANDBOX": "0",
            "LOG_LEVEL": "ERROR",
            "HEALTH_CACHE_SECONDS": "0",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", line)
        if found:
            threading.Thread(target=lambda: [None for _ in process.stdout or []], daemon=True).start()
            base = found.group(1)
            for _ in range(100):
                try:
                    requests.get(f"{base}/healthz", timeout=2)
                    return process, base
                except requests.RequestException:
                    time.sleep(0.1)
    raise SystemExit("gunicorn did not start")


def figures(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1], ordered[-1]


def dashboard_case(redis_url: str | None) -> list[float]:
    env = {"DATABASE_URL": _url(BENCH_DB)}
    if redis_url:
        env["REDIS_URL"] = redis_url
    process, base = serve(env)
    try:
        browser = requests.Session()
        browser.get(f"{base}/account/login/", timeout=40)
        signed_in = browser.post(
            f"{base}/account/login/",
            data={
                "username": USERNAME,
                "password": PASSWORD,
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/account/login/"},
            timeout=40,
        )
        assert signed_in.status_code == 200, signed_in.status_code
        assert USERNAME in signed_in.text
        samples = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            response = browser.get(f"{base}/", timeout=40)
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
        return samples
    finally:
        process.terminate()
        process.wait(timeout=10)


def readyz_case(database_url: str) -> tuple[list[float], int]:
    process, base = serve({"DATABASE_URL": database_url})
    try:
        samples, status = [], 0
        for _ in range(max(5, REQUESTS // 3)):
            started = time.perf_counter()
            status = requests.get(f"{base}/readyz", timeout=40).status_code
            samples.append(time.perf_counter() - started)
        return samples, status
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    with psycopg.connect(
        _url("postgres").replace("postgres://", "postgresql://", 1), autocommit=True
    ) as admin:
        admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
    try:
        env = {**os.environ, "DEBUG": "1", "DATABASE_URL": _url(BENCH_DB)}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                "shell",
                "-c",
                f"from accounts.services.traders import trader_sign_up; "
                f"trader_sign_up(username='{USERNAME}', email='bench@example.test', password='{PASSWORD}')",
            ],
            cwd=ROOT,
            env=env,
            check=True,
        )
        hole = BlackHole()
        cases = [
            ("no Redis (embedded)", None),
            ("Redis answering", REDIS_URL),
            ("Redis refusing connections", f"redis://127.0.0.1:{refusing_port()}/0"),
            ("Redis black-holed", f"redis://127.0.0.1:{hole.port}/0"),
        ]
        print(
            f"Signed-in dashboard, {REQUESTS} requests each (seconds: median, p95, slowest; ratio of medians)"
        )
        results = {name: figures(dashboard_case(url)) for name, url in cases}
        healthy = results["Redis answering"][0]
        for name, (median, p95, slowest) in results.items():
            print(f"  {name:30s} {median:.4f}  {p95:.4f}  {slowest:.4f}   x{median / healthy:.2f}")
        print("/readyz (seconds: median, p95, slowest; status; ratio of medians)")
        ok_samples, ok_status = readyz_case(_url(BENCH_DB))
        down_samples, down_status = readyz_case(_url(BENCH_DB, port=hole.port))
        ok, down = figures(ok_samples), figures(down_samples)
        print(f"  {'PostgreSQL answering':30s} {ok[0]:.4f}  {ok[1]:.4f}  {ok[2]:.4f}   {ok_status}  x1.00")
        print(
            f"  {'PostgreSQL black-holed':30s} {down[0]:.4f}  {down[1]:.4f}  {down[2]:.4f}   {down_status}"
            f"  x{down[0] / ok[0]:.2f}"
        )
        hole.stop = True
    finally:
        with psycopg.connect(
            _url("postgres").replace("postgres://", "postgresql://", 1), autocommit=True
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


if __name__ == "__main__":
    main()
