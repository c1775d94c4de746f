"""The Open API gateway's side of the database: its status, processes, assignments and change feed."""

from __future__ import annotations

from django.db import models

from .ctids import Ctid
from .trading_accounts import BrokerEnvironment


class GatewayStatus(models.Model):
    """What the Open API gateway last reported about one environment's connection."""

    Environment = BrokerEnvironment

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
