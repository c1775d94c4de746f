"""Shared fixtures. Peers (token endpoint, Open API, adapter) are real servers on loopback.

``trader`` and ``other_trader`` are ``Trader`` rows (their user is ``trader.user``, password
``tests.factories.PASSWORD``); ``trader_client`` is a Django test client signed in as ``trader``;
``staff_client`` is signed in as a superuser who has no Trader profile.
"""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Trader
from tests.factories import StaffUserFactory, TraderFactory


@pytest.fixture
def trader(db: None) -> Trader:
    return TraderFactory()


@pytest.fixture
def other_trader(db: None) -> Trader:
    return TraderFactory()


@pytest.fixture
def trader_client(trader: Trader) -> Client:
    client = Client()
    client.force_login(trader.user)
    return client


@pytest.fixture
def staff_user(db: None):
    return StaffUserFactory()


@pytest.fixture
def staff_client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client
