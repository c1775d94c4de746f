"""Staff least privilege: every admin action needs a permission, staff groups hold exactly their powers,
only superusers escalate, and a new client secret never travels in a cookie."""

from __future__ import annotations

import io

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.test import Client, RequestFactory

from accounts.models import CtidToken
from clientarea.staff_groups import STAFF_GROUPS
from tests.factories import PASSWORD, CtidTokenFactory, StaffUserFactory, UserFactory
from tradingview.models import OAuthClient
from tradingview.services.clients import oauth_client_create

User = get_user_model()
SUPPORT, OPERATIONS, INTEGRATIONS = (g.name for g in STAFF_GROUPS)

# Every admin action, by the admin that offers it.
ALL_ACTIONS = {
    "accounts.trader": {"mark_kyc_verified", "suspend", "unsuspend"},
    "auth.user": {"mark_kyc_verified", "suspend", "unsuspend"},
    "accounts.ctid": {"refresh_now", "sync_accounts"},
    "accounts.ctidtoken": {"refresh_now", "sync_accounts"},
    "tradingview.oauthclient": {"deactivate", "rotate_secret"},
    "tradingview.grant": {"revoke"},
    "accounts.accountopening": {"approve", "decline"},
    "tradingview.accountrequest": {"approve_opening"},
}
# What each group may run (the bulk delete Django offers is left out: no group may delete these rows).
GROUP_ACTIONS = {
    SUPPORT: {},
    OPERATIONS: {
        "accounts.trader": {"mark_kyc_verified", "suspend", "unsuspend"},
        "auth.user": {"mark_kyc_verified", "suspend", "unsuspend"},
        "accounts.ctid": {"refresh_now", "sync_accounts"},
        "accounts.ctidtoken": {"refresh_now", "sync_accounts"},
        "tradingview.grant": {"revoke"},
        "accounts.accountopening": {"approve", "decline"},
        "tradingview.accountrequest": {"approve_opening"},
    },
    INTEGRATIONS: {"tradingview.oauthclient": {"deactivate", "rotate_secret"}},
}
# The admin pages each group can open (changelists), out of every registered model.
GROUP_PAGES = {
    SUPPORT: "all",
    OPERATIONS: "all",
    INTEGRATIONS: {
        "tradingview.oauthclient",
        "tradingview.grant",
        "tradingview.tradingviewauditevent",
    },
}


@pytest.fixture
def groups(db):
    call_command("setup_staff_groups", stdout=io.StringIO())
    return {g.name: g for g in Group.objects.all()}


def _staff(group: Group | None = None, *, permissions: tuple[str, ...] = ()) -> User:
    user = UserFactory(is_staff=True)
    if group is not None:
        user.groups.add(group)
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return User.objects.get(pk=user.pk)  # fresh permission cache


def _actions(user: User) -> dict[str, set[str]]:
    request = RequestFactory().get("/admin/")
    request.user = user
    found = {}
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        names = set(model_admin.get_actions(request)) - {"delete_selected"}
        if names:
            found[label] = names
    return found


def _pages(user: User) -> set[str]:
    request = RequestFactory().get("/admin/")
    request.user = user
    return {
        model._meta.label_lower
        for model, model_admin in admin.site._registry.items()
        if model_admin.has_view_or_change_permission(request)
    }


def test_a_superuser_has_every_action(db):
    assert {k: v for k, v in _actions(StaffUserFactory()).items() if k in ALL_ACTIONS} == ALL_ACTIONS


@pytest.mark.parametrize("group_name", [SUPPORT, OPERATIONS, INTEGRATIONS])
def test_each_staff_group_sees_and_runs_exactly_its_list(groups, group_name):
    user = _staff(groups[group_name])
    assert _actions(user) == GROUP_ACTIONS[group_name]
    every = {m._meta.label_lower for m in admin.site._registry}
    # Groups themselves are managed by superusers only.
    every.discard("auth.group")
    expected_pages = every if GROUP_PAGES[group_name] == "all" else GROUP_PAGES[group_name]
    assert _pages(user) == expected_pages
    # Nobody but a superuser may change users, so nobody in a group can escalate through the user admin.
    assert not user.has_perm("auth.change_user")
    assert not user.has_perm("auth.add_user")


