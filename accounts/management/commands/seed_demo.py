"""Demo data for a development or sandbox client area. Safe to run on every start.

It creates the sandbox jurisdictions, a demo trader and a staff superuser, and prints both logins. The demo
trader also gets the simulator's second cTID (7001002) with its live and demo accounts, as last seen, in
the "needs reconnect" state: no real token exists for it, so the dashboard shows the reconnect path, and the
first cTID of the simulator (7001001, live and demo accounts) is left for the trader to connect through the
sandbox cTrader ID consent page.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from accounts.models import AccountType, Ctid, Jurisdiction, Trader, TradingAccount
from sandbox.world import demo_world

JURISDICTIONS = [
    ("SANDBOX-EU", "Sandbox EU", True),
    ("SANDBOX-INTL", "Sandbox Intl", True),
    ("SANDBOX-RESTRICTED", "Sandbox Restricted (no TradingView)", False),
]
DEMO_CTID = 7001002
DEMO_USERNAME, DEMO_PASSWORD = "demo", "demo-trader-2026"
ADMIN_USERNAME, ADMIN_PASSWORD = "admin", "admin-staff-2026"


# (brokerName, name, environment, groupName, cTrader/TradingView, who may open, demo starting balance)
DEMO_ACCOUNT_TYPES = [
    ("SANDBOX-EU", "cTrader/TradingView demo", "demo", "SANDBOX-TV", True, "anyone", 10_000),
    ("SANDBOX-EU", "cTrader/TradingView live", "live", "SANDBOX-TV", True, "kyc", 0),
    ("SANDBOX-INTL", "Standard live", "live", "SANDBOX-STANDARD", False, "approval", 0),
]

DEMO_BRAND = {
    "name": "Northwind Markets (demo)",
    "primary_color": "#0f6e5c",
    "header_color": "#0d2b3e",
    "support_email": "support@northwind.example",
    "support_url": "https://northwind.example/help",
    "legal_footer": "Northwind Markets is a made-up broker of the sandbox. "
    "CFDs are complex instruments and come with a high risk of losing money rapidly due to leverage.",
}


class Command(BaseCommand):
    help = "Create demo jurisdictions, a demo trader and a staff superuser (development and sandbox only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="Set the demo and admin passwords back to the printed ones.",
        )

    def handle(self, *args: Any, reset_passwords: bool, **options: Any) -> None:
        if not (settings.DEBUG or settings.SANDBOX):
            raise CommandError(
                "seed_demo creates users with known passwords; it runs only with DEBUG or SANDBOX."
            )
        with transaction.atomic():
            for broker_name, display_name, tradingview in JURISDICTIONS:
                Jurisdiction.objects.update_or_create(
                    broker_name=broker_name,
                    defaults={"display_name": display_name, "tradingview_enabled": tradingview},
                )
            demo = self._user(DEMO_USERNAME, DEMO_PASSWORD, staff=False, reset=reset_passwords)
            trader, _ = Trader.objects.get_or_create(user=demo)
            admin = self._user(ADMIN_USERNAME, ADMIN_PASSWORD, staff=True, reset=reset_passwords)
            ctid_note = self._demo_ctid(trader)
            self._account_types()
        self._demo_brand()

        self.stdout.write(
            "\n".join(
                [
                    "",
                    "=" * 72,
                    " Demo logins (development data, do not use in production)",
                    f"   Trader: {DEMO_USERNAME} / {self._shown(demo, DEMO_PASSWORD)}"
                    f"   {settings.SITE_URL}/account/login/",
                    f"   Staff:  {ADMIN_USERNAME} / {self._shown(admin, ADMIN_PASSWORD)}"
                    f"   {settings.SITE_URL}/admin/",
                    f" {ctid_note}",
                    "=" * 72,
                    "",
                ]
            )
        )

    @staticmethod
    def _account_types() -> None:
        """The account types the sandbox's WebServices simulator knows the groups of."""
        for broker_name, name, environment, group, tradingview, who, balance in DEMO_ACCOUNT_TYPES:
            jurisdiction = Jurisdiction.objects.filter(broker_name=broker_name).first()
            if jurisdiction is None:
                continue
            AccountType.objects.get_or_create(
                jurisdiction=jurisdiction,
                name=name,
                environment=environment,
                defaults={
                    "group_name": group,
                    "deposit_currencies": "EUR,USD",
                    "leverage_choices": "30,100,200",
                    "is_tradingview": tradingview,
                    "who_may_open": who,
                    "starting_balance": balance,
                },
            )

    @staticmethod
    def _demo_brand() -> None:
        """A made-up broker brand, so the sandbox shows what branding changes; staff edits are kept."""
        from branding.models import Brand
        from branding.services import brand_update

        if not Brand.objects.filter(pk=1).exists():
            brand_update(actor=None, fields=DEMO_BRAND)

    @staticmethod
    def _shown(user: Any, password: str) -> str:
        if user.check_password(password):
            return password
        return "(password changed since; run seed_demo --reset-passwords to restore it)"

    @staticmethod
    def _user(username: str, password: str, *, staff: bool, reset: bool) -> Any:
        user, created = get_user_model().objects.get_or_create(
            username=username,
            defaults={"email": f"{username}@example.test", "is_staff": staff, "is_superuser": staff},
        )
        if created or reset:
            user.set_password(password)
            user.save(update_fields=["password"])
        return user

    @staticmethod
    def _demo_ctid(trader: Trader) -> str:
        existing = Ctid.objects.filter(user_id=DEMO_CTID).select_related("trader").first()
        if existing is not None and existing.trader_id != trader.pk:
            return f"cTID {DEMO_CTID} belongs to another trader; left as it is."
        if existing is not None:
            return f"cTID {DEMO_CTID} already present ({existing.get_state_display().lower()})."
        sim = demo_world().ctids[DEMO_CTID]
        now = timezone.now()
        ctid = Ctid.objects.create(
            user_id=DEMO_CTID,
            trader=trader,
            state=Ctid.State.NEEDS_RECONNECT,
            state_reason="demo data without tokens: connect it through the sandbox",
            last_synced_at=now,
        )
        jurisdictions = {j.broker_name: j for j in Jurisdiction.objects.all()}
        for account in sim.accounts:
            TradingAccount.objects.create(
                ctid_trader_account_id=account.ctid_trader_account_id,
                ctid=ctid,
                login=account.trader_login,
                is_live=account.is_live,
                jurisdiction=jurisdictions.get(account.broker_name),
                broker_name=account.broker_name,
                broker_title=account.broker_title_short,
                balance=Decimal(account.balance).scaleb(-account.money_digits),
                currency=account.deposit_asset,
                balance_updated_at=now,
                last_synced_at=now,
            )
        return (
            f"cTID {DEMO_CTID} seeded as needing reconnect; connect cTID 7001001 (live and demo) "
            "from the dashboard."
        )
