"""The authenticator key and the recovery codes cannot be read back from the database."""

from __future__ import annotations

import base64
import io
import re
import time

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD
from tests.twofactor.totp import totp

pytestmark = pytest.mark.django_db


def _enrol(client: Client) -> tuple[str, list[str]]:
    page = client.get(reverse("two_factor")).content.decode()
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)
    done = client.post(reverse("two_factor"), {"action": "enable", "code": totp(secret)})
    codes = re.findall(r"<li><code>([a-z0-9]+)</code></li>", done.content.decode())
    assert len(codes) == 10
    return secret, codes


def _database_text() -> str:
    """Every row of every table, as PostgreSQL prints it."""
    rows: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT row_to_json(t)::text FROM {connection.ops.quote_name(table)} t")
            rows.extend(row[0] for row in cursor.fetchall())
    return "\n".join(rows)


def _secret_forms(secret_b32: str) -> list[str]:
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    return [secret_b32, secret_b32.lower(), key.hex(), key.hex().upper()]


def _signs_in_with(username: str, code: str) -> bool:
    client = Client()
    verify_url = client.post(reverse("login"), {"username": username, "password": PASSWORD})["Location"]
    assert verify_url.startswith(reverse("two_factor_verify"))
    client.post(verify_url, {"code": code})
    return client.get("/").status_code == 200


def test_the_database_holds_neither_the_key_nor_a_recovery_code(trader, trader_client: Client) -> None:
    # While enrolling (the key is pending) and once it is on.
    page = trader_client.get(reverse("two_factor")).content.decode()
    pending = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)
    stored = _database_text()
    for form in _secret_forms(pending):
        assert form not in stored
    secret, codes = _enrol(trader_client)
    assert secret == pending
    stored = _database_text()
    for form in _secret_forms(secret):
        assert form not in stored
    for code in codes:
        assert code not in stored
    # Still the same two-step sign-in: the app's next code, then a recovery code once.
    assert _signs_in_with(trader.user.username, totp(secret, at=time.time() + 30))
    assert _signs_in_with(trader.user.username, codes[3])
    assert not _signs_in_with(trader.user.username, codes[3])


def test_key_rotation_re_encrypts_the_authenticator_key(trader, trader_client: Client, settings) -> None:
    from cryptography.fernet import Fernet

    secret, _codes = _enrol(trader_client)
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.TOKEN_ENCRYPTION_KEYS]
    out = io.StringIO()
    call_command("rotate_token_keys", stdout=out)
    assert "twofactor.AuthenticatorDevice.key: 1 re-encrypted" in out.getvalue()
    settings.TOKEN_ENCRYPTION_KEYS = settings.TOKEN_ENCRYPTION_KEYS[:1]  # only the new key is left
    assert _signs_in_with(trader.user.username, totp(secret, at=time.time() + 30))


def test_the_migration_moves_existing_devices_and_keeps_them_working(trader, staff_user) -> None:
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    executor = MigrationExecutor(connection)
    before = [("twofactor", "0001_initial")]
    executor.migrate(before)
    # As the former django-otp devices stored them: a confirmed app with recovery codes, and a pending one.
    confirmed = TOTPDevice.objects.create(user=trader.user, name="authenticator app", confirmed=True)
    static = StaticDevice.objects.create(user=trader.user, name="recovery codes", confirmed=True)
    codes = [StaticToken.random_token() for _ in range(3)]
    StaticToken.objects.bulk_create([StaticToken(device=static, token=code) for code in codes])
    pending = TOTPDevice.objects.create(user=staff_user, name="authenticator app", confirmed=False)
    secret = base64.b32encode(confirmed.bin_key).decode()
    pending_secret = base64.b32encode(pending.bin_key).decode()

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("twofactor"))

    assert not TOTPDevice.objects.exists()
    assert not StaticDevice.objects.exists()
    assert not StaticToken.objects.exists()
    stored = _database_text()
    for form in _secret_forms(secret) + _secret_forms(pending_secret):
        assert form not in stored
    for code in codes:
        assert code not in stored
    assert _signs_in_with(trader.user.username, codes[0])
    assert not _signs_in_with(trader.user.username, codes[0])
    time.sleep(1.1)  # django-otp makes the next try wait after a wrong code
    assert _signs_in_with(trader.user.username, totp(secret, at=time.time() + 30))
    assert _signs_in_with(trader.user.username, codes[2])
    # The staff member still enrols the app they had started to add.
    staff = Client()
    staff.force_login(staff_user)
    page = staff.get(reverse("two_factor")).content.decode()
    assert f'<code class="secret">{pending_secret}</code>' in page


def test_the_admin_lists_no_second_factor(staff_client: Client) -> None:
    from django.contrib import admin

    from twofactor.models import AuthenticatorDevice, RecoveryCode, RecoveryCodeDevice

    for model in (AuthenticatorDevice, RecoveryCodeDevice, RecoveryCode):
        assert not admin.site.is_registered(model)
    assert "Authenticator apps" not in staff_client.get("/admin/").content.decode()