def test_setup_staff_groups_is_idempotent_and_resets_hand_made_changes(groups):
    support = groups[SUPPORT]
    support.permissions.add(Permission.objects.get(codename="change_trader"))
    call_command("setup_staff_groups", stdout=io.StringIO())
    assert not support.permissions.filter(codename="change_trader").exists()
    assert Group.objects.filter(name__in=[g.name for g in STAFF_GROUPS]).count() == 3


def _run_action(client: Client, url: str, action: str, pks: list[int]):
    return client.post(url, {"action": action, "_selected_action": pks}, follow=True)


def test_view_only_staff_can_run_no_action(groups, trader):
    """Support holds every view permission and nothing else: each action is refused and changes nothing."""
    user = _staff(groups[SUPPORT])
    client = Client()
    client.force_login(user)
    token = CtidTokenFactory(ctid__trader=trader)
    tv_client, _secret = oauth_client_create(
        name="TV", environment="prod", redirect_uris=["https://tv.example/oauth/callback"]
    )
    hash_before = tv_client.client_secret_hash

    page = client.get("/admin/accounts/trader/")
    assert page.status_code == 200
    for action in ("mark_kyc_verified", "suspend", "unsuspend"):
        assert f'value="{action}"'.encode() not in page.content
    _run_action(client, "/admin/accounts/trader/", "mark_kyc_verified", [trader.pk])
    _run_action(client, "/admin/accounts/trader/", "suspend", [trader.pk])
    trader.refresh_from_db()
    assert not trader.kyc_verified
    assert not trader.suspended

    for url, pk in (("/admin/accounts/ctid/", token.ctid_id), ("/admin/accounts/ctidtoken/", token.pk)):
        listing = client.get(url)
        assert b'value="refresh_now"' not in listing.content
        assert b'value="sync_accounts"' not in listing.content
        _run_action(client, url, "refresh_now", [pk])
    assert CtidToken.objects.get(pk=token.pk).version == token.version

    listing = client.get("/admin/tradingview/oauthclient/")
    assert b'value="rotate_secret"' not in listing.content
    response = _run_action(client, "/admin/tradingview/oauthclient/", "rotate_secret", [tv_client.pk])
    assert OAuthClient.objects.get(pk=tv_client.pk).client_secret_hash == hash_before
    assert b"New client secret" not in response.content


def test_operations_runs_trader_actions_and_integrations_rotates_secrets(groups, trader):
    ops = Client()
    ops.force_login(_staff(groups[OPERATIONS]))
    _run_action(ops, "/admin/accounts/trader/", "mark_kyc_verified", [trader.pk])
    trader.refresh_from_db()
    assert trader.kyc_verified

    tv_client, _secret = oauth_client_create(
        name="TV", environment="prod", redirect_uris=["https://tv.example/oauth/callback"]
    )
    before = tv_client.client_secret_hash
    _run_action(ops, "/admin/tradingview/oauthclient/", "rotate_secret", [tv_client.pk])
    assert OAuthClient.objects.get(pk=tv_client.pk).client_secret_hash == before

    integrations = Client()
    integrations.force_login(_staff(groups[INTEGRATIONS]))
    page = _run_action(integrations, "/admin/tradingview/oauthclient/", "rotate_secret", [tv_client.pk])
    assert OAuthClient.objects.get(pk=tv_client.pk).client_secret_hash != before
    assert b"New client secret" in page.content
    _run_action(integrations, "/admin/accounts/trader/", "suspend", [trader.pk])
    trader.refresh_from_db()
    assert not trader.suspended


