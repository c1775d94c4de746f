"""Jurisdictions of the broker and the traders of the client area."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


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
        max_digits=7, decimal_places=2, null=True, blank=True,
        help_text="Margin level (%) under which an account is flagged; empty: FIGURES_MARGIN_CALL_LEVEL.",
    )  # fmt: skip
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
