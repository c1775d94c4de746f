"""Staff: account types are checked against the server's trader groups when saved; approvals need a permission."""

from __future__ import annotations

import secrets

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import AccountOpening, AccountType
from accounts.services import opening as service
from tests.factories import StaffUserFactory
from tests.helpers.webservices import verified_trader

pytestmark = pytest.mark.django_db


def form(sandbox_jurisdiction, group: str) -> dict[str, object]:
    return {
        "jurisdiction": sandbox_jurisdiction.pk,
        "name": "New type",
        "environment": "demo",
        "group_name": group,
        "account_type": "HEDGED",
        "deposit_currencies": "EUR,USD",
        "leverage_choices": "30,100",
        "margin_calculation": "MAX",
        "starting_balance": "5000",
        "who_may_open": "anyone",
        "is_active": "on",
    }


def test_group_name_is_checked_against_tradergroups_on_save(
    staff_client, webservices, sandbox_jurisdiction
) -> None:
    refused = staff_client.post(
        "/admin/accounts/accounttype/add/", form(sandbox_jurisdiction, "NO-SUCH-GROUP")
    )
    assert refused.status_code == 200
    assert b"has no trader group" in refused.content
    assert not AccountType.objects.exists()
    webservices.demo.fail_next("trader_groups", "timeout")
    unreachable = staff_client.post(
        "/admin/accounts/accounttype/add/", form(sandbox_jurisdiction, "SANDBOX-TV")
    )
    assert b"could not be read" in unreachable.content
    assert not AccountType.objects.exists()
    saved = staff_client.post("/admin/accounts/accounttype/add/", form(sandbox_jurisdiction, "SANDBOX-TV"))
    assert saved.status_code == 302
    assert AccountType.objects.get().group_name == "SANDBOX-TV"
    assert webservices.demo.calls_to("trader_groups")


def test_approval_needs_the_approve_permission(webservices, demo_type) -> None:
    demo_type.who_may_open = "approval"
    demo_type.save()
    opening = service.account_opening_start(
        trader=verified_trader(),
        request=service.OpeningRequest(
            account_type=demo_type, deposit_currency="EUR", leverage=30, key=secrets.token_urlsafe(6)
        ),
        password=None,
    )
    staff = StaffUserFactory(is_superuser=False)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_accountopening", "change_accountopening"])
    )
    client = Client()
    client.force_login(staff)
    data = {"action": "approve", "_selected_action": [opening.pk]}
    client.post("/admin/accounts/accountopening/", data)
    assert AccountOpening.objects.get(pk=opening.pk).state == AccountOpening.State.AWAITING_APPROVAL
    staff.user_permissions.add(Permission.objects.get(codename="approve_accountopening"))
    client.post("/admin/accounts/accountopening/", data)
    assert AccountOpening.objects.get(pk=opening.pk).state == AccountOpening.State.NEEDS_PASSWORD
