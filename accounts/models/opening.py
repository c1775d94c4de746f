"""Account types traders may open and the openings through the broker WebServices API."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from .people import Jurisdiction, Trader
from .trading_accounts import BrokerEnvironment, TradingAccount


class AccountType(models.Model):
    """A kind of trading account traders of one jurisdiction may open through the broker WebServices API."""

    Environment = BrokerEnvironment

    class Kind(models.TextChoices):
        HEDGED = "HEDGED", "Hedged"
        NETTED = "NETTED", "Netted"
        SPREAD_BETTING = "SPREAD_BETTING", "Spread betting"

    class Margin(models.TextChoices):
        MAX = "MAX", "MAX"
        SUM = "SUM", "SUM"
        NET = "NET", "NET"

    class Access(models.TextChoices):
        ANYONE = "anyone", "Anyone (demo only)"
        KYC = "kyc", "KYC-verified traders"
        APPROVAL = "approval", "After staff approval"

    jurisdiction = models.ForeignKey(Jurisdiction, on_delete=models.PROTECT, related_name="account_types")
    name = models.CharField(max_length=100, help_text="Shown to traders.")
    environment = models.CharField(max_length=10, choices=Environment.choices)
    group_name = models.CharField(
        max_length=100,
        help_text="The cTrader trader group (groupName); checked against the server when saved.",
    )
    account_type = models.CharField(max_length=20, choices=Kind.choices, default=Kind.HEDGED)
    deposit_currencies = models.CharField(
        max_length=200, default="USD", help_text="Comma-separated currency codes the trader may choose from."
    )
    leverage_choices = models.CharField(
        max_length=200, default="100", help_text="Comma-separated leverages (100 means 1:100)."
    )
    margin_calculation = models.CharField(max_length=10, choices=Margin.choices, default=Margin.MAX)
    starting_balance = models.DecimalField(
        max_digits=20, decimal_places=2, default=0, help_text="Demo accounts start with this balance."
    )
    is_tradingview = models.BooleanField(
        default=False,
        help_text='A "cTrader/TradingView" account: its group is on the single TradingView price stream.',
    )
    who_may_open = models.CharField(max_length=20, choices=Access.choices, default=Access.KYC)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["jurisdiction__display_name", "environment", "name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(who_may_open="anyone") | Q(environment="demo"),
                name="accounttype_anyone_demo_only",
            ),
            models.CheckConstraint(
                condition=Q(starting_balance=0) | Q(environment="demo"), name="accounttype_balance_demo_only"
            ),
            models.CheckConstraint(
                condition=Q(starting_balance__gte=0), name="accounttype_balance_not_negative"
            ),
            models.CheckConstraint(condition=~Q(group_name=""), name="accounttype_group_set"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_environment_display()}, {self.jurisdiction.broker_name})"

    @property
    def currencies(self) -> list[str]:
        return [c.strip().upper() for c in self.deposit_currencies.split(",") if c.strip()]

    @property
    def leverages(self) -> list[int]:
        return [int(v) for v in self.leverage_choices.split(",") if v.strip().isdigit() and int(v) > 0]

    @property
    def is_live(self) -> bool:
        return self.environment == self.Environment.LIVE


class AccountOpening(models.Model):
    """One trader's opening of one trading account, step by step, so any failure leaves a resumable record.

    ``tag`` goes to Spotware in the trader's ``description``: after a lost answer to the create call it finds
    the account that was created, so a retry never opens a second one. Neither the trading password nor its
    hash is ever stored here.
    """

    class State(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval", "Waiting for staff approval"
        NEEDS_PASSWORD = "needs_password", "Waiting for the trader's trading password"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Will retry"
        DONE = "done", "Opened"
        FAILED = "failed", "Failed"
        DECLINED = "declined", "Declined"

    class Step(models.TextChoices):
        CTID = "ctid", "cTID"
        CREATE = "create", "Create the trading account"
        LINK = "link", "Link it to the cTID"
        STORE = "store", "Store the account"
        DONE = "done", "Done"

    class Source(models.TextChoices):
        DASHBOARD = "dashboard", "Dashboard"
        TRADINGVIEW = "tradingview", "TradingView authorization"

    public_id = models.UUIDField(unique=True, editable=False)
    key = models.CharField(
        max_length=64, editable=False, help_text="The form's one-time key (double submits)."
    )
    # Looked up by the unique (trader, key) index, which its trader leads: no index on the trader alone.
    trader = models.ForeignKey(Trader, on_delete=models.CASCADE, related_name="openings", db_index=False)
    account_type = models.ForeignKey(AccountType, on_delete=models.PROTECT, related_name="openings")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.DASHBOARD)
    deposit_currency = models.CharField(max_length=10)
    leverage = models.PositiveIntegerField(help_text="1:N")
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED, db_index=True)
    step = models.CharField(max_length=10, choices=Step.choices, default=Step.CTID)
    tag = models.CharField(max_length=64, unique=True, editable=False)
    ctid_user_id = models.BigIntegerField(null=True, blank=True)
    trader_login = models.BigIntegerField(null=True, blank=True)
    create_sent_at = models.DateTimeField(null=True, blank=True)
    ctid_trader_account_id = models.BigIntegerField(null=True, blank=True)
    account = models.OneToOneField(
        TradingAccount, on_delete=models.SET_NULL, null=True, blank=True, related_name="opening"
    )
    error_code = models.CharField(max_length=60, blank=True)
    error = models.CharField(max_length=500, blank=True, help_text="Shown to the trader.")
    staff_alert = models.BooleanField(default=False, db_index=True, help_text="Needs a look from staff.")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    ready_mail_sent_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("approve_accountopening", "Can approve or decline account openings")]
        constraints = [
            models.UniqueConstraint(fields=["trader", "key"], name="opening_one_per_form"),
            models.CheckConstraint(
                condition=~Q(state="done") | Q(account__isnull=False), name="opening_done_has_account"
            ),
            models.CheckConstraint(condition=Q(leverage__gt=0), name="opening_leverage_positive"),
        ]

    def __str__(self) -> str:
        return f"Opening {self.public_id} ({self.get_state_display()})"

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED, self.State.DECLINED)
