"""The Celery app; and whether this process runs tasks itself (embedded mode) or hands them to a broker."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientarea.settings")

app = Celery("clientarea")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def embedded_mode() -> bool:
    """True without a broker (``REDIS_URL`` unset): tasks run eagerly in the caller's process.

    Nothing then holds a countdown or a delayed retry: work due later is left to the periodic loop.
    """
    return bool(app.conf.task_always_eager)
