"""The audit trail of both apps."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.fields.json import KeyTextTransform

from .people import Trader


class AuditEvent(models.Model):
    """An append-only record of something that matters to security or support."""

    trader = models.ForeignKey(
        Trader, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    category = models.CharField(max_length=30)
    action = models.CharField(max_length=60)
    outcome = models.CharField(max_length=30)
    message = models.CharField(max_length=500, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        # Filtered by equality only (the token throttle, the admin's filters): plain indexes, without the
        # "LIKE" (varchar_pattern_ops) copies db_index=True adds to character columns, which every audited
        # action would update for nothing.
        indexes = [
            models.Index(fields=["category"], name="audit_category"),
            models.Index(fields=["action"], name="audit_action"),
            models.Index(fields=["outcome"], name="audit_outcome"),
            # The TradingView token endpoint's failed client authentications by address within the throttle's
            # window (tradingview/throttle.py): every code exchange asks whether its address has any.
            models.Index(
                KeyTextTransform("address", "detail"),
                "created_at",
                name="audit_token_failures",
                condition=models.Q(category="tradingview", action="client_auth", outcome="invalid_client"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category}.{self.action}: {self.outcome}"
