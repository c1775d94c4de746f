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
    balance_version = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="balanceVersion of the stored balance: an older one never overwrites it",
    )
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_live", "login"]
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
