"""factory_boy factories for the shared data model.

Every factory builds a valid row. Passwords are ``PASSWORD`` unless given; token values are random and
unique per row, so a test can assert that the plaintext of a token never reaches a page.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import (
    AccountOpening,
    AccountType,
    Ctid,
    CtidToken,
    Jurisdiction,
    Trader,
    TradingAccount,
)

PASSWORD = "Sturdy-Password-4-Tests"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.test")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save_password(obj, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            obj.save(update_fields=["password"])


class StaffUserFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    is_superuser = True


class JurisdictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Jurisdiction
        django_get_or_create = ("broker_name",)

    broker_name = factory.Sequence(lambda n: f"BROKER-{n}")
    display_name = factory.LazyAttribute(lambda o: f"Broker {o.broker_name}")
    tradingview_enabled = True


class TraderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Trader

    user = factory.SubFactory(UserFactory)
    kyc_verified = False
    kyc_verified_at = factory.LazyAttribute(lambda o: timezone.now() if o.kyc_verified else None)
    suspended = False
    suspended_at = factory.LazyAttribute(lambda o: timezone.now() if o.suspended else None)

    class Params:
        verified = factory.Trait(kyc_verified=True)
        is_suspended = factory.Trait(suspended=True, suspended_reason="Suspended in a test")


class CtidFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Ctid

    user_id = factory.Sequence(lambda n: 9_000_000 + n)
    trader = factory.SubFactory(TraderFactory)
    state = Ctid.State.CONNECTED


class CtidTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CtidToken

    ctid = factory.SubFactory(CtidFactory)
    access_token = factory.LazyFunction(lambda: f"access-{secrets.token_urlsafe(24)}")
    refresh_token = factory.LazyFunction(lambda: f"refresh-{secrets.token_urlsafe(24)}")
    scope = "accounts"
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))
    state = CtidToken.State.ACTIVE


class TradingAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TradingAccount

    ctid_trader_account_id = factory.Sequence(lambda n: 30_000_000 + n)
    ctid = factory.SubFactory(CtidFactory)
    login = factory.Sequence(lambda n: 5_000_000 + n)
    is_live = False
    jurisdiction = factory.SubFactory(JurisdictionFactory)
    broker_name = factory.LazyAttribute(lambda o: o.jurisdiction.broker_name if o.jurisdiction else "")
    broker_title = factory.LazyAttribute(lambda o: o.jurisdiction.display_name if o.jurisdiction else "")
    is_tradingview = False
    status = TradingAccount.Status.ACTIVE
    balance = Decimal("1000.00")
    currency = "USD"
    balance_updated_at = factory.LazyFunction(timezone.now)
    last_synced_at = factory.LazyFunction(timezone.now)


class AccountTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AccountType

    jurisdiction = factory.SubFactory(JurisdictionFactory)
    name = factory.Sequence(lambda n: f"Type {n}")
    environment = "demo"
    group_name = "G"
    who_may_open = AccountType.Access.ANYONE


class AccountOpeningFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AccountOpening

    public_id = factory.LazyFunction(uuid.uuid4)
    key = factory.Sequence(lambda n: f"k{n}")
    trader = factory.SubFactory(TraderFactory)
    account_type = factory.SubFactory(AccountTypeFactory)
    deposit_currency = "USD"
    leverage = 100
    tag = factory.Sequence(lambda n: f"ca-open-{n}")
