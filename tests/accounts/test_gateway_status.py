"""The gateway status endpoint for staff and monitors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from accounts.models import GatewayStatus

pytestmark = pytest.mark.django_db

URL = "/api/v1/gateway/status/"


def staff_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("ops", password="x-Pass-123", is_staff=True))
    return client


def test_healthy_when_every_environment_is_connected_with_a_recent_heartbeat() -> None:
    now = timezone.now()
    for env in ("live", "demo"):
        GatewayStatus.objects.create(
            environment=env, state="connected", connected_since=now, authorized_accounts=3, heartbeat_at=now
        )

    response = staff_client().get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["healthy"] is True
    assert body["environments"]["live"]["authorized_accounts"] == 3
    assert body["environments"]["demo"]["state"] == "connected"


def test_unhealthy_when_an_environment_is_stopped_or_silent() -> None:
    now = timezone.now()
    GatewayStatus.objects.create(
        environment="live", state="connected", heartbeat_at=now - timedelta(minutes=5)
    )
    GatewayStatus.objects.create(
        environment="demo", state="app_auth_refused", last_error="Application auth refused on demo"
    )

    response = staff_client().get(URL)

    assert response.status_code == 503
    body = response.json()
    assert body["healthy"] is False
    assert body["environments"]["live"]["healthy"] is False
    assert body["environments"]["demo"]["last_error"] == "Application auth refused on demo"


def test_only_staff_may_read_it() -> None:
    client = Client()
    client.force_login(get_user_model().objects.create_user("trader", password="x-Pass-123"))
    assert client.get(URL).status_code == 403
    assert Client().get(URL).status_code == 403
