"""A small process supervisor for ``manage.py run``: one process tree, prefixed output, clean Ctrl-C.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only the supervisor, which then stops
the children in order: SIGTERM to each child's whole process group (a Celery worker's pool, runserver's
threads), a grace period, then SIGKILL. On Linux each child also gets SIGTERM if the supervisor itself dies
(PR_SET_PDEATHSIG), so even a killed supervisor leaves no orphans behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO

# Asks Linux to SIGTERM the process when its parent dies, then becomes the real command. A launcher instead of
# Popen(preexec_fn=...), which is unsafe once the supervisor has threads.
_LAUNCHER = (
    "import ctypes, ctypes.util, os, signal, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')\n"
    "    libc.prctl(1, signal.SIGTERM)\n"
    "    if os.getppid() != int(sys.argv[1]):\n"
    "        sys.exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


class Supervisor:
    def __init__(self, *, cwd: str, out: IO[str], grace: float = 10.0) -> None:
        self.cwd = cwd
        self.out = out
        self.grace = grace
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._width = 8

    def say(self, name: str, line: str) -> None:
        with self._write_lock:
            self.out.write(f"{name:<{self._width}} | {line}\n")
            self.out.flush()

    def start(self, child: Child) -> Child:
        self._width = max(self._width, len(child.name))
        env = {**os.environ, **child.env, "PYTHONUNBUFFERED": "1"}
        child.process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *child.argv],
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child._reader = threading.Thread(target=self._pump, args=(child,), daemon=True)
        child._reader.start()
        self.children.append(child)
        self.say("run", f"started {child.name} pid={child.pid}")
        return child

    def _pump(self, child: Child) -> None:
        assert child.process is not None
        assert child.process.stdout is not None
        for raw in child.process.stdout:
            self.say(child.name, raw.decode("utf-8", "replace").rstrip("\n"))

    def wait(self, *, poll: float = 0.2, on_tick: Callable[[], None] | None = None) -> int:
        """Block until a stop is requested (0) or a child exits on its own (1)."""
        while not self.stopping.is_set():
            for child in self.children:
                assert child.process is not None
                code = child.process.poll()
                if code is not None:
                    self.say("run", f"{child.name} exited with status {code}; stopping everything")
                    return 1
            if on_tick is not None:
                on_tick()
            self.stopping.wait(poll)
        return 0

    def stop(self) -> None:
        """SIGTERM every child's process group, newest first; SIGKILL what is left after the grace period."""
        self.stopping.set()
        running = [c for c in reversed(self.children) if c.process and c.process.poll() is None]
        for child in running:
            self.say("run", f"stopping {child.name}")
            self._signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("run", f"{child.name} did not stop within {self.grace:.0f} s; killing it")
                self._signal_group(child, signal.SIGKILL)
                child.process.wait()
        # Grandchildren that outlived their parent (same process group) go too.
        for child in self.children:
            self._signal_group(child, signal.SIGKILL)
        for child in self.children:
            if child._reader is not None:
                child._reader.join(timeout=2)

    @staticmethod
    def _signal_group(child: Child, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signum)
