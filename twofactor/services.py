"""Two-step sign-in: an authenticator app (TOTP) and single-use recovery codes, through django-otp.

The devices are our own (twofactor.models): the key is encrypted at rest and recovery codes are kept as digests,
so each code is shown once, when it is made.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django_otp import devices_for_user
from django_otp import verify_token as otp_verify_token
from django_otp.models import Device

from accounts.services.audit import audit_event_record
from twofactor.models import (
    AuthenticatorDevice,
    RecoveryCode,
    RecoveryCodeDevice,
    authenticators_confirmed,
    recovery_code_digests,
    recovery_code_new,
)

RECOVERY_CODE_COUNT = 10
_APP = "authenticator app"
_RECOVERY = "recovery codes"


class CodeRefused(ValueError):
    pass


def two_factor_enabled(*, user: Any) -> bool:
    # The authenticator decides: recovery codes are issued with it and removed with it. One query, where
    # django-otp's user_has_device would ask every device model installed (the retired ones included).
    return bool(user.is_authenticated and authenticators_confirmed(user=user).exists())


def totp_device_pending(*, user: Any) -> AuthenticatorDevice:
    """The authenticator app being set up: an unconfirmed device, reused until confirmed."""
    device = AuthenticatorDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = AuthenticatorDevice.objects.create(user=user, name=_APP, confirmed=False)
    return device


def _recovery_codes_issue(*, user: Any) -> list[str]:
    device, _ = RecoveryCodeDevice.objects.get_or_create(
        user=user, name=_RECOVERY, defaults={"confirmed": True}
    )
    device.codes.all().delete()
    codes = [recovery_code_new() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create(
        [RecoveryCode(device=device, digest=recovery_code_digests(code)[0]) for code in codes]
    )
    return codes


def two_factor_enable(*, user: Any, code: str) -> tuple[AuthenticatorDevice, list[str]]:
    """Confirm the pending authenticator app with a code from it; returns the device and new recovery codes."""
    with transaction.atomic():
        device = (
            AuthenticatorDevice.objects.select_for_update()
            .filter(user=user, confirmed=False)
            .order_by("-pk")
            .first()
        )
        if device is None or not device.verify_token(code.strip().replace(" ", "")):
            raise CodeRefused(code)
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        AuthenticatorDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        codes = _recovery_codes_issue(user=user)
        _audit(user, "two_factor_enable", actor=user)
    return device, codes


def recovery_codes_regenerate(*, user: Any) -> list[str]:
    with transaction.atomic():
        codes = _recovery_codes_issue(user=user)
        _audit(user, "recovery_codes_regenerate", actor=user)
    return codes


def two_factor_verify(*, user: Any, code: str) -> Device | None:
    """The device that accepts ``code`` (a recovery code is used up), or None. django-otp throttles each device
    after failures."""
    code = code.strip().replace(" ", "")
    if not code:
        return None
    for device in devices_for_user(user, confirmed=True):
        verified = otp_verify_token(user, device.persistent_id, code)
        if verified is not None:
            return verified
    return None


def two_factor_disable(*, user: Any, code: str, actor: Any = None) -> None:
    """Turn two-step sign-in off; the trader proves it with a current code (staff unlocking pass ``actor``)."""
    if actor is None and two_factor_verify(user=user, code=code) is None:
        raise CodeRefused(code)
    _devices_remove(user, "two_factor_disable", actor=actor or user)


def recovery_codes_left(*, user: Any) -> int:
    return RecoveryCode.objects.filter(device__user=user, device__confirmed=True).count()


def _audit(user: Any, action: str, *, actor: Any = None, message: str = "") -> None:
    """Record a change to ``user``'s two-step sign-in, on their trader profile when they have one."""
    from accounts.models import Trader

    trader = Trader.objects.filter(user_id=user.pk).first()
    audit_event_record(
        category="security", action=action, outcome="ok", actor=actor, trader=trader, message=message
    )


def _devices_remove(user: Any, action: str, *, actor: Any = None, message: str = "") -> None:
    """Two-step sign-in off: every device of ``user`` (the app and the recovery codes) gone, and recorded."""
    with transaction.atomic():
        AuthenticatorDevice.objects.filter(user=user).delete()
        RecoveryCodeDevice.objects.filter(user=user).delete()
        _audit(user, action, actor=actor, message=message)


def two_factor_reset(*, user: Any, reason: str) -> None:
    """Staff turn two-step sign-in off for someone who lost both their phone and their recovery codes (after
    checking who they are); recorded in the audit trail."""
    _devices_remove(user, "two_factor_reset", message=reason[:500])
