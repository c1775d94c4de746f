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
    # The email (as it was when verified) and when: a cTID is created for a verified email only.
    email_verified = models.EmailField(blank=True)
    email_verified_at = models.DateTimeField(null=True, blank=True)
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


class CtidPendingConsent(models.Model):
    """A token pair from a consent whose cTID could not be identified yet (the profile lookup failed).

    The consent already ended the cTID's previous chain at Spotware, so the pair is kept (encrypted) until a
    worker identifies the cTID and stores it where it belongs; then the row is deleted.
    """

    trader = models.ForeignKey(Trader, on_delete=models.CASCADE, related_name="pending_ctid_consents")
    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField()
    expires_in = models.PositiveIntegerField()
    scope = models.CharField(max_length=50, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "cTID consent waiting for identification"
        verbose_name_plural = "cTID consents waiting for identification"

    def __str__(self) -> str:
        return f"Consent of trader {self.trader_id} waiting for identification"


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


class AccountType(models.Model):
    """A kind of trading account traders of one jurisdiction may open through the broker WebServices API."""

    class Environment(models.TextChoices):
        LIVE = "live", "Live"
        DEMO = "demo", "Demo"

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
    trader = models.ForeignKey(Trader, on_delete=models.CASCADE, related_name="openings")
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


class GatewayProcess(models.Model):
    """One running ``manage.py openapi_gateway`` process and its lease.

    The process renews ``lease_until`` while it runs; its cTIDs (``GatewayAssignment``) are its own only
    while the lease lasts. A process whose lease has run out is dead to the others: its row is deleted and
    its assignments with it, so the survivors can claim them.
    """

    name = models.CharField(max_length=120, unique=True, help_text="host:pid:random, unique per start")
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    environments = models.JSONField(default=list, help_text="The environments this process connects to.")
    started_at = models.DateTimeField(auto_now_add=True)
    lease_until = models.DateTimeField(db_index=True)
    heartbeat_at = models.DateTimeField()
    ctids_held = models.PositiveIntegerField(default=0)
    accounts_held = models.PositiveIntegerField(default=0)
    accounts_authorized = models.PositiveIntegerField(default=0)
    status = models.JSONField(
        default=dict, blank=True, help_text="Per connection: state, connected since, last event, last error."
    )

    class Meta:
        verbose_name = "gateway process"
        verbose_name_plural = "gateway processes"
        ordering = ["started_at"]

    def __str__(self) -> str:
        return f"{self.host} pid {self.pid}"


class GatewayAssignment(models.Model):
    """Which gateway process keeps a cTID's accounts (live and demo together) authorized."""

    ctid = models.OneToOneField(Ctid, on_delete=models.CASCADE, primary_key=True, related_name="+")
    process = models.ForeignKey(GatewayProcess, on_delete=models.CASCADE, related_name="assignments")
    assigned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "gateway assignment"

    def __str__(self) -> str:
        return f"cTID #{self.ctid_id} on process #{self.process_id}"


class GatewayChange(models.Model):
    """A cTID whose accounts, token, link or trader changed in a way the gateway must act on.

    Written by database triggers on PostgreSQL (so no writer can forget it), read by the gateways from a
    cursor: a gateway reloads only the cTIDs listed after its cursor instead of every account and token.
    """

    id = models.BigAutoField(primary_key=True)
    ctid_id = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"change {self.id}: cTID #{self.ctid_id}"


class CtidJob(models.Model):
    """Work on a cTID that runs in a worker, not in the web request: finishing a connect, reading accounts.

    The trader's page polls its state. A connect job carries the token pair from the code exchange, encrypted,
    until the worker has stored it on the cTID (or given up); then the pair is cleared from the job.
    """

    class Kind(models.TextChoices):
        CONNECT = "connect", "Connect"
        SYNC = "sync", "Account sync"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(unique=True, editable=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    trader = models.ForeignKey(Trader, on_delete=models.CASCADE, related_name="ctid_jobs")
    ctid = models.ForeignKey(Ctid, on_delete=models.CASCADE, null=True, blank=True, related_name="jobs")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    message = models.CharField(max_length=500, blank=True)
    # The language of the page that queued the job: its outcome is worded in it.
    language = models.CharField(max_length=10, blank=True)
    requested_by = models.CharField(max_length=20, default="trader")  # trader, staff, system
    access_token = EncryptedTextField(null=True, blank=True)
    refresh_token = EncryptedTextField(null=True, blank=True)
    expires_in = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    seen = models.BooleanField(default=False, help_text="The trader was shown the outcome.")

    class Meta:
        verbose_name = "cTID job"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="connect") | Q(ctid__isnull=False), name="ctidjob_sync_has_ctid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.public_id}: {self.state}"

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED)
