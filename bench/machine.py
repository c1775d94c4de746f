"""How fast this machine runs plain Python at the moment, printed beside a benchmark's ratios.

The machines the benchmarks run on are shared virtual machines: their speed can move by a factor of two within
an hour, and a ratio of a CPU-bound path to a floor that waits on I/O moves with it. The same fixed workload,
timed when a benchmark starts and when it ends, tells which state the machine was in while it ran, so runs
made at different times can be compared for what they are. Beside it, the share of the machine's CPU the
hypervisor gave to other virtual machines while the benchmark ran (steal, from /proc/stat, counted from when
this module was imported): it comes in bursts, and a run it took much from is to be measured again.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time


def cpu_ticks() -> list[int]:
    """The machine's CPU time so far, all cores, in clock ticks, as /proc/stat splits it (user, nice, system,
    idle, iowait, irq, softirq, steal, ...)."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


STEAL = 7  # the index of steal in ``cpu_ticks``: time the hypervisor gave to other virtual machines

_STARTED = cpu_ticks()


def stolen_share(since: list[int]) -> float:
    """The share of the machine's CPU time the hypervisor took for other virtual machines since ``since``."""
    now = cpu_ticks()
    total = sum(now[: STEAL + 1]) - sum(since[: STEAL + 1])
    return (now[STEAL] - since[STEAL]) / total if total > 0 else 0.0


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
        " (bench/machine.py; lower is faster: compare runs made at different times by it); the hypervisor took"
        f" {stolen_share(_STARTED):.0%} of the machine's CPU for other virtual machines during the run (steal)"
    )
