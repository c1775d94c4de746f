"""Database-enforced invariants and encryption at rest, through the models."""

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from accounts.models import CtidToken, GatewayStatus, Jurisdiction, Trader, TradingAccount
from clientarea.crypto import DecryptionError
from tests.factories import (
    CtidFactory,
    CtidTokenFactory,
    JurisdictionFactory,
    TraderFactory,
    TradingAccountFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def _violates(make, constraint: str | None = None):
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        make()
    if constraint:
        assert constraint in str(info.value)


def test_jurisdiction_constraints():
    JurisdictionFactory(broker_name="SAME")
    _violates(lambda: Jurisdiction.objects.create(broker_name="SAME", display_name="x"), "broker_name")
    _violates(
        lambda: Jurisdiction.objects.create(broker_name="", display_name="x"), "jurisdiction_broker_name_set"
    )


def test_trader_constraints():
    user = UserFactory()
    _violates(lambda: Trader.objects.create(user=user, kyc_verified=True), "trader_kyc_verified_has_time")
    _violates(lambda: Trader.objects.create(user=user, suspended=True), "trader_suspended_has_time")
    Trader.objects.create(user=user)
    _violates(lambda: Trader.objects.create(user=user), "user_id")


def test_ctid_constraints(trader):
    CtidFactory(trader=trader, user_id=42)
    _violates(lambda: CtidFactory(trader=trader, user_id=42), "user_id")
    _violates(lambda: CtidFactory(trader=trader, user_id=0), "ctid_user_id_positive")
    # cTrader IDs are 64-bit.
    assert CtidFactory(trader=trader, user_id=2**63 - 1).user_id == 2**63 - 1


def test_ctid_token_constraints(trader):
    token = CtidTokenFactory(ctid__trader=trader)
    _violates(lambda: CtidTokenFactory(ctid=token.ctid), "ctid_id")
    _violates(lambda: CtidTokenFactory(version=0), "ctidtoken_version_positive")
    _violates(lambda: CtidTokenFactory(lease_owner="worker-1"), "ctidtoken_lease_complete")
    _violates(lambda: CtidTokenFactory(lease_until=timezone.now()), "ctidtoken_lease_complete")
    leased = CtidTokenFactory(lease_owner="worker-1", lease_until=timezone.now() + timedelta(seconds=30))
    assert leased.lease_owner == "worker-1"


def test_trading_account_constraints(trader):
    account = TradingAccountFactory(ctid__trader=trader)
    _violates(
        lambda: TradingAccountFactory(ctid_trader_account_id=account.ctid_trader_account_id),
        "ctid_trader_account_id",
    )
    _violates(lambda: TradingAccountFactory(ctid_trader_account_id=-1), "account_id_positive")
    _violates(lambda: TradingAccountFactory(balance_updated_at=None), "account_balance_has_time")
    TradingAccountFactory(balance=None, balance_updated_at=None)
    assert TradingAccountFactory(ctid_trader_account_id=2**63 - 1).ctid_trader_account_id == 2**63 - 1


def test_jurisdiction_in_use_cannot_be_deleted():
    from django.db.models import ProtectedError

    account = TradingAccountFactory()
    with pytest.raises(ProtectedError):
        account.jurisdiction.delete()


def test_gateway_status_one_row_per_environment():
    GatewayStatus.objects.create(environment="live")
    _violates(lambda: GatewayStatus.objects.create(environment="live"), "environment")


def _raw(column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM accounts_ctidtoken WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_token_round_trip_and_ciphertext_at_rest():
    token = CtidTokenFactory(access_token="plain-access-value", refresh_token="plain-refresh-value")
    for column, plain in (("access_token", "plain-access-value"), ("refresh_token", "plain-refresh-value")):
        assert plain not in _raw(column, token.pk)
    loaded = CtidToken.objects.get(pk=token.pk)
    assert loaded.access_token == "plain-access-value"
    assert loaded.refresh_token == "plain-refresh-value"
    # Re-saving re-encrypts (fresh ciphertext), never double-encrypts.
    before = _raw("access_token", token.pk)
    loaded.save()
    assert _raw("access_token", token.pk) != before
    assert CtidToken.objects.get(pk=token.pk).access_token == "plain-access-value"


def test_wrong_key_raises_on_load_instead_of_returning_ciphertext():
    token = CtidTokenFactory()
    with (
        override_settings(TOKEN_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]),
        pytest.raises(DecryptionError),
    ):
        CtidToken.objects.get(pk=token.pk)


def test_corrupt_ciphertext_raises_on_load():
    token = CtidTokenFactory()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_ctidtoken SET refresh_token = 'tampered' WHERE id = %s", [token.pk])
    with pytest.raises(DecryptionError):
        CtidToken.objects.get(pk=token.pk)


def test_rotate_token_keys(capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(TOKEN_ENCRYPTION_KEYS=[old]):
        tokens = CtidTokenFactory.create_batch(3)
        plain = {t.pk: (t.access_token, t.refresh_token) for t in tokens}
        before = {t.pk: _raw("access_token", t.pk) for t in tokens}

    with override_settings(TOKEN_ENCRYPTION_KEYS=[new, old]):
        call_command("rotate_token_keys", "--batch-size", "2")
        out = capsys.readouterr().out
        assert "accounts.CtidToken.access_token: 3 re-encrypted, 0 already current" in out
        assert "accounts.CtidToken.refresh_token: 3 re-encrypted, 0 already current" in out
        assert all(_raw("access_token", pk) != raw for pk, raw in before.items())
        # Idempotent: a second run finds nothing to do.
        call_command("rotate_token_keys")
        assert "0 re-encrypted, 3 already current" in capsys.readouterr().out

    # The old key is gone; every value still decrypts.
    with override_settings(TOKEN_ENCRYPTION_KEYS=[new]):
        for token in CtidToken.objects.all():
            assert (token.access_token, token.refresh_token) == plain[token.pk]


def test_rotate_token_keys_reports_unreadable_values(capsys):
    good = CtidTokenFactory()
    bad = CtidTokenFactory()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_ctidtoken SET access_token = 'tampered' WHERE id = %s", [bad.pk])
    new = Fernet.generate_key().decode()
    from django.conf import settings

    with override_settings(TOKEN_ENCRYPTION_KEYS=[new, *settings.TOKEN_ENCRYPTION_KEYS]):
        with pytest.raises(CommandError, match="1 value"):
            call_command("rotate_token_keys")
        assert _raw("access_token", bad.pk) == "tampered"
        assert CtidToken.objects.get(pk=good.pk).access_token == good.access_token
    assert f"pk={bad.pk} access_token: cannot be decrypted" in capsys.readouterr().err


def test_seed_demo_is_idempotent(capsys, settings):
    settings.DEBUG = True
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "demo / demo-trader-2026" in out
    assert "admin / admin-staff-2026" in out
    assert set(Jurisdiction.objects.values_list("broker_name", "tradingview_enabled")) == {
        ("SANDBOX-EU", True),
        ("SANDBOX-INTL", True),
        ("SANDBOX-RESTRICTED", False),
    }
    demo = Trader.objects.get(user__username="demo")
    assert demo.user.check_password("demo-trader-2026")
    ctid = demo.ctids.get()
    assert ctid.user_id == 7001002
    assert ctid.state == "needs_reconnect"
    assert not CtidToken.objects.filter(ctid=ctid).exists()
    accounts = {a.ctid_trader_account_id: a for a in TradingAccount.objects.filter(ctid=ctid)}
    assert set(accounts) == {40000201, 40000202}
    demo_account, live_account = accounts[40000201], accounts[40000202]
    assert (demo_account.login, demo_account.is_live, live_account.login, live_account.is_live) == (
        5100201,
        False,
        5100202,
        True,
    )
    assert str(demo_account.balance.normalize()) == "5E+3"
    assert demo_account.currency == "USD"
    assert demo_account.jurisdiction.broker_name == "SANDBOX-INTL"
    assert live_account.jurisdiction.broker_name == "SANDBOX-RESTRICTED"
    assert str(live_account.balance) == "750.0000000000"
    assert live_account.currency == "GBP"
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert not Trader.objects.filter(user=admin).exists()


def test_seed_demo_refuses_production(settings):
    settings.DEBUG = False
    settings.SANDBOX = False
    with pytest.raises(CommandError):
        call_command("seed_demo")


def test_trader_factory_traits():
    assert TraderFactory(verified=True).kyc_verified_at is not None
    assert TraderFactory(is_suspended=True).suspended_at is not None


def test_rotate_token_keys_moves_values_written_with_fernet_to_the_current_format(capsys):
    from clientarea import crypto

    token = CtidTokenFactory()
    plain = token.refresh_token
    written_before = crypto.fernet().encrypt(plain.encode()).decode()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_ctidtoken SET refresh_token = %s WHERE id = %s", [written_before, token.pk]
        )
    assert CtidToken.objects.get(pk=token.pk).refresh_token == plain  # still read as it is

    call_command("rotate_token_keys")
    assert "accounts.CtidToken.refresh_token: 1 re-encrypted" in capsys.readouterr().out
    stored = _raw("refresh_token", token.pk)
    assert stored != written_before
    assert crypto.is_encrypted_with_newest_key(stored)
    assert CtidToken.objects.get(pk=token.pk).refresh_token == plain
