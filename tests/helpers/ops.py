"""The operations tests' Redis databases and the Celery worker process they start."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
# The Redis database of the in-process Celery worker (tests/conftest.py) and of the tests that use a Redis
# cache (under their own key prefix). CI: .ci/run sets it.
TEST_REDIS_URL = os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/15")
# Its own Redis database: the in-process worker of tests/conftest.py must not answer these pings.
REDIS_URL = os.environ.get("OPS_REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/5")
# A port nothing listens on: 1 is reserved (tcpmux) and never served here.
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"


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
