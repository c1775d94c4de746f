"""Account figures (balance, equity, margin) and their history."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from .trading_accounts import TradingAccount


class AccountFigures(models.Model):
    """The latest figures of one trading account, in its deposit currency, and when they were read.

    Money is Decimal, converted from the peer's integers scaled by 10^``money_digits``. ``read_at`` is the time
    the peer reported them: figures older than ``FIGURES_STALE_SECONDS`` are shown as stale, never as current.
    ``snapshot_*`` remember the last row written to the history, so the next refresh can tell a significant
    change without reading the history table.
    """

    class Source(models.TextChoices):
        WEBSERVICES = "webservices", "Broker WebServices"
        OPENAPI = "openapi", "Open API"

    account = models.OneToOneField(
        TradingAccount, on_delete=models.CASCADE, primary_key=True, related_name="figures"
    )
    source = models.CharField(max_length=20, choices=Source.choices)
    currency = models.CharField(max_length=20, blank=True)
    money_digits = models.PositiveSmallIntegerField(default=2)
    balance = models.DecimalField(max_digits=30, decimal_places=10)
    equity = models.DecimalField(max_digits=30, decimal_places=10)
    used_margin = models.DecimalField(max_digits=30, decimal_places=10)
    free_margin = models.DecimalField(max_digits=30, decimal_places=10)
    unrealized_pnl = models.DecimalField(max_digits=30, decimal_places=10)
    margin_level = models.DecimalField(
        max_digits=20, decimal_places=4, null=True, blank=True, help_text="Empty when no margin is used."
    )
    # Open positions (Open API source only).
    positions_count = models.PositiveIntegerField(null=True, blank=True)
    positions_volume = models.DecimalField(
        max_digits=30, decimal_places=2, null=True, blank=True, help_text="Units, summed over positions."
    )
    balance_version = models.BigIntegerField(null=True, blank=True)
    # Not indexed: every refresh rewrites it, and an index on it would make every update a non-HOT one.
    read_at = models.DateTimeField()
    snapshot_at = models.DateTimeField(null=True, blank=True)
    snapshot_balance = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    snapshot_equity = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)

    class Meta:
        verbose_name = "account figures"
        verbose_name_plural = "account figures"
        constraints = [
            models.CheckConstraint(condition=Q(used_margin__gte=0), name="figures_used_margin_not_negative"),
        ]

    def __str__(self) -> str:
        return f"Figures of {self.account_id}"


class AccountSnapshot(models.Model):
    """One point of an account's balance and equity history.

    Rows start at full resolution (``resolution`` 0); the retention task keeps the last row of each hour once
    they are older than a day, the last row of each day once older than a month, and drops daily rows past
    the retention horizon, so the table stays bounded per account.
    """

    class Resolution(models.IntegerChoices):
        RAW = 0, "Raw"
        HOUR = 3600, "Hourly"
        DAY = 86400, "Daily"

    # The unique (account, at) index serves the chart queries; a second index on account alone would only
    # slow the bulk writes.
    # No foreign-key constraint in the database: rows are only ever inserted for accounts just joined in
    # the same statement, and checking 100,000 of them a minute would lock as many account rows. Deleting an
    # account still deletes its history (Django's cascade); an orphan left by a race ages out with retention.
    account = models.ForeignKey(
        TradingAccount,
        on_delete=models.CASCADE,
        related_name="snapshots",
        db_index=False,
        db_constraint=False,
    )
    at = models.DateTimeField()
    resolution = models.PositiveIntegerField(choices=Resolution.choices, default=Resolution.RAW)
    balance = models.DecimalField(max_digits=30, decimal_places=10)
    equity = models.DecimalField(max_digits=30, decimal_places=10)
    used_margin = models.DecimalField(max_digits=30, decimal_places=10)

    class Meta:
        # On PostgreSQL the retention task's scans by time use a BRIN index on ``at`` (rows arrive in time
        # order, so it stays tiny and costs the bulk inserts nearly nothing); see the migration.
        constraints = [models.UniqueConstraint(fields=["account", "at"], name="snapshot_account_at_unique")]

    def __str__(self) -> str:
        return f"{self.account_id} at {self.at:%Y-%m-%d %H:%M}"
