"""The one retry-backoff rule of the project: exponential growth, a cap, "equal jitter" and a floor.

Django-free so the Open API gateway, the Celery tasks and the TradingView tasks share it.
"""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, *, base: float, cap: float, floor: float = 0.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Between half and all of ``min(cap, base * 2**attempt)`` (the jitter spreads many clients that failed
    together), and never below ``floor``: even a zero or tiny base cannot turn into a tight loop.
    """
    ceiling = min(cap, base * (2 ** min(max(attempt, 0), 30)))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    return max(delay, floor)
