from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clientarea.periodic import run_entry, run_forever, schedule_entries


class Command(BaseCommand):
    help = (
        "Run the Celery beat schedule in this process (embedded mode: no Redis, tasks run eagerly). "
        "With REDIS_URL set, run Celery beat and workers instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--tick",
            type=float,
            default=settings.PERIODIC_TICK_SECONDS,
            help="Seconds between looks at the schedule.",
        )
        parser.add_argument("--once", action="store_true", help="Run every entry once, then exit.")

    def handle(self, *args: Any, tick: float, once: bool, **options: Any) -> None:
        if settings.REDIS_URL:
            raise CommandError(
                "REDIS_URL is set: the periodic tasks belong to Celery beat and workers "
                "(celery -A clientarea beat / worker), not to this loop."
            )
        entries = schedule_entries()
        if once:
            failed = [entry.name for entry in entries if not run_entry(entry)]
            if failed:
                raise CommandError(f"Failed: {', '.join(failed)}")
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        run_forever(entries, tick=tick, stop=stop)
