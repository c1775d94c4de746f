"""Staff groups shipped as data: each names exactly the permissions its job needs.

``manage.py setup_staff_groups`` creates or updates them (it is idempotent: a group's permissions are set to
this list, whatever was added by hand). Superusers put staff members in groups from the admin's user page.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission
from django.db import transaction

# Every model a staff member may look at in the admin.
_READABLE = (
    "auth.user",
    "accounts.jurisdiction",
    "accounts.trader",
    "accounts.ctid",
    "accounts.ctidtoken",
    "accounts.tradingaccount",
    "accounts.auditevent",
    "accounts.gatewaystatus",
    "accounts.gatewayprocess",
    "accounts.accounttype",
    "accounts.accountopening",
    "branding.brand",
    "tradingview.oauthclient",
    "tradingview.redirecturi",
    "tradingview.grant",
    "tradingview.accountrequest",
    "tradingview.tradingviewauditevent",
    "axes.accessattempt",
    "axes.accesslog",
    "axes.accessfailurelog",
)


def _view(models: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{m.split('.')[0]}.view_{m.split('.')[1]}" for m in models)


@dataclass(frozen=True)
class StaffGroup:
    name: str
    description: str
    permissions: tuple[str, ...]


STAFF_GROUPS: tuple[StaffGroup, ...] = (
    StaffGroup(
        name="Support: read only",
        description="Reads traders, cTIDs, token health, accounts, TradingView links and the audit trail. "
        "Runs no action.",
        permissions=_view(_READABLE),
    ),
    StaffGroup(
        name="Operations: actions on traders and tokens",
        description="Everything Support reads, plus KYC verification, suspension, token refresh, account "
        "sync, TradingView grant revocation, account requests, account types, approval of account openings, jurisdictions and sign-in lock-outs.",
        permissions=(
            *_view(_READABLE),
            "accounts.change_trader",
            "accounts.change_ctid",
            "accounts.change_jurisdiction",
            "accounts.add_jurisdiction",
            "accounts.change_tradingaccount",
            "tradingview.change_grant",
            "tradingview.change_accountrequest",
            "axes.delete_accessattempt",
            "accounts.add_accounttype",
            "accounts.change_accounttype",
            "accounts.approve_accountopening",
        ),
    ),
    StaffGroup(
        name="Integrations: TradingView clients",
        description="Registers TradingView clients, edits their redirect URIs, rotates their secrets and reads "
        "TradingView links and their audit trail.",
        permissions=(
            "tradingview.view_oauthclient",
            "tradingview.add_oauthclient",
            "tradingview.change_oauthclient",
            "tradingview.view_redirecturi",
            "tradingview.add_redirecturi",
            "tradingview.change_redirecturi",
            "tradingview.delete_redirecturi",
            "tradingview.view_grant",
            "tradingview.view_tradingviewauditevent",
        ),
    ),
)


def _permissions(names: tuple[str, ...]) -> list[Permission]:
    wanted = {tuple(n.split(".", 1)) for n in names}
    found = [
        p
        for p in Permission.objects.select_related("content_type").filter(
            codename__in={codename for _, codename in wanted}
        )
        if (p.content_type.app_label, p.codename) in wanted
    ]
    missing = wanted - {(p.content_type.app_label, p.codename) for p in found}
    if missing:
        # Permissions are created by migrate; a missing one means the database is not migrated.
        raise LookupError(f"Unknown permissions (run migrate first): {sorted('.'.join(m) for m in missing)}")
    return found


def staff_groups_setup() -> list[tuple[str, int]]:
    """Create or update every staff group to exactly its permissions; returns (name, permission count)."""
    done = []
    with transaction.atomic():
        for spec in STAFF_GROUPS:
            group, _ = Group.objects.get_or_create(name=spec.name)
            permissions = _permissions(spec.permissions)
            group.permissions.set(permissions)
            done.append((spec.name, len(permissions)))
    return done
