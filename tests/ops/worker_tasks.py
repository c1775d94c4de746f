"""A task the test worker loads (``-I tests.ops.worker_tasks``) to show which request id it ran under."""

import logging

from clientarea import request_id
from clientarea.celery import app

logger = logging.getLogger("tests.ops.probe")


@app.task(name="tests.ops.probe")
def probe(marker: str) -> str:
    logger.warning("probe ran", extra={"marker": marker})
    return request_id.get()
