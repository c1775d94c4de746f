"""Move django-otp's plain-text devices into ours: keys encrypted, recovery codes as digests, old rows deleted.

Traders keep signing in with the same authenticator app and the same unused recovery codes; an app still being
set up stays pending. Going back restores the authenticator apps (their keys in plain text again, as django-otp
stores them) but not the recovery codes, which cannot be recovered from their digests: traders make new ones.
"""

from django.conf import settings
from django.db import migrations
from django.utils.crypto import salted_hmac

# The same digest as twofactor.models.recovery_code_digests (current secret key), frozen here.
RECOVERY_CODE_SALT = "twofactor.recovery-code"

DEVICE_FIELDS = (
    "user_id",
    "name",
    "confirmed",
    "throttling_failure_timestamp",
    "throttling_failure_count",
    "created_at",
    "last_used_at",
)
TOTP_FIELDS = ("step", "t0", "digits", "tolerance", "drift", "last_t")


def _copy(source, fields):
    return {field: getattr(source, field) for field in fields}


def forward(apps, schema_editor):
    TOTPDevice = apps.get_model("otp_totp", "TOTPDevice")
    StaticDevice = apps.get_model("otp_static", "StaticDevice")
    AuthenticatorDevice = apps.get_model("twofactor", "AuthenticatorDevice")
    RecoveryCodeDevice = apps.get_model("twofactor", "RecoveryCodeDevice")
    RecoveryCode = apps.get_model("twofactor", "RecoveryCode")

    for old in TOTPDevice.objects.order_by("pk").iterator():
        new = AuthenticatorDevice.objects.create(
            key=old.key.lower(), **_copy(old, DEVICE_FIELDS), **_copy(old, TOTP_FIELDS)
        )
        # auto_now_add stamped the copy with today; keep when the trader really added the app.
        AuthenticatorDevice.objects.filter(pk=new.pk).update(created_at=old.created_at)
    for old in StaticDevice.objects.order_by("pk").prefetch_related("token_set").iterator(chunk_size=500):
        new = RecoveryCodeDevice.objects.create(**_copy(old, DEVICE_FIELDS))
        RecoveryCodeDevice.objects.filter(pk=new.pk).update(created_at=old.created_at)
        RecoveryCode.objects.bulk_create(
            [
                RecoveryCode(
                    device=new,
                    digest=salted_hmac(
                        RECOVERY_CODE_SALT, token.token, secret=settings.SECRET_KEY, algorithm="sha256"
                    ).hexdigest(),
                )
                for token in old.token_set.all()
            ]
        )
    # No plain value may stay behind.
    apps.get_model("otp_static", "StaticToken").objects.all().delete()
    StaticDevice.objects.all().delete()
    TOTPDevice.objects.all().delete()


def backward(apps, schema_editor):
    TOTPDevice = apps.get_model("otp_totp", "TOTPDevice")
    StaticDevice = apps.get_model("otp_static", "StaticDevice")
    AuthenticatorDevice = apps.get_model("twofactor", "AuthenticatorDevice")
    RecoveryCodeDevice = apps.get_model("twofactor", "RecoveryCodeDevice")

    for new in AuthenticatorDevice.objects.order_by("pk").iterator():
        TOTPDevice.objects.create(key=new.key, **_copy(new, DEVICE_FIELDS), **_copy(new, TOTP_FIELDS))
    for new in RecoveryCodeDevice.objects.order_by("pk").iterator():
        StaticDevice.objects.create(**_copy(new, DEVICE_FIELDS))
    RecoveryCodeDevice.objects.all().delete()
    AuthenticatorDevice.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("twofactor", "0001_initial"),
        ("otp_totp", "0003_add_timestamps"),
        ("otp_static", "0003_add_timestamps"),
    ]

    operations = [migrations.RunPython(forward, backward)]
