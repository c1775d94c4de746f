"""TradingView OAuth clients, the grants (adapter tokens) we issued, authorization codes, account requests."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import AuditEvent, BrokerEnvironment, Ctid, Jurisdiction, Trader, TradingAccount
from clientarea.crypto import EncryptedTextField


def token_hash(value: str) -> str:
    """SHA-256 of a high-entropy token: enough to store it safely and still look it up."""
    return hashlib.sha256(value.encode()).hexdigest()


CLIENT_SECRET_ALGORITHM = "sha256"


def client_secret_hash(secret: str) -> str:
    """The stored form of a client secret.

    Client secrets are 256-bit random strings we generate, so a plain SHA-256 digest cannot be reversed by
    guessing; a deliberately slow password hash would add nothing but CPU on every token request (and let
    anyone holding a client id make us burn it with wrong secrets).
    """
    return f"{CLIENT_SECRET_ALGORITHM}${token_hash(secret)}"


class OAuthClient(models.Model):
    """One TradingView environment connection: TradingView must get a distinct id and secret for each."""

    name = models.CharField(max_length=100)
    environment = models.CharField(
        max_length=100,
        blank=True,
        help_text='Which TradingView↔broker connection this is, e.g. "TradingView production → broker production".',
    )
    client_id = models.CharField(max_length=64, unique=True, editable=False)
    client_secret_hash = models.CharField(max_length=256, editable=False)
    is_active = models.BooleanField(default=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "TradingView client"
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=~Q(client_id=""), name="tv_client_id_set")]

    def __str__(self) -> str:
        return f"{self.name} ({self.environment})" if self.environment else self.name

    def check_secret(self, raw: str) -> bool:
        """Whether ``raw`` is this client's secret (compared in constant time)."""
        stored = self.client_secret_hash
        if not raw or not stored:
            return False
        algorithm, _, digest = stored.partition("$")
        if algorithm == CLIENT_SECRET_ALGORITHM:
            return hmac.compare_digest(digest, token_hash(raw))
        # A secret stored with one of Django's password hashers before digests were used.
        return check_password(raw, stored)

    @property
    def secret_needs_rehash(self) -> bool:
        return not self.client_secret_hash.startswith(f"{CLIENT_SECRET_ALGORITHM}$")


class RedirectUri(models.Model):
    """A redirect URI registered for a client; authorization requests must match one exactly."""

    # Looked up by the unique (client, uri) index, which its client leads: no index on the client alone.
    client = models.ForeignKey(
        OAuthClient, on_delete=models.CASCADE, related_name="redirect_uris", db_index=False
    )
    uri = models.URLField(max_length=500)

    class Meta:
        verbose_name = "redirect URI"
        constraints = [models.UniqueConstraint(fields=["client", "uri"], name="tv_redirect_uri_unique")]

    def __str__(self) -> str:
        return self.uri


def seconds_until(moment: datetime | None) -> int:
    """Whole seconds from now until ``moment`` (an adapter token's expiry); 0 when it has passed or is unknown."""
    if moment is None:
        return 0
    return max(0, int((moment - timezone.now()).total_seconds()))