def test_staff_who_may_change_users_cannot_make_anyone_superuser(db, trader):
    """Django's default user admin let a staff member with "change user" tick is_superuser on itself."""
    user = _staff(permissions=("auth.view_user", "auth.change_user"))
    client = Client()
    client.force_login(user)
    form = client.get(f"/admin/auth/user/{trader.user.pk}/change/")
    assert form.status_code == 200
    assert b'name="is_superuser"' not in form.content
    assert b'name="groups"' not in form.content
    response = client.post(
        f"/admin/auth/user/{trader.user.pk}/change/",
        {
            "username": trader.user.username,
            "email": trader.user.email,
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [g.pk for g in Group.objects.all()],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "trader-TOTAL_FORMS": "1",
            "trader-INITIAL_FORMS": "1",
            "trader-MIN_NUM_FORMS": "0",
            "trader-MAX_NUM_FORMS": "1",
            "trader-0-id": trader.pk,
            "trader-0-user": trader.user.pk,
        },
    )
    assert response.status_code in (200, 302)
    changed = User.objects.get(pk=trader.user.pk)
    assert not changed.is_superuser
    assert not changed.is_staff

    # Its own account is a staff account: not changeable, nor its password, by a non-superuser.
    assert client.get(f"/admin/auth/user/{user.pk}/change/").status_code in (200, 403)
    client.post(
        f"/admin/auth/user/{user.pk}/change/",
        {"username": user.username, "is_active": "on", "is_staff": "on", "is_superuser": "on"},
    )
    assert not User.objects.get(pk=user.pk).is_superuser
    root = StaffUserFactory()
    takeover = client.post(
        f"/admin/auth/user/{root.pk}/password/",
        {"password1": "Taken-Over-Password-9", "password2": "Taken-Over-Password-9"},
    )
    assert takeover.status_code == 403
    assert User.objects.get(pk=root.pk).check_password(PASSWORD)


def test_a_superuser_still_grants_staff_and_groups(groups, trader):
    client = Client()
    client.force_login(StaffUserFactory())
    form = client.get(f"/admin/auth/user/{trader.user.pk}/change/")
    assert b'name="is_superuser"' in form.content
    assert b'name="groups"' in form.content


def test_a_new_client_secret_is_shown_once_in_the_response_never_in_a_cookie(db):
    staff = StaffUserFactory()
    client = Client()
    client.force_login(staff)
    response = client.post(
        "/admin/tradingview/oauthclient/add/",
        {
            "name": "TV production",
            "environment": "prod",
            "is_active": "on",
            "redirect_uris-TOTAL_FORMS": "1",
            "redirect_uris-INITIAL_FORMS": "0",
            "redirect_uris-MIN_NUM_FORMS": "1",
            "redirect_uris-MAX_NUM_FORMS": "1000",
            "redirect_uris-0-uri": "https://tv.example/callback",
        },
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    created = OAuthClient.objects.get()
    secret = response.context["shown"][0]["secret"]
    assert created.check_secret(secret)
    assert secret.encode() in response.content
    assert not any(secret in m.value for m in response.cookies.values())
    assert not any(secret in m.value for m in client.cookies.values())
    assert secret not in str(dict(client.session))
    again = client.get("/admin/tradingview/oauthclient/")
    assert secret.encode() not in again.content

    rotated = client.post(
        "/admin/tradingview/oauthclient/", {"action": "rotate_secret", "_selected_action": [created.pk]}
    )
    assert rotated.status_code == 200
    new_secret = rotated.context["shown"][0]["secret"]
    assert OAuthClient.objects.get(pk=created.pk).check_secret(new_secret)
    assert not any(new_secret in m.value for m in rotated.cookies.values())
    assert not any(new_secret in m.value for m in client.cookies.values())
    assert new_secret.encode() not in client.get("/admin/tradingview/oauthclient/").content


def test_every_admin_action_declares_the_permission_it_needs():
    undeclared = []
    for model, model_admin in admin.site._registry.items():
        for action in model_admin.actions or ():
            func = getattr(model_admin, action, None) if isinstance(action, str) else action
            name = getattr(func, "__name__", str(action))
            if name != "delete_selected" and not getattr(func, "allowed_permissions", None):
                undeclared.append(f"{model._meta.label}.{name}")
    assert undeclared == []
