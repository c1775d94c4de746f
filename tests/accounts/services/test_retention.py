"""The history retention task: full resolution for a day, the last point of each hour for a month, the last
of each day for years, nothing past the horizon; idempotent; run by the real task entry point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.models import AccountSnapshot
from accounts.services.figures import account_snapshots_retention
from accounts.tasks import account_history_retention
from tests.factories import TradingAccountFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 15, 12, 30, tzinfo=UTC)


def points(account, start: datetime, count: int, step: timedelta) -> None:
    AccountSnapshot.objects.bulk_create(
        AccountSnapshot(
            account=account, at=start + step * i, balance=Decimal(1000), equity=Decimal(i), used_margin=0
        )
        for i in range(count)
    )


def test_retention_downsamples_and_bounds_the_history(settings):
    settings.FIGURES_RAW_RETENTION_HOURS = 24
    settings.FIGURES_HOURLY_RETENTION_DAYS = 31
    settings.FIGURES_DAILY_RETENTION_DAYS = 365
    account, other = TradingAccountFactory(), TradingAccountFactory()
    # Minute points over the last three days, hourly-aged points of two months ago, and a point years old.
    points(account, NOW - timedelta(days=3), 3 * 24 * 60, timedelta(minutes=1))
    points(other, datetime(2026, 4, 10, tzinfo=UTC), 96, timedelta(minutes=30))
    points(other, datetime(2020, 1, 1, tzinfo=UTC), 3, timedelta(hours=1))

    result = account_snapshots_retention(now=NOW)

    rows = AccountSnapshot.objects.filter(account=account)
    hour_cut = datetime(2026, 6, 14, 12, tzinfo=UTC)
    recent = rows.filter(at__gte=hour_cut)
    assert set(recent.values_list("resolution", flat=True)) == {AccountSnapshot.Resolution.RAW}
    assert recent.count() == 24 * 60 + 30  # every minute from 12:00 yesterday to now stays
    older = list(rows.filter(at__lt=hour_cut).order_by("at"))
    assert len(older) == 48  # two whole days before the cut, one point per hour
    assert {r.resolution for r in older} == {AccountSnapshot.Resolution.HOUR}
    assert all(r.at.minute == 59 for r in older)  # the last point of each hour
    # Two months old: one point per day, the last of the day; years old: gone.
    daily = list(AccountSnapshot.objects.filter(account=other).order_by("at"))
    assert [(r.at, r.resolution) for r in daily] == [
        (datetime(2026, 4, 10, 23, 30, tzinfo=UTC), AccountSnapshot.Resolution.DAY),
        (datetime(2026, 4, 11, 23, 30, tzinfo=UTC), AccountSnapshot.Resolution.DAY),
    ]
    # 48 hours of each account became hourly points; the other account's two days then became daily ones.
    assert result.hourly == 48 + 48
    assert result.daily == 2
    # 47.5 hours of minute points left 48; 96 half-hour points left 48, then 2; the three old points went.
    assert result.deleted == (2850 - 48) + (96 - 48) + (48 - 2) + 3

    # Running again changes nothing.
    before = list(AccountSnapshot.objects.order_by("id").values_list("id", "resolution"))
    again = account_snapshots_retention(now=NOW)
    assert (again.hourly, again.daily, again.deleted) == (0, 0, 0)
    assert list(AccountSnapshot.objects.order_by("id").values_list("id", "resolution")) == before


def test_the_scheduled_task_runs_the_retention(settings):
    account = TradingAccountFactory()
    points(account, datetime(2001, 1, 1, tzinfo=UTC), 5, timedelta(minutes=1))
    assert "refresh-account-figures" in settings.CELERY_BEAT_SCHEDULE
    assert (
        settings.CELERY_BEAT_SCHEDULE["account-history-retention"]["task"] == account_history_retention.name
    )

    assert account_history_retention.apply().get() == "0 hourly, 0 daily, 5 deleted"
    assert not AccountSnapshot.objects.exists()
