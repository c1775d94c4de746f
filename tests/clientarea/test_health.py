"""Each probe checks what it claims: the tests point every check at a broken peer and watch it fail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from accounts.models import GatewayStatus
from clientarea.health import check_celery_workers, check_database, check_gateway, check_redis
from tests.helpers.ops import DEAD_REDIS_URL

STALE = timedelta(seconds=60)


@pytest.fixture
def broken_database_alias() -> Iterator[str]:
    """A second connection to the same server on a port where nothing listens."""
    alias = "health_broken"
    broken = dict(connections["default"].settings_dict)
    if broken["ENGINE"].endswith("sqlite3"):
        broken["NAME"] = "/nonexistent-directory/db.sqlite3"
    else:
        broken["HOST"], broken["PORT"] = "127.0.0.1", "1"
        broken["OPTIONS"] = {**broken.get("OPTIONS", {}), "connect_timeout": 2}
    connections.settings[alias] = broken
    try:
        yield alias
    finally:
        if alias in connections:
            connections[alias].close()
            del connections[alias]
        del connections.settings[alias]


@pytest.mark.django_db
def test_database_check_passes_on_the_real_database():
    result = check_database()
    assert result.ok, result.detail


def test_database_check_fails_on_a_broken_connection(broken_database_alias, django_db_blocker):
    # Unblocked by hand: this alias is no test database, it is meant to be unreachable.
    with django_db_blocker.unblock():
        result = check_database(using=broken_database_alias)
    assert not result.ok
    assert "OperationalError" in result.detail


def test_redis_check_passes_on_a_live_redis(redis_url):
    assert check_redis(url=redis_url).ok


def test_redis_check_fails_on_a_dead_redis():
    result = check_redis(url=DEAD_REDIS_URL)
    assert not result.ok
    assert "ConnectionError" in result.detail


def test_celery_check_fails_when_no_worker_listens(redis_url):
    # A database no worker of the suite listens on (the suite's workers use 5 and 15).
    lonely_broker = redis_url.rsplit("/", 1)[0] + "/14"
    result = check_celery_workers(broker_url=lonely_broker)
    assert not result.ok
    assert result.detail == "no Celery worker answered a ping"


def test_celery_check_fails_when_the_broker_is_down():
    result = check_celery_workers(broker_url=DEAD_REDIS_URL)
    assert not result.ok


@pytest.mark.celery
def test_celery_check_passes_with_a_running_worker(worker_process, redis_url):
    result = check_celery_workers(broker_url=redis_url)
    assert result.ok, result.detail


@pytest.mark.django_db
def test_gateway_check_fails_when_app_auth_was_refused():
    GatewayStatus.objects.create(environment="live", state=GatewayStatus.State.APP_AUTH_REFUSED)
    result = check_gateway(expected=False, stale_after=STALE)
    assert not result.ok
    assert "refused on live" in result.detail


@pytest.mark.django_db
def test_gateway_check_wants_a_fresh_heartbeat_per_environment_when_expected():
    now = timezone.now()
    GatewayStatus.objects.create(environment="live", state="connected", heartbeat_at=now)
    GatewayStatus.objects.create(
        environment="demo", state="connected", heartbeat_at=now - timedelta(minutes=5)
    )
    result = check_gateway(expected=True, stale_after=STALE)
    assert not result.ok
    assert "demo: last heartbeat" in result.detail
    assert "live" not in result.detail

    GatewayStatus.objects.filter(environment="demo").update(heartbeat_at=now)
    assert check_gateway(expected=True, stale_after=STALE).ok


@pytest.mark.django_db
def test_gateway_check_fails_when_expected_but_never_reported():
    result = check_gateway(expected=True, stale_after=STALE)
    assert not result.ok
    assert "no heartbeat yet" in result.detail


@pytest.mark.django_db
def test_gateway_check_passes_when_not_expected_and_nothing_is_wrong():
    assert check_gateway(expected=False, stale_after=STALE).ok


def test_healthz_answers_without_touching_the_database(client):
    # No django_db mark: any database access here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_answers_for_hosts_outside_allowed_hosts(client):
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200


@pytest.mark.django_db
def test_readyz_is_ready_in_embedded_mode(client, settings):
    settings.REDIS_URL = ""
    settings.HEALTH_GATEWAY_EXPECTED = False
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "gateway"}
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_readyz_is_503_and_names_the_failing_check(client, settings):
    settings.REDIS_URL = DEAD_REDIS_URL
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["redis"]["ok"] is False
    assert checks["celery"]["ok"] is False


@pytest.mark.django_db
def test_readyz_is_503_when_the_expected_gateway_is_silent(client, settings):
    settings.REDIS_URL = ""
    settings.HEALTH_GATEWAY_EXPECTED = True
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["gateway"]["ok"] is False


@pytest.mark.celery
@pytest.mark.django_db
def test_readyz_is_ready_with_redis_and_a_worker(client, settings, worker_process, redis_url):
    settings.REDIS_URL = redis_url
    settings.HEALTH_GATEWAY_EXPECTED = False
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["celery"]["ok"] is True
