"""How far a ratio measured in rounds can be trusted against its aim.

A benchmark that takes its measurements in short alternating rounds (bench_link.py) gets one ratio per round
beside the whole run's. On this machine the rounds of one run spread widely (the machine's speed moves within
a run), so a run's ratio a little above or below its aim says little. The rounds give its standard error, and
with Student's t the 95% interval around the run's ratio: the aim is met when the whole interval holds it,
missed when none of it does, and otherwise the run cannot tell (a longer run, more rounds, narrows it).
"""

from __future__ import annotations

import math
import statistics

# Student's t, two-sided 95% (the 0.975 quantile), by degrees of freedom; beyond the table, the value for 30
# (a little wider than the true one, so never a verdict the rounds do not support).
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def interval(value: float, rounds: list[float]) -> tuple[float, float]:
    """The 95% interval around ``value`` (the whole run's ratio) from the spread of its ``rounds``; with fewer
    than two rounds, nothing is known of the spread: the whole line."""
    if len(rounds) < 2:
        return -math.inf, math.inf
    t = _T_975[min(len(rounds) - 1, len(_T_975)) - 1]
    half = t * statistics.stdev(rounds) / math.sqrt(len(rounds))
    return value - half, value + half


def judged(value: float, rounds: list[float], aim: float, *, at_least: bool = True) -> str:
    """'met', 'missed' or 'within the noise' for ``value`` against ``aim`` (a floor when ``at_least``, else a
    ceiling), with the interval the rounds give."""
    low, high = interval(value, rounds)
    if at_least:
        met, missed = low >= aim, high < aim
    else:
        met, missed = high <= aim, low > aim
    where = f"95% interval {low:.3f}-{high:.3f} from {len(rounds)} rounds" if len(rounds) > 1 else "one round"
    if met:
        return f"met ({where})"
    if missed:
        return f"missed ({where})"
    return f"within the noise ({where}): measure longer (more --seconds and --rounds)"
