"""Helpers of the account opening tests: a trader with a verified email, the links mails carry."""

from __future__ import annotations

import re

from django.utils import timezone

from accounts.models import Trader
from tests.factories import TraderFactory

TRADING_PASSWORD = "Open5esame-Trade"


def verified_trader(**kwargs: object) -> Trader:
    trader = TraderFactory(**kwargs)
    trader.email_verified = trader.user.email.lower()
    trader.email_verified_at = timezone.now()
    trader.save()
    return trader


def link_in(text: str) -> str:
    match = re.search(r"https?://\S+", text)
    assert match, text
    return match.group(0)
