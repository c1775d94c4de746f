"""The Celery beat schedule, run in-process: the embedded mode's stand-in for beat and a worker.

``CELERY_BEAT_SCHEDULE`` stays the one list of periodic work. Without a broker every task runs eagerly, so a
due entry is simply applied here, one after the other, and its outcome logged.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from celery.schedules import BaseSchedule, maybe_schedule
from django.conf import settings

from clientarea import request_id
from clientarea.celery import app

logger = logging.getLogger(__name__)


@dataclass
class Entry:
    name: str
    task: str
    schedule: BaseSchedule
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    last_run_at: datetime | None = None

    def due(self) -> bool:
        # Everything runs once at start-up, so a fresh sandbox shows the sweep working straight away.
        if self.last_run_at is None:
            return True
        is_due, _next = self.schedule.is_due(self.last_run_at)
        return bool(is_due)


@cache
def _import_task_modules() -> None:
    # What a worker does once at start: import every app's tasks module, so task names resolve. Once only:
    # Celery's Django fixup runs django.setup() again on each import round, which reconfigures logging.
    app.loader.import_default_modules()


def schedule_entries(schedule: dict[str, Any] | None = None) -> list[Entry]:
    _import_task_modules()
    entries = []
    specs: dict[str, Any] = settings.CELERY_BEAT_SCHEDULE if schedule is None else schedule
    for name, spec in specs.items():
        entries.append(
            Entry(
                name=name,
                task=spec["task"],
                schedule=maybe_schedule(spec["schedule"]),
                args=tuple(spec.get("args", ())),
                kwargs=dict(spec.get("kwargs", {})),
            )
        )
    unknown = [e.task for e in entries if e.task not in app.tasks]
    if unknown:
        raise LookupError(f"CELERY_BEAT_SCHEDULE names tasks that are not registered: {', '.join(unknown)}")
    return entries


def run_entry(entry: Entry) -> bool:
    """Apply one entry's task in this process; True when it succeeded."""
    entry.last_run_at = app.now()
    task = app.tasks[entry.task]
    token = request_id.bind(f"periodic-{entry.name}-{request_id.new()[:12]}")
    try:
        result = task.apply(args=entry.args, kwargs=entry.kwargs)
        if result.failed():
            logger.error(
                "periodic task failed",
                extra={"entry": entry.name, "task": entry.task, "error": type(result.result).__name__},
            )
            return False
        logger.info("periodic task done", extra={"entry": entry.name, "task": entry.task})
        return True
    finally:
        request_id.unbind(token)


def run_forever(entries: list[Entry], *, tick: float, stop: threading.Event) -> None:
    logger.info("periodic loop started", extra={"entries": [e.name for e in entries], "tick": tick})
    while not stop.is_set():
        for entry in entries:
            if stop.is_set():
                break
            if entry.due():
                run_entry(entry)
        stop.wait(tick)
    logger.info("periodic loop stopped")
