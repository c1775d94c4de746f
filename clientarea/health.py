"""Liveness and readiness probes for load balancers and orchestrators.

``/healthz`` answers as long as the process serves requests and touches nothing else, so a database outage
does not get healthy web processes restarted. ``/readyz`` checks what a request needs: the database; Redis
and at least one Celery worker when a broker is configured; and what the Open API gateway last reported.
Each check returns its own result, and any failure turns the answer into a 503.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import lru_cache

from celery import Celery
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


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
        replies = probe.control.ping(timeout=settings.HEALTH_CHECK_TIMEOUT)
    except Exception as exc:
        return Check(False, f"broker unreachable: {type(exc).__name__}")
    if not replies:
        return Check(False, "no Celery worker answered a ping")
    return Check(True, f"{len(replies)} worker(s) answered")


def check_gateway(*, expected: bool, stale_after: timedelta) -> Check:
    """Refused app auth is always fatal; when a gateway is expected, each environment needs a fresh heartbeat."""
    from accounts.models import GatewayStatus

    try:
        statuses = {s.environment: s for s in GatewayStatus.objects.all()}
    except Exception as exc:
        return Check(False, f"gateway status unreadable: {type(exc).__name__}")
    refused = sorted(env for env, s in statuses.items() if s.state == GatewayStatus.State.APP_AUTH_REFUSED)
    if refused:
        return Check(False, f"Open API application auth refused on {', '.join(refused)}; the gateway stopped")
    if not expected:
        return Check(True, "gateway not expected in this process group")
    now = timezone.now()
    problems = []
    for environment in settings.HEALTH_GATEWAY_ENVIRONMENTS:
        status = statuses.get(environment)
        if status is None or status.heartbeat_at is None:
            problems.append(f"{environment}: no heartbeat yet")
        elif now - status.heartbeat_at > stale_after:
            problems.append(
                f"{environment}: last heartbeat {int((now - status.heartbeat_at).total_seconds())} s ago"
            )
    if problems:
        return Check(False, "; ".join(problems))
    return Check(
        True, ", ".join(f"{env}: {statuses[env].state}" for env in settings.HEALTH_GATEWAY_ENVIRONMENTS)
    )


def _timed(check: Callable[[], Check]) -> Check:
    started = time.perf_counter()
    result = check()
    return Check(result.ok, result.detail, round((time.perf_counter() - started) * 1000, 1))


def readiness_checks() -> dict[str, Check]:
    checks: dict[str, Callable[[], Check]] = {"database": check_database}
    if settings.REDIS_URL:
        checks["redis"] = lambda: check_redis(url=settings.REDIS_URL)
        checks["celery"] = lambda: check_celery_workers(broker_url=settings.REDIS_URL)
    checks["gateway"] = lambda: check_gateway(
        expected=settings.HEALTH_GATEWAY_EXPECTED,
        stale_after=timedelta(seconds=settings.HEALTH_GATEWAY_STALE_SECONDS),
    )
    return {name: _timed(check) for name, check in checks.items()}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results = readiness_checks()
    ready = all(r.ok for r in results.values())
    return JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": {n: asdict(r) for n, r in results.items()}},
        status=200 if ready else 503,
    )


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