class Grant(models.Model):
    """One adapter token issued for a trader to one TradingView client, with the accounts it covers.

    A refresh creates a new grant and marks the previous one ``revoking`` with ``revoke_after`` set to the end
    of the grace period; ``revoking`` grants are never shown as active nor handed out again.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for the adapter"
        ACTIVE = "active", "Active"
        REVOKING = "revoking", "Revoking (waiting for the adapter's /logout)"
        REVOKED = "revoked", "Revoked"

    client = models.ForeignKey(OAuthClient, on_delete=models.PROTECT, related_name="grants")
    trader = models.ForeignKey(Trader, on_delete=models.CASCADE, related_name="tradingview_grants")
    ctid = models.ForeignKey(Ctid, on_delete=models.CASCADE, related_name="tradingview_grants")
    accounts: models.ManyToManyField[TradingAccount, GrantAccount] = models.ManyToManyField(
        TradingAccount, through="GrantAccount", related_name="tradingview_grants", blank=True
    )
    broker_names = models.JSONField(default=list, blank=True)
    is_verified = models.BooleanField(default=False)
    scope = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    adapter_token = EncryptedTextField(blank=True)
    adapter_token_issued_at = models.DateTimeField(null=True, blank=True)
    adapter_token_expires_at = models.DateTimeField(null=True, blank=True)
    # Kept after the grant is superseded or revoked, so a spent or revoked refresh token is recognised. NULL
    # rather than "" when there is none, as for consent_key: unique (Meta.constraints) among those that have one.
    refresh_token_hash = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001
    # The refresh token handed out with a refreshed grant, kept for TRADINGVIEW_REFRESH_REUSE_SECONDS so that a
    # repeated request (a lost response) receives the same answer; cleared after that.
    issued_refresh_token = EncryptedTextField(null=True, blank=True, editable=False)
    degraded = models.BooleanField(
        default=False,
        help_text="Refreshed while the adapter could not issue a token: it carries the previous adapter token.",
    )
    refresh_lease_until = models.DateTimeField(null=True, blank=True)
    # One consent form submission creates at most one grant, however often it is posted.
    consent_key = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001
    superseded_by = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="supersedes"
    )
    revoke_after = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=200, blank=True)
    revoke_attempts = models.PositiveIntegerField(default=0)
    last_revoke_error = models.CharField(max_length=500, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        # The token hashes, the consent key and the state are only ever compared for equality: declared here
        # rather than with unique=True/db_index=True on the fields, they get no second "LIKE" index
        # (varchar_pattern_ops) that every grant write would update for nothing.
        indexes = [
            # Only the few grants not active (pending, revoking, revoked): the sweeps that look for them. Active
            # grants, most of the table, are never looked up by their state alone, and a statement prepared once
            # per connection must not be planned to reach a grant through its state rather than its key.
            models.Index(fields=["state"], condition=~Q(state="active"), name="tv_grant_not_active"),
            # Only the grants waiting for their /logout, in the order the logout sweep takes them: a link and a
            # refresh write grants that are not revoking, which a full index would hold for nothing.
            models.Index(fields=["revoke_after"], condition=Q(state="revoking"), name="tv_grant_logout_due"),
            # Active grants whose token TradingView has not taken yet: the sweep of abandoned links.
            models.Index(
                fields=["id"],
                condition=Q(state="active", refresh_token_hash__isnull=True),
                name="tv_grant_not_exchanged",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["refresh_token_hash"], name="tv_grant_refresh_token_hash_unique"),
            models.UniqueConstraint(fields=["consent_key"], name="tv_grant_consent_key_unique"),
            models.CheckConstraint(
                condition=Q(state="pending")
                | (Q(adapter_token_issued_at__isnull=False) & Q(adapter_token_expires_at__isnull=False)),
                name="tv_grant_token_times_set",
            ),
            models.CheckConstraint(
                condition=~Q(state="revoking") | Q(revoke_after__isnull=False),
                name="tv_grant_revoking_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(state="revoked") | Q(revoked_at__isnull=False),
                name="tv_grant_revoked_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"TradingView grant #{self.pk} ({self.get_state_display()})"

    def seconds_left(self) -> int:
        return seconds_until(self.adapter_token_expires_at)


class GrantAccount(models.Model):
    """A trading account a grant covers: the table of ``Grant.accounts``.

    Every link and every refresh writes one row per account, so the table keeps only the indexes its
    queries read: the unique (grant, account) pair, which also serves the lookups by grant, and the account
    (the grants of an account). No third index on the grant alone.
    """

    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="+", db_index=False)
    tradingaccount = models.ForeignKey(TradingAccount, on_delete=models.CASCADE, related_name="+")

    class Meta:
        db_table = "tradingview_grant_accounts"
        unique_together = [("grant", "tradingaccount")]

    def __str__(self) -> str:
        return f"Grant #{self.grant_id}: account #{self.tradingaccount_id}"


class AuthorizationCode(models.Model):
    """A single-use code (stored hashed) bound to a client, a redirect URI and the grant it hands out."""

    code_hash = models.CharField(max_length=64, editable=False)
    client = models.ForeignKey(OAuthClient, on_delete=models.CASCADE, related_name="codes")
    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="codes")
    redirect_uri = models.URLField(max_length=500)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    # A newer code for the same grant replaced this one before it was used (a re-submitted consent).
    superseded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Looked up by equality only: no "LIKE" index beside the unique one (see Grant.Meta).
            models.UniqueConstraint(fields=["code_hash"], name="tv_code_hash_unique"),
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("created_at")), name="tv_code_expiry"),
        ]

    def __str__(self) -> str:
        return f"Code for grant #{self.grant_id}"


class ConsentClaim(models.Model):
    """A consent form one submission is taking to the adapter (the form's key), until ``expires_at``.

    A repeat of the form that finds the claim waits for the grant the first submission stores instead of asking
    the adapter for a second token. The claim is dropped when nothing was linked and otherwise left to expire,
    so a repeat that read before the grant was stored still waits for it; the revocation sweep deletes expired
    ones. On PostgreSQL the table is unlogged (migration 0007): a claim lives seconds, and a crash that empties
    the table costs at most a surplus adapter token, which the grant's unique ``consent_key`` turns into a
    revocation.
    """

    key = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Looked up by equality only: no "LIKE" index beside the unique one (see Grant.Meta).
            models.UniqueConstraint(fields=["key"], name="tv_consent_claim_key"),
        ]

    def __str__(self) -> str:
        return f"Consent claim until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class AccountRequest(models.Model):
    """A trader's request for a "cTrader/TradingView" account, fulfilled by staff."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        FULFILLED = "fulfilled", "Fulfilled"
        DECLINED = "declined", "Declined"

    Environment = BrokerEnvironment

    trader = models.ForeignKey(Trader, on_delete=models.CASCADE, related_name="tradingview_account_requests")
    environment = models.CharField(max_length=10, choices=Environment.choices)
    jurisdiction = models.ForeignKey(
        Jurisdiction, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=500, blank=True)
    # The authorization the trader was in when asking, so they can return to it.
    return_url = models.CharField(max_length=2000, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.OPEN, db_index=True)
    account = models.ForeignKey(
        TradingAccount, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The automated opening this request holds for staff approval (approving runs it).
    opening = models.OneToOneField(
        "accounts.AccountOpening",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="approval_request",
    )
    staff_note = models.CharField(max_length=500, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = '"cTrader/TradingView" account request'
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["trader"], condition=Q(state="open"), name="tv_one_open_account_request"
            ),
            models.CheckConstraint(
                condition=~Q(state="fulfilled") | Q(account__isnull=False), name="tv_fulfilled_has_account"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_environment_display()} cTrader/TradingView account for {self.trader}"


AUDIT_CATEGORY = "tradingview"


class TradingviewAuditEvent(AuditEvent):
    """The TradingView part of the shared audit trail (category ``tradingview``), for the admin."""

    class Meta:
        proxy = True
        verbose_name = "TradingView audit event"
