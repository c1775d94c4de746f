"""Benchmark of one peer call: the project's HTTP client against plain requests and bare urllib3.

    DEBUG=1 .venv/bin/python bench/bench_http.py

The two calls the hot paths make, to loopback simulators in a process of their own (as a remote peer is):
the cTrader ID token request (a GET with the grant in its query string, as every Open API token refresh
makes it) and the adapter's ``POST /generate/token`` (a JSON body and a bearer, as every TradingView link and
refresh grant makes it). Each is made by four clients in turns, the same request with the same answer:

- project: a session of ``clientarea.http.session()`` as the peer clients use it (overall deadline,
  connect retries), on its direct route to the connection pool;
- through requests: the same session with ``direct = False``, every call through ``requests.Session.request``
  (what the project's client did before the direct route);
- plain requests: a ``requests.Session`` with nothing added (``trust_env`` off);
- urllib3: the request made straight on a urllib3 connection pool, the body read and parsed.

Printed: median wall time a call, CPU a call (this process only), and each over plain requests. Sizes:
BENCH_CALLS (calls per client per turn, 200) and BENCH_TURNS (10).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe, python_speed_us  # noqa: E402

CALLS = int(os.environ.get("BENCH_CALLS", "200"))
TURNS = int(os.environ.get("BENCH_TURNS", "10"))
BEARER = "bench-broker-bearer"
TOKEN_ANSWER = {
    "accessToken": "a" * 43,
    "refreshToken": "r" * 43,
    "expiresIn": 2628000,
    "tokenType": "bearer",
    "errorCode": None,
    "description": None,
}
ADAPTER_PAYLOAD = {
    "userId": 14601,
    "brokerNames": ["BESTBROKER"],
    "ctidTraderAccountIds": [137780091, 137792301],
    "isVerified": True,
}


def run_peers(ready: Any) -> None:
    """Entry point of the peer process: the token endpoint and the adapter simulator on one loopback server."""
    from sandbox.adapter import AdapterSim, routes
    from sandbox.httpd import Request, Response, serve

    def token(request: Request) -> Response:
        return Response.json(TOKEN_ANSWER)

    sim = AdapterSim(bearer=BEARER, latency=0.0, record=False)
    server = serve([("GET", "/apps/token", token), *routes(bearer=BEARER, prefix="/adapter", sim=sim)])
    ready.put(server.url)
    while True:
        time.sleep(3600)


def main() -> None:
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientarea.settings")
    import django

    django.setup()

    import requests
    import urllib3

    from clientarea import http

    fork = multiprocessing.get_context("fork")
    ready = fork.Queue()
    peers = fork.Process(target=run_peers, args=(ready,), daemon=True)
    peers.start()
    base = ready.get(timeout=30)
    host, port = base.removeprefix("http://").split(":")

    token_url = f"{base}/apps/token"
    token_params = {
        "grant_type": "refresh_token",
        "refresh_token": "r" * 43,
        "client_id": "bench-client",
        "client_secret": "bench-secret",
    }
    adapter_url = f"{base}/adapter/generate/token"
    adapter_headers = {
        "Accept": "application/json",
        "Authorization": f"Bearer {BEARER}",
        "Content-Type": "application/json",
    }

    project = http.session(deadline=10)
    through_requests = http.session(deadline=10)
    through_requests.direct = False
    plain = requests.Session()
    plain.trust_env = False
    pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=1)
    token_target = "/apps/token?" + urlencode(token_params)

    def token_call(session: requests.Session) -> Callable[[], Any]:
        def call() -> Any:
            return session.request(
                "GET",
                token_url,
                params=token_params,
                headers={"Accept": "application/json"},
                timeout=(5, 5),
                allow_redirects=False,
            ).json()

        return call

    def adapter_call(session: requests.Session) -> Callable[[], Any]:
        def call() -> Any:
            return session.request(
                "POST",
                adapter_url,
                json=ADAPTER_PAYLOAD,
                headers=adapter_headers,
                timeout=(5, 5),
                allow_redirects=False,
            ).json()

        return call

    def token_urllib3() -> Any:
        return json.loads(
            pool.request("GET", token_target, headers={"Accept": "application/json"}, timeout=5).data
        )

    def adapter_urllib3() -> Any:
        return json.loads(
            pool.request(
                "POST",
                "/adapter/generate/token",
                body=json.dumps(ADAPTER_PAYLOAD).encode(),
                headers=adapter_headers,
                timeout=5,
            ).data
        )

    calls = {
        "token GET (cTrader ID)": {
            "project": token_call(project),
            "through requests": token_call(through_requests),
            "plain requests": token_call(plain),
            "urllib3": token_urllib3,
        },
        "POST /generate/token (adapter)": {
            "project": adapter_call(project),
            "through requests": adapter_call(through_requests),
            "plain requests": adapter_call(plain),
            "urllib3": adapter_urllib3,
        },
    }

    speed_before = python_speed_us()
    print(f"one peer call, {CALLS} calls per client in each of {TURNS} turns, clients in turns (medians)")
    for name, clients in calls.items():
        answers = {label: call() for label, call in clients.items()}
        first = next(iter(answers.values()))
        assert all(answer.keys() == first.keys() for answer in answers.values()), answers
        for call in clients.values():
            for _ in range(50):
                call()
        wall: dict[str, list[float]] = {label: [] for label in clients}
        cpu: dict[str, list[float]] = {label: [] for label in clients}
        for _ in range(TURNS):
            for label, call in clients.items():
                started_cpu = time.process_time()
                for _ in range(CALLS):
                    t0 = time.perf_counter()
                    call()
                    wall[label].append(time.perf_counter() - t0)
                cpu[label].append((time.process_time() - started_cpu) / CALLS)
        plain_wall = statistics.median(wall["plain requests"])
        plain_cpu = statistics.median(cpu["plain requests"])
        print(f"\n{name}")
        print(f"   {'client':<17} {'wall':>9} {'÷ plain':>8} {'CPU':>9} {'÷ plain':>8}")
        for label in clients:
            w, c = statistics.median(wall[label]), statistics.median(cpu[label])
            print(
                f"   {label:<17} {w * 1e6:>6.0f} µs {w / plain_wall:>8.2f} {c * 1e6:>6.0f} µs {c / plain_cpu:>8.2f}"
            )
    print(
        "\n   project: clientarea.http.session() (deadline, connect retries), direct route; through requests:"
        " the same\n   session with direct = False; plain requests: requests.Session(); urllib3: a bare"
        " connection pool."
    )
    print(f"   {describe(speed_before, python_speed_us())}")
    peers.terminate()


if __name__ == "__main__":
    main()
