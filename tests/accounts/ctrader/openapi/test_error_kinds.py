"""One vocabulary for Open API errors, and the one retry-backoff rule."""

from __future__ import annotations

import random

import pytest

from accounts.ctrader.backoff import backoff_delay
from accounts.ctrader.openapi.messages import ErrorKind, classify_error


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("RET_ACCOUNT_DISABLED", ErrorKind.ACCOUNT_DISABLED),
        ("CHANNEL_IS_BLOCKED", ErrorKind.ACCOUNT_DISABLED),
        ("RET_NO_SUCH_LOGIN", ErrorKind.ACCOUNT_GONE),
        ("CH_CTID_TRADER_ACCOUNT_NOT_FOUND", ErrorKind.ACCOUNT_GONE),
        ("CH_ACCESS_TOKEN_INVALID", ErrorKind.TOKEN),
        ("OA_AUTH_TOKEN_EXPIRED", ErrorKind.TOKEN),
        ("SERVER_IS_UNDER_MAINTENANCE", ErrorKind.MAINTENANCE),
        ("CH_CLIENT_AUTH_FAILURE", ErrorKind.APP_REFUSED),
        ("CH_OA_CLIENT_NOT_FOUND", ErrorKind.APP_REFUSED),
        ("BLOCKED_PAYLOAD_TYPE", ErrorKind.RATE_LIMIT),
        ("SOMETHING_NEW", ErrorKind.OTHER),
    ],
)
def test_each_error_name_has_one_meaning(code: str, kind: ErrorKind) -> None:
    assert classify_error(code) is kind


def test_backoff_grows_is_capped_jittered_and_never_below_the_floor() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, base=1.0, cap=8.0, rng=rng) for n in range(8)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1])
    assert all(4.0 <= d <= 8.0 for d in delays[3:])
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered
    assert backoff_delay(0, base=0.0, cap=60.0, floor=1.0) == 1.0
    assert backoff_delay(40, base=60.0, cap=900.0) <= 900.0
