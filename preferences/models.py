"""A signed-in person's choices: language and which emails they receive."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Preference(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    language = models.CharField(
        _("language"), max_length=10, blank=True, help_text=_("Empty: your browser's language.")
    )
    notify_ctid_reconnect = models.BooleanField(_("when a cTrader ID needs to be reconnected"), default=True)
    notify_tradingview_revoked = models.BooleanField(_("when a TradingView link ends"), default=True)
    notify_account_request = models.BooleanField(_("when your account request is answered"), default=True)
    notify_new_sign_in = models.BooleanField(_("when you sign in from a new device"), default=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Preferences of {self.user}"


class KnownDevice(models.Model):
    """A browser a user has signed in from: a random id kept in a long-lived cookie, stored only as a hash."""

    # Looked up by the unique (user, device_hash) index, which its user leads: no index on the user alone.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="known_devices", db_index=False
    )
    device_hash = models.CharField(max_length=64)
    user_agent = models.CharField(max_length=300, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "device_hash"], name="known_device_unique")]

    def __str__(self) -> str:
        return f"Device of {self.user_id} first seen {self.first_seen_at:%Y-%m-%d}"
