"""What publishing a task raises when the broker (Redis) is down or stalled.

Publishing has short socket timeouts and one quick retry (settings: Redis and Celery), so a caller learns
within seconds that nothing was queued, and can say so instead of answering 500.
"""

from __future__ import annotations

from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

QUEUE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, RedisError, OSError)
