"""The admin: money with its currency, no delete offered where it would be refused, one filter per heading,
gateway errors shown only while they matter."""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import GatewayStatus
from tests.factories import CtidFactory, JurisdictionFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db


def test_balances_show_grouped_with_two_decimals_and_the_currency(staff_client: Client, trader) -> None:
    TradingAccountFactory(ctid=CtidFactory(trader=trader), balance=Decimal("12500.5"), currency="EUR")
    html = staff_client.get(reverse("admin:accounts_tradingaccount_changelist")).content.decode()
    assert "12,500.50 EUR" in html


def test_no_delete_is_offered_for_a_jurisdiction_in_use(staff_client: Client, trader) -> None:
    used = JurisdictionFactory()
    unused = JurisdictionFactory()
    TradingAccountFactory(ctid=CtidFactory(trader=trader), jurisdiction=used)
    changelist = staff_client.get(reverse("admin:accounts_jurisdiction_changelist")).content.decode()
    assert 'value="delete_selected"' not in changelist
    page = staff_client.get(reverse("admin:accounts_jurisdiction_change", args=[used.pk])).content.decode()
    assert "deletelink" not in page
    assert staff_client.post(reverse("admin:accounts_jurisdiction_delete", args=[used.pk])).status_code == 403
    unused_page = staff_client.get(
        reverse("admin:accounts_jurisdiction_change", args=[unused.pk])
    ).content.decode()
    assert "deletelink" in unused_page


def test_every_admin_list_has_one_filter_per_heading(staff_client: Client) -> None:
    checked = 0
    for model, model_admin in admin.site._registry.items():
        if not model_admin.list_filter:
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = staff_client.get(url)
        if response.status_code != 200:
            continue
        headings = re.findall(r"<summary>\s*(.*?)\s*</summary>", response.content.decode(), re.S)
        duplicates = [h for h, n in Counter(headings).items() if n > 1]
        assert duplicates == [], f"{url}: {duplicates}"
        checked += 1
    assert checked >= 5


def test_gateway_status_drops_a_stale_error_once_connected(staff_client: Client) -> None:
    now = timezone.now()
    GatewayStatus.objects.create(
        environment="live",
        state="connected",
        connected_since=now,
        heartbeat_at=now,
        last_error="socket closed by peer (old)",
        last_error_at=now,
    )
    GatewayStatus.objects.create(
        environment="demo", state="reconnecting", last_error="connect refused now", last_error_at=now
    )
    html = staff_client.get(reverse("admin:accounts_gatewaystatus_changelist")).content.decode()
    assert "socket closed by peer (old)" not in html
    assert "connect refused now" in html
