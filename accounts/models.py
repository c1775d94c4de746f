"""Traders, jurisdictions, cTrader IDs, their Open API tokens and trading accounts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from clientarea.crypto import EncryptedTextField


class Jurisdiction(models.Model):
    """A jurisdiction or White Label of the broker, known to cTrader by its ``brokerName``."""

    broker_name = models.CharField(
        max_length=100,
        unique=True,
        help_text="The cTrader brokerName, exactly as cTrader reports it; sent to the TradingView adapter.",
    )
    display_name = models.CharField(max_length=200)
    tradingview_enabled = models.BooleanField(
        default=False, help_text="Accounts under this jurisdiction may be linked to TradingView."
    )
    margin_call_level = models.DecimalField(
        max_digits=7,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Margin level (%) under which an account is flagged; empty: FIGURES_MARGIN_CALL_LEVEL.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["display_name"]
        constraints = [
            models.CheckConstraint(condition=~Q(broker_name=""), name="jurisdiction_broker_name_set")
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.broker_name})"


class Trader(models.Model):
    """The client-area profile of a user who trades."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trader")
    kyc_verified = models.BooleanField(default=False)
    kyc_verified_at = models.DateTimeField(null=True, blank=True)
    suspended = models.BooleanField(default=False)
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspended_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kyc_verified=False) | Q(kyc_verified_at__isnull=False),
                name="trader_kyc_verified_has_time",
            ),
            models.CheckConstraint(
                condition=Q(suspended=False) | Q(suspended_at__isnull=False),
                name="trader_suspended_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.user.get_username()


class Ctid(models.Model):
    """A cTrader ID linked by a trader through Open API OAuth."""

    class State(models.TextChoices):
        CONNECTED = "connected", "Connected"
        NEEDS_RECONNECT = "needs_reconnect", "Needs reconnect"
        DISCONNECTED = "disconnected", "Disconnected"

    user_id = models.BigIntegerField(unique=True, help_text="The cTID userId from GetCtidProfileByToken.")
    trader = models.ForeignKey(Trader, on_delete=models.CASCADE, related_name="ctids")
    state = models.CharField(max_length=20, choices=State.choices, default=State.CONNECTED, db_index=True)
    state_reason = models.CharField(max_length=500, blank=True)
    state_changed_at = models.DateTimeField(auto_now_add=True)
    connected_at = models.DateTimeField(auto_now_add=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_sync_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "cTID"
        verbose_name_plural = "cTIDs"
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(user_id__gt=0), name="ctid_user_id_positive")]

    def __str__(self) -> str:
        return f"cTID {self.user_id}"


class CtidToken(models.Model):
    """The Open API token pair of a cTID.

    Only the single-flight refresh path and a new consent write the token values; both go through
    ``accounts.services`` and bump ``version``. A lease (``lease_owner``/``lease_until``) makes sure only one
    refresh is in flight per cTID across all processes.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        NEEDS_RECONNECT = "needs_reconnect", "Needs reconnect"
        REVOKED = "revoked", "Revoked"

    class Outcome(models.TextChoices):
        OK = "ok", "Refreshed"
        TRANSIENT = "transient", "Transient failure, will retry"
        REJECTED = "rejected", "Refused by the token endpoint"
        SUPERSEDED = "superseded", "Already refreshed elsewhere"

    ctid = models.OneToOneField(Ctid, on_delete=models.CASCADE, related_name="token")
    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField()
    scope = models.CharField(max_length=50, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    version = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=20, choices=State.choices, default=State.ACTIVE, db_index=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_refresh_at = models.DateTimeField(null=True, blank=True)
    last_refresh_outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    last_refresh_error = models.CharField(max_length=500, blank=True)
    refresh_failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "cTID token"
        constraints = [
            models.CheckConstraint(condition=Q(version__gte=1), name="ctidtoken_version_positive"),
            models.CheckConstraint(
                condition=(Q(lease_owner="") & Q(lease_until__isnull=True))
                | (~Q(lease_owner="") & Q(lease_until__isnull=False)),
                name="ctidtoken_lease_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"Token of {self.ctid}"


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


class AuditEvent(models.Model):
    """An append-only record of something that matters to security or support."""

    trader = models.ForeignKey(
        Trader, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    category = models.CharField(max_length=30, db_index=True)
    action = models.CharField(max_length=60, db_index=True)
    outcome = models.CharField(max_length=30, db_index=True)
    message = models.CharField(max_length=500, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.category}.{self.action}: {self.outcome}"


class GatewayStatus(models.Model):
    """What the Open API gateway last reported about one environment's connection."""

    class Environment(models.TextChoices):
        LIVE = "live", "Live"
        DEMO = "demo", "Demo"

    class State(models.TextChoices):
        STARTING = "starting", "Starting"
        CONNECTED = "connected", "Connected"
        RECONNECTING = "reconnecting", "Reconnecting"
        APP_AUTH_REFUSED = "app_auth_refused", "Application auth refused (stopped)"
        STOPPED = "stopped", "Stopped"

    environment = models.CharField(max_length=10, choices=Environment.choices, unique=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.STOPPED)
    connected_since = models.DateTimeField(null=True, blank=True)
    authorized_accounts = models.PositiveIntegerField(default=0)
    last_event = models.CharField(max_length=100, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "gateway status"
        verbose_name_plural = "gateway status"

    def __str__(self) -> str:
        return f"{self.get_environment_display()}: {self.get_state_display()}"


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
