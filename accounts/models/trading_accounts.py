"""The trading accounts of a cTID, as the Open API reports them."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from .ctids import Ctid
from .people import Jurisdiction


class BrokerEnvironment(models.TextChoices):
    """The broker's two environments, each with its own cTrader server and Open API host."""

    LIVE = "live", "Live"
    DEMO = "demo", "Demo"


class TradingAccount(models.Model):
    """A cTrader trading account of a cTID, as the Open API reports it."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        GONE = "gone", "No longer granted"
        DISABLED = "disabled", "Disabled"

    ctid_trader_account_id = models.BigIntegerField(unique=True, help_text="ctidTraderAccountId")
    ctid = models.ForeignKey(Ctid, on_delete=models.CASCADE, related_name="accounts")
    login = models.BigIntegerField(help_text="traderLogin, for display only")
    is_live = models.BooleanField()
    jurisdiction = models.ForeignKey(
        Jurisdiction, on_delete=models.PROTECT, null=True, blank=True, related_name="accounts"
    )
    broker_name = models.CharField(max_length=100, blank=True, help_text="brokerName reported by TraderReq")
    broker_title = models.CharField(max_length=200, blank=True, help_text="brokerTitleShort")
    is_tradingview = models.BooleanField(default=False, help_text='A "cTrader/TradingView" account.')
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    status_reason = models.CharField(max_length=500, blank=True)
    balance = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    currency = models.CharField(max_length=20, blank=True)
    balance_updated_at = models.DateTimeField(null=True, blank=True)
    balance_version = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="balanceVersion of the stored balance: an older one never overwrites it",
    )
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_live", "login"]
        # The WebServices figures are keyed by login, unique per environment of the broker's server.
        indexes = [models.Index(fields=["login", "is_live"], name="account_login_environment")]
        constraints = [
            models.CheckConstraint(condition=Q(ctid_trader_account_id__gt=0), name="account_id_positive"),
            models.CheckConstraint(
                condition=Q(balance__isnull=True) | Q(balance_updated_at__isnull=False),
                name="account_balance_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{'Live' if self.is_live else 'Demo'} {self.login}"

    @property
    def environment(self) -> str:
        return "live" if self.is_live else "demo"
