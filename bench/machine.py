"""How fast this machine runs plain Python at the moment, printed beside a benchmark's ratios.

The machines the benchmarks run on are shared virtual machines: their speed can move by a factor of two within
an hour, and a ratio of a CPU-bound path to a floor that waits on I/O moves with it. The same fixed workload,
timed when a benchmark starts and when it ends, tells which state the machine was in while it ran, so runs
made at different times can be compared for what they are.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time

_DOCUMENT = {"accounts": [{"id": i, "login": 1000 + i, "broker": f"BROKER{i % 7}"} for i in range(50)]}


def _workload() -> int:
    """A fixed mix of what the measured paths do: interpreter loops, JSON, string formatting, hashing."""
    total = sum(i * i for i in range(3000))
    text = json.dumps(_DOCUMENT)
    total += len(json.loads(text)["accounts"])
    total += len("".join(f"<li>{a['login']}: {a['broker']}</li>" for a in _DOCUMENT["accounts"]))
    total += hashlib.sha256(text.encode()).digest()[0]
    return total


def python_speed_us(repeat: int = 51) -> float:
    """The median time of the fixed workload in µs of this thread's CPU (lower is faster)."""
    times = []
    for _ in range(repeat):
        started = time.thread_time_ns()
        _workload()
        times.append((time.thread_time_ns() - started) / 1000)
    return statistics.median(times)


def describe(before: float, after: float) -> str:
    return (
        f"machine: a fixed Python workload took {before:.0f} µs of CPU at the start and {after:.0f} µs at the end"
        " (bench/machine.py; lower is faster: compare runs made at different times by it)"
    )
