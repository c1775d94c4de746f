"""Liveness and readiness probes for load balancers and orchestrators.

``/healthz`` answers as long as the process serves requests and touches nothing else, so a database outage
does not get healthy web processes restarted. ``/readyz`` checks what a request needs: the database; Redis
and at least one Celery worker when a broker is configured; and what the Open API gateway last reported.
Each check returns its own result, and any failure turns the answer into a 503.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import lru_cache

from celery import Celery
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from clientarea.never_cache import never_cache


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str
    duration_ms: float = 0.0


def check_database(*, using: str = "default") -> Check:
    try:
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return Check(False, f"database unreachable: {type(exc).__name__}")
    return Check(True, f"{connections[using].vendor} answers")


def check_redis(*, url: str) -> Check:
    import redis

    timeout = settings.HEALTH_CHECK_TIMEOUT
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except Exception as exc:
        return Check(False, f"redis unreachable: {type(exc).__name__}")
    finally:
        client.close()
    return Check(True, "redis answers")


@lru_cache(maxsize=4)
def _control_app(broker_url: str) -> Celery:
    """A Celery app bound to ``broker_url`` only to send control pings (the main app may be eager)."""
    from clientarea.celery import app

    probe = Celery("clientarea-health", broker=broker_url, set_as_current=False)
    # A probe answers now or fails: no publish retries, short socket timeouts.
    probe.conf.broker_connection_timeout = settings.HEALTH_CHECK_TIMEOUT
    probe.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "max_retries": 0,
        "socket_connect_timeout": settings.HEALTH_CHECK_TIMEOUT,
        "socket_timeout": settings.HEALTH_CHECK_TIMEOUT,
    }
    return probe


def check_celery_workers(*, broker_url: str) -> Check:
    probe = _control_app(broker_url)
    try:
        # One reply is enough: the ping returns as soon as a worker answers.
        replies = probe.control.ping(timeout=settings.HEALTH_CHECK_TIMEOUT, limit=1)
    except Exception as exc:
        return Check(False, f"broker unreachable: {type(exc).__name__}")
    if not replies:
        return Check(False, "no Celery worker answered a ping")
    return Check(True, f"{len(replies)} worker(s) answered")


def check_gateway(*, expected: bool, stale_after: timedelta | None = None) -> Check:
    """Refused app auth is always fatal; when a gateway is expected, each environment must be healthy."""
    from accounts.selectors import gateway_health

    try:
        health = gateway_health(stale_after=stale_after)
    except Exception as exc:
        return Check(False, f"gateway status unreadable: {type(exc).__name__}")
    if health.refused:
        return Check(
            False, f"Open API application auth refused on {', '.join(health.refused)}; the gateway stopped"
        )
    if not expected:
        return Check(True, "gateway not expected in this process group")
    problems = health.problems(expected=list(settings.HEALTH_GATEWAY_ENVIRONMENTS))
    if problems:
        return Check(False, "; ".join(problems))
    return Check(
        True,
        ", ".join(
            f"{env}: {health.environments[env]['state']}" for env in settings.HEALTH_GATEWAY_ENVIRONMENTS
        ),
    )


def _timed(check: Callable[[], Check]) -> Check:
    started = time.perf_counter()
    result = check()
    return Check(result.ok, result.detail, round((time.perf_counter() - started) * 1000, 1))


def _checks() -> dict[str, Callable[[], Check]]:
    checks: dict[str, Callable[[], Check]] = {"database": check_database}
    if settings.REDIS_URL:
        checks["redis"] = lambda: check_redis(url=settings.REDIS_URL)
        checks["celery"] = lambda: check_celery_workers(broker_url=settings.REDIS_URL)
    checks["gateway"] = lambda: check_gateway(
        expected=settings.HEALTH_GATEWAY_EXPECTED,
        stale_after=timedelta(seconds=settings.HEALTH_GATEWAY_STALE_SECONDS),
    )
    return checks


# One worker thread per check: a check stuck on a black-holed peer keeps its thread, and later probes report
# it as still running instead of piling up more stuck threads.
_executors: dict[str, ThreadPoolExecutor] = {}
_running: dict[str, Future[Check]] = {}
_lock = threading.Lock()


def _in_thread(check: Callable[[], Check]) -> Check:
    try:
        return _timed(check)
    finally:
        # The check ran in a thread of its own: its database connection is not reused by anyone else.
        connections.close_all()


def _submit(name: str, check: Callable[[], Check]) -> Future[Check]:
    with _lock:
        running = _running.get(name)
        if running is not None and not running.done():
            return running
        executor = _executors.get(name)
        if executor is None:
            executor = _executors[name] = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"readyz-{name}"
            )
        future = _running[name] = executor.submit(_in_thread, check)
        return future


def readiness_checks() -> dict[str, Check]:
    """Every check at once, each in its own thread; whatever has not answered within the budget fails."""
    budget = settings.HEALTH_READYZ_BUDGET_SECONDS
    started = time.perf_counter()
    futures = {name: _submit(name, check) for name, check in _checks().items()}
    results = {}
    for name, future in futures.items():
        remaining = max(0.0, budget - (time.perf_counter() - started))
        try:
            results[name] = future.result(timeout=remaining)
        except FutureTimeout:
            results[name] = Check(
                False, f"{name} did not answer within {budget:g} s", round(budget * 1000, 1)
            )
        except Exception as exc:
            results[name] = Check(False, f"{name} check failed: {type(exc).__name__}")
    return results


_cached: tuple[float, int, bytes] | None = None


def _allowed(request: HttpRequest) -> bool:
    token = settings.HEALTH_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    from clientarea.client_ip import client_ip

    # The client's address as the trusted proxies saw it: a request relayed from outside is not internal.
    try:
        address = ipaddress.ip_address(client_ip(request) or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in settings.HEALTH_ALLOWED_NETWORKS)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """Served to the internal network or with the token only, answered within the budget, cached briefly."""
    global _cached
    if not _allowed(request):
        return JsonResponse({"status": "forbidden"}, status=403)
    now = time.monotonic()
    cached = _cached
    if cached is not None and now - cached[0] < settings.HEALTH_CACHE_SECONDS:
        return HttpResponse(cached[2], status=cached[1], content_type="application/json")
    results = readiness_checks()
    ready = all(r.ok for r in results.values())
    response = JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": {n: asdict(r) for n, r in results.items()}},
        status=200 if ready else 503,
    )
    _cached = (time.monotonic(), response.status_code, response.content)
    return response


def reset_readiness_cache() -> None:
    global _cached
    _cached = None


class HealthCheckMiddleware:
    """Answers the probes before host validation and the HTTPS redirect.

    Orchestrators probe by pod address over plain HTTP; going through ALLOWED_HOSTS and SECURE_SSL_REDIRECT
    would turn every probe into a 400 or a 301 while the process is perfectly healthy.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.views = {"/healthz": healthz, "/readyz": readyz}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.views.get(request.path_info)
        if view is not None:
            return view(request)
        return self.get_response(request)
