"""Real Redis and a real Celery worker for the operations tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from clientarea.health import check_celery_workers

BASE_DIR = Path(__file__).resolve().parents[2]
# Its own Redis database: the in-process worker of tests/conftest.py must not answer these pings.
REDIS_URL = os.environ.get("OPS_REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/5")
# A port nothing listens on: 1 is reserved (tcpmux) and never served here.
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return REDIS_URL


class Worker:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture(scope="module")
def worker_process(redis_url: str) -> Iterator[Worker]:
    env = {**os.environ, "REDIS_URL": redis_url, "DEBUG": "1", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "clientarea",
            "worker",
            "--pool=solo",
            "--without-mingle",
            "--without-gossip",
            "-I",
            "tests.ops.worker_tasks",
            "-n",
            f"ops-test-{os.getpid()}@%h",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = Worker(process)
    try:
        deadline = time.monotonic() + 60
        while not check_celery_workers(broker_url=redis_url).ok:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not come up:\n{worker.output()}")
            time.sleep(0.5)
        yield worker
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
