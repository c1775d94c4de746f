"""The second factors, as django-otp devices whose secrets cannot be read back from the database.

django-otp's own TOTP and static devices keep the authenticator key and the recovery codes in plain text, so a
backup or a replica would be enough to produce valid codes. These devices verify the same way, but the key is
encrypted at rest (TOKEN_ENCRYPTION_KEYS, re-encrypted by ``rotate_token_keys``) and a recovery code is kept
only as a keyed digest.
"""

from __future__ import annotations

import base64
import hmac
import os
import time
from binascii import unhexlify
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.crypto import salted_hmac
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP
from django_otp.util import random_hex

from clientarea.crypto import EncryptedTextField

RECOVERY_CODE_SALT = "twofactor.recovery-code"


def authenticator_key_new() -> str:
    """20 random bytes, hex-encoded (django-otp's default key for TOTP)."""
    return random_hex(20)


def recovery_code_new() -> str:
    """Eight random base32 characters, lower case (as django-otp's static tokens)."""
    return base64.b32encode(os.urandom(5)).decode().lower()


def recovery_code_digests(code: str) -> list[str]:
    """The digests ``code`` may be stored under: one per secret key, current first.

    Recovery codes are short, so an unkeyed hash could be reversed by trying every code; keyed with the secret
    key (and its fallbacks, so rotating it does not void codes) the digests alone are useless.
    """
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [salted_hmac(RECOVERY_CODE_SALT, code, secret=key, algorithm="sha256").hexdigest() for key in keys]


class AuthenticatorDevice(TimestampMixin, ThrottlingMixin, Device):
    """An authenticator app (RFC 6238 TOTP), verified like django-otp's TOTPDevice."""

    key = EncryptedTextField(default=authenticator_key_new)
    step: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(default=30)
    t0: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)
    digits: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        choices=[(6, 6), (8, 8)], default=6
    )
    tolerance: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(default=1)
    drift: models.SmallIntegerField[int, int] = models.SmallIntegerField(default=0)
    # The time step of the last accepted code: a code is accepted only once.
    last_t: models.BigIntegerField[int, int] = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = "authenticator app"

    @property
    def bin_key(self) -> bytes:
        return unhexlify(self.key.encode())

    def get_throttle_factor(self) -> int:
        return int(getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1))

    def verify_token(self, token: Any) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            value = int(token)
        except (TypeError, ValueError):
            verified = False
        else:
            totp = TOTP(self.bin_key, self.step, self.t0, self.digits, self.drift)
            totp.time = time.time()
            verified = totp.verify(value, self.tolerance, self.last_t + 1)
            if verified:
                self.last_t = totp.t()
                if getattr(settings, "OTP_TOTP_SYNC", True):
                    self.drift = totp.drift
                self.throttle_reset(commit=False)
                self.set_last_used_timestamp(commit=False)
                self.save()
        if not verified:
            self.throttle_increment(commit=True)
        return bool(verified)


def authenticators_confirmed(*, user: Any) -> models.QuerySet[AuthenticatorDevice]:
    """The user's confirmed authenticator apps: two-step sign-in is on when there is one (``user``: a user or a
    reference to one's id)."""
    return AuthenticatorDevice.objects.filter(user=user, confirmed=True)


class RecoveryCodeDevice(TimestampMixin, ThrottlingMixin, Device):
    """Single-use recovery codes, kept as digests; a code is deleted when it is used."""

    class Meta(Device.Meta):
        verbose_name = "recovery codes"

    def get_throttle_factor(self) -> int:
        return int(getattr(settings, "OTP_STATIC_THROTTLE_FACTOR", 1))

    def verify_token(self, token: Any) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        digests = recovery_code_digests(str(token).strip().lower())
        match = None
        # Every stored digest is compared in full, so the time taken says nothing about which one was close.
        for stored in self.codes.all():
            for digest in digests:
                if hmac.compare_digest(stored.digest, digest) and match is None:
                    match = stored
        # Deleted by primary key and counted: of two sign-ins racing with the same code, only one gets it.
        if match is None or not RecoveryCode.objects.filter(pk=match.pk).delete()[0]:
            self.throttle_increment()
            return False
        self.throttle_reset(commit=False)
        self.set_last_used_timestamp(commit=False)
        self.save()
        return True


class RecoveryCode(models.Model):
    device = models.ForeignKey(RecoveryCodeDevice, related_name="codes", on_delete=models.CASCADE)
    digest = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"recovery code {self.pk}"
