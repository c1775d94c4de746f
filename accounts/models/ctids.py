"""cTrader IDs, their Open API tokens, consents waiting for identification and the jobs run on them."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from clientarea.crypto import EncryptedTextField

from .people import Trader


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
    expires_at = models.DateTimeField()
    version = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=20, choices=State.choices, default=State.ACTIVE)
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
        # Every refresh rewrites the row, so each index is a write in its durable round trip: the sweep's
        # "due" query reads active tokens by expiry, and staff list the few others by state.
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(state="active"), name="ctidtoken_active_expiry"),
            models.Index(fields=["state"], condition=~Q(state="active"), name="ctidtoken_inactive_state"),
        ]
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
