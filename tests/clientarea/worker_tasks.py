"""A task the test worker loads (``-I tests.clientarea.worker_tasks``) to show which request id it ran under."""

import logging

from clientarea import request_id
from clientarea.celery import app

logger = logging.getLogger("tests.clientarea.probe")


@app.task(name="tests.clientarea.probe")
def probe(marker: str) -> str:
    logger.warning("probe ran", extra={"marker": marker})
    return request_id.get()
