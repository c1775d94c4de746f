"""Benchmark of the periodic enqueue (token sweep, account sync): CPU per due token, one message per token
sent alone (``apply_async`` each: the old way), pipelined (as the workers fan out: kombu's publish batch, and the
task's options and route worked out once per fan-out, accounts/tasks.py ``_enqueue``), and one message per batch
of ids (the sweep), side by side in one run, on a real Redis.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/14 DEBUG=1 .venv/bin/python bench/bench_sweep.py

No database: the ids are given, so only the enqueue is measured (the selection is one keyset query per
batch, measured by bench_refresh.py). Messages go to a queue of their own, deleted afterwards. The batched
figure is what the sweep task itself spends; the fan-out a worker then does per batch (one message per id,
so each refresh keeps its own time limit) is printed too, as it is spread over the workers. Sizes:
BENCH_TOKENS (10000; 100000 takes about a minute more), BENCH_BATCH (the sweep's batch size).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
TOKENS = int(os.environ.get("BENCH_TOKENS", "10000"))
QUEUE = f"bench-sweep-{os.getpid()}"

from bench.machine import describe, python_speed_us  # noqa: E402


def main() -> None:
    os.environ["REDIS_URL"] = REDIS_URL
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientarea.settings")
    import django

    django.setup()
    import redis
    from django.conf import settings

    from accounts import tasks
    from clientarea.celery import app

    batch = int(os.environ.get("BENCH_BATCH", str(settings.TOKEN_SWEEP_BATCH_SIZE)))
    app.conf.task_always_eager = False
    app.conf.task_default_queue = QUEUE
    app.conf.task_routes = {"*": {"queue": QUEUE}}
    client = redis.Redis.from_url(REDIS_URL)
    ids = list(range(1, TOKENS + 1))
    batches = [ids[i : i + batch] for i in range(0, len(ids), batch)]

    def measure(label: str, send: object) -> tuple[float, float]:
        client.delete(QUEUE)
        cpu, wall = time.process_time(), time.perf_counter()
        count = send()  # type: ignore[operator]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        messages = client.llen(QUEUE)
        client.delete(QUEUE)
        print(
            f"   {label:<38} {count:>8,} tokens {messages:>8,} messages "
            f"{cpu / count * 1e6:>9.1f} µs CPU/token {wall / count * 1e6:>9.1f} µs wall/token"
        )
        return cpu / count, wall / count

    speed_before = python_speed_us()
    print(f"sweep enqueue of {TOKENS:,} due tokens to Redis ({REDIS_URL}), batch size {batch}")
    # Warm both paths (connections, task registry) before measuring.
    tasks._enqueue(tasks.refresh_ctid_token, [ids[:50]], only_if_due=True, reason="sweep")
    tasks._enqueue_batches(tasks.refresh_ctid_tokens, tasks.refresh_ctid_token, [ids[:50]], only_if_due=True)
    client.delete(QUEUE)

    def one_round_trip_each() -> int:
        # One message per token, each sent on its own: how the sweep published before.
        count = 0
        with app.producer_or_acquire() as producer:
            for ids in batches:
                for ctid_id in ids:
                    tasks.refresh_ctid_token.apply_async(
                        args=(ctid_id,), kwargs={"only_if_due": True, "reason": "sweep"}, producer=producer
                    )
                    count += 1
        return count

    per_token, _ = measure("one message per token, each sent alone", one_round_trip_each)
    pipelined, _ = measure(
        "one message per token, pipelined",
        lambda: tasks._enqueue(tasks.refresh_ctid_token, batches, only_if_due=True, reason="sweep"),
    )
    batched, _ = measure(
        "one message per batch (sweep, after)",
        lambda: tasks._enqueue_batches(
            tasks.refresh_ctid_tokens, tasks.refresh_ctid_token, batches, only_if_due=True
        ),
    )
    fan_out, _ = measure(
        "worker fan-out of the batches",
        lambda: sum(tasks.refresh_ctid_tokens(b, only_if_due=True) for b in batches),
    )
    print(f"\n   per-token messages pipelined / each sent alone: {pipelined / per_token:.2f}")
    verdict = "met" if pipelined * 1e6 <= 200 else "missed"
    print(
        f"   verdict: one message per token, pipelined: {pipelined * 1e6:.1f} µs CPU per token, aim <= 200 µs: "
        f"{verdict}"
    )
    print(f"   the sweep itself (one message per batch): {batched * 1e6:.2f} µs per token")
    print(
        f"   worker-side fan-out of the batches (pipelined): {fan_out * 1e6:.1f} µs per token, spread over the"
        " workers"
    )
    print(f"   {describe(speed_before, python_speed_us())}")


if __name__ == "__main__":
    main()
