import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import (
    AuditEvent,
    CtidToken,
    GatewayAssignment,
    GatewayProcess,
    GatewayStatus,
    Trader,
)
from accounts.services.audit import audit_event_record
from tests.factories import AccountOpeningFactory, AccountTypeFactory, CtidTokenFactory, TradingAccountFactory


@pytest.fixture
def admin_data(trader):
    token = CtidTokenFactory(ctid__trader=trader)
    account = TradingAccountFactory(ctid=token.ctid)
    audit_event_record(category="trader", action="sign_up", outcome="ok", trader=trader)
    GatewayStatus.objects.create(environment="demo", state="connected")
    AccountOpeningFactory(trader=trader, account_type=AccountTypeFactory(name="Demo"), tag="ca-open-admin")
    process = GatewayProcess.objects.create(
        name="gw-1:4242:abc",
        host="gw-1",
        pid=4242,
        environments=["live", "demo"],
        lease_until=timezone.now(),
        heartbeat_at=timezone.now(),
        status={"live": {"state": "connected", "authorized_accounts": 1}},
    )
    GatewayAssignment.objects.create(ctid=token.ctid, process=process)
    return {"token": token, "account": account}


def _registered_models():
    user_model = get_user_model()
    return [m for m in admin.site._registry if m._meta.app_label == "accounts" or m is user_model]


def test_every_accounts_model_is_registered():
    registered = {m.__name__ for m in _registered_models()}
    assert {
        "Jurisdiction",
        "Trader",
        "Ctid",
        "CtidToken",
        "TradingAccount",
        "AuditEvent",
        "GatewayStatus",
        "GatewayProcess",
        "User",
    } <= registered


def test_admin_pages_render_without_token_values(staff_client, admin_data):
    token = admin_data["token"]
    secrets = [token.access_token, token.refresh_token]
    for model in _registered_models():
        opts = model._meta
        changelist = staff_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert changelist.status_code == 200, opts.label
        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, opts.label
        change = staff_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
        assert change.status_code == 200, opts.label
        history = staff_client.get(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[obj.pk])
        )
        assert history.status_code == 200, opts.label
        for page in (changelist, change, history):
            html = page.content.decode()
            for secret in secrets:
                assert secret not in html, f"token value leaked on a {opts.label} page"


def test_token_admin_shows_presence_and_expiry_only(staff_client, admin_data):
    token = admin_data["token"]
    html = staff_client.get(reverse("admin:accounts_ctidtoken_change", args=[token.pk])).content.decode()
    assert "Access token" in html
    assert "Refresh token" in html
    assert 'name="access_token"' not in html
    assert 'name="refresh_token"' not in html
    assert token.access_token not in html


def test_token_pages_never_decrypt(staff_client, admin_data):
    """Admin pages about cTIDs and tokens render even when the ciphertext is unreadable."""
    token = admin_data["token"]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_ctidtoken SET access_token = 'garbage', refresh_token = 'garbage' WHERE id = %s",
            [token.pk],
        )
    for url in (
        reverse("admin:accounts_ctidtoken_changelist"),
        reverse("admin:accounts_ctidtoken_change", args=[token.pk]),
        reverse("admin:accounts_ctid_changelist"),
        reverse("admin:accounts_ctid_change", args=[token.ctid.pk]),
    ):
        assert staff_client.get(url).status_code == 200, url


@pytest.mark.parametrize(
    ("expiry", "days", "listed"),
    [("expired", -1, True), ("7d", 3, True), ("7d", 20, False), ("30d", 20, True), ("later", 20, False)],
)
def test_token_expiry_filter(staff_client, trader, expiry, days, listed):
    from datetime import timedelta

    from django.utils import timezone

    token = CtidTokenFactory(ctid__trader=trader, expires_at=timezone.now() + timedelta(days=days))
    for url in ("admin:accounts_ctidtoken_changelist", "admin:accounts_ctid_changelist"):
        html = staff_client.get(reverse(url), {"expiry": expiry}).content.decode()
        assert (f"cTID {token.ctid.user_id}" in html or str(token.ctid.user_id) in html) is listed


def test_kyc_and_unsuspend_actions_call_services(staff_client, trader, staff_user):
    url = reverse("admin:accounts_trader_changelist")
    response = staff_client.post(url, {"action": "mark_kyc_verified", "_selected_action": [trader.pk]})
    assert response.status_code == 302
    trader.refresh_from_db()
    assert trader.kyc_verified
    assert trader.kyc_verified_at is not None
    assert AuditEvent.objects.filter(trader=trader, action="kyc_verified", actor=staff_user).exists()


def test_suspend_action_asks_for_a_reason_then_suspends(staff_client, trader, staff_user):
    url = reverse("admin:accounts_trader_changelist")
    confirm = staff_client.post(url, {"action": "suspend", "_selected_action": [trader.pk]})
    assert confirm.status_code == 200
    assert trader.user.username in confirm.content.decode()
    trader.refresh_from_db()
    assert not trader.suspended

    done = staff_client.post(
        url,
        {"action": "suspend", "_selected_action": [trader.pk], "apply": "1", "reason": "Chargeback fraud"},
    )
    assert done.status_code == 302
    trader.refresh_from_db()
    assert trader.suspended
    assert trader.suspended_reason == "Chargeback fraud"
    assert AuditEvent.objects.filter(trader=trader, action="suspended", actor=staff_user).exists()

    staff_client.post(url, {"action": "unsuspend", "_selected_action": [trader.pk]})
    trader.refresh_from_db()
    assert not trader.suspended


def test_user_admin_actions_work_on_users(staff_client, trader):
    url = reverse("admin:auth_user_changelist")
    staff_client.post(url, {"action": "mark_kyc_verified", "_selected_action": [trader.user.pk]})
    trader.refresh_from_db()
    assert trader.kyc_verified


def test_user_created_in_admin_gets_a_trader_profile(staff_client):
    response = staff_client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "made-by-staff",
            "password1": "Another-Sturdy-Pass-1",
            "password2": "Another-Sturdy-Pass-1",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302
    user = get_user_model().objects.get(username="made-by-staff")
    assert Trader.objects.filter(user=user).exists()


def test_token_admin_cannot_add_or_change(staff_client, admin_data):
    assert staff_client.get(reverse("admin:accounts_ctidtoken_add")).status_code == 403
    token = admin_data["token"]
    staff_client.post(
        reverse("admin:accounts_ctidtoken_change", args=[token.pk]), {"access_token": "overwritten"}
    )
    assert CtidToken.objects.get(pk=token.pk).access_token == token.access_token


def test_staff_setting_a_password_signals_and_audits(staff_client, trader, staff_user):
    from accounts.signals import trader_password_changed

    received = []

    def on_password(sender, **kwargs):
        received.append(kwargs["trader"])

    trader_password_changed.connect(on_password)
    try:
        response = staff_client.post(
            reverse("admin:auth_user_password_change", args=[trader.user.pk]),
            {
                "password1": "Staff-Chosen-Pass-77",
                "password2": "Staff-Chosen-Pass-77",
                "usable_password": "true",
            },
        )
    finally:
        trader_password_changed.disconnect(on_password)
    assert response.status_code == 302
    trader.user.refresh_from_db()
    assert trader.user.check_password("Staff-Chosen-Pass-77")
    assert received == [trader]
    assert AuditEvent.objects.filter(trader=trader, action="password_admin", actor=staff_user).exists()
