"""Real Redis and a real Celery worker (loading worker_tasks.py) for the operations tests of this folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.db import connection

from clientarea.health import check_celery_workers
from tests.helpers.ops import BASE_DIR, REDIS_URL, Worker


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture(scope="module")
def worker_process(redis_url: str, django_db_setup: None) -> Iterator[Worker]:
    # The operations tests' own Redis database: messages another test left there (a beat's sweep stopped
    # before its worker took them) must not queue ahead of this module's probes.
    redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=5).flushdb()
    env = {**os.environ, "REDIS_URL": redis_url, "DEBUG": "1", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    # The test database pytest made, not the environment's own.
    database = connection.settings_dict
    if database["ENGINE"].endswith("postgresql") and env.get("DATABASE_URL", "").startswith("postgres"):
        env["DATABASE_URL"] = urlunsplit(urlsplit(env["DATABASE_URL"])._replace(path=f"/{database['NAME']}"))
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
            "tests.clientarea.worker_tasks",
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
