"""The Celery app; and whether this process runs tasks itself (embedded mode) or hands them to a broker."""

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientarea.settings")

app = Celery("clientarea")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def registered_task(name: str) -> Any:
    """The task registered under ``name``.

    Services queue work through this instead of importing the tasks modules (which import the services): the
    accounts and tradingview apps import their tasks when Django starts, so every task is registered here.
    """
    return app.tasks[name]


def embedded_mode() -> bool:
    """True without a broker (``REDIS_URL`` unset): tasks run eagerly in the caller's process.

    Nothing then holds a countdown or a delayed retry: work due later is left to the periodic loop.
    """
    return bool(app.conf.task_always_eager)
