"""Pacing of one connection's outgoing frames: the rate limit and the priorities of the outgoing queue."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

# Priorities of the outgoing queue: lower goes first, FIFO within one priority.
PRIORITY_CONTROL = 0  # application auth, heartbeats
PRIORITY_DEFAULT = 1  # account auth and everything else
PRIORITY_BULK = 2  # reads that can wait behind a re-authorization wave (trader info, assets)


class RatePacer:
    """Spaces sends so that no window of ``window`` seconds carries more than ``limit`` of them.

    Two rules: a hard sliding window over the last ``limit`` send times (the guarantee), and an even
    spacing of ``window / limit`` with a little catch-up allowance (so a backlog leaves as a steady stream
    rather than as bursts at each window edge). The window is 5% longer than one second so that
    scheduling and network jitter (up to 50 ms) does not push a server-side one-second window over the limit.
    ``margin`` aims that fraction below the server's limit (10% by default): a burst of queued frames then
    never reaches REQUEST_FREQUENCY_EXCEEDED even when the server counts a little differently.
    """

    def __init__(
        self,
        limit: int,
        *,
        margin: float = 0.1,
        window: float = 1.05,
        clock: Callable[[], float] = time.monotonic,
    ):
        if limit < 1:
            raise ValueError("the rate limit must be at least 1 per second")
        if not 0 <= margin < 1:
            raise ValueError("the pacer margin must be a fraction between 0 and 1")
        self.server_limit = limit
        limit = max(1, int(limit * (1 - margin)))
        self.limit = limit
        self.window = window
        self.interval = window / limit
        self.tolerance = self.interval * 2
        self._clock = clock
        self._sent: deque[float] = deque(maxlen=limit)
        self._tat = 0.0  # theoretical arrival time of the next send (GCRA)

    def delay(self) -> float:
        now = self._clock()
        wait = self._tat - self.tolerance - now
        if len(self._sent) == self.limit:
            wait = max(wait, self._sent[0] + self.window - now)
        return max(wait, 0.0)

    def record(self) -> None:
        now = self._clock()
        self._sent.append(now)
        self._tat = max(self._tat, now) + self.interval

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (the server asked to slow down)."""
        self._tat = max(self._tat, self._clock() + seconds + self.tolerance)

    def slow_down(self, factor: float = 0.8) -> None:
        """Lower the rate for the rest of this connection, down to a floor of one per second."""
        self.limit = max(1, int(self.limit * factor))
        self.interval = self.window / self.limit
        self.tolerance = self.interval * 2
        self._sent = deque(list(self._sent)[-self.limit :], maxlen=self.limit)

    async def acquire(self) -> None:
        while (wait := self.delay()) > 0:
            await asyncio.sleep(wait)
        self.record()
