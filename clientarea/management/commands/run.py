"""``manage.py run``: the whole client area in one process tree (what ``make run`` starts)."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clientarea.supervisor import Child, Supervisor

PARTS = ("web", "sandbox", "tasks", "gateway")


class Command(BaseCommand):
    help = (
        "Migrate, seed the demo data and run the web server, the sandbox simulators (SANDBOX=1), the background "
        "tasks and the Open API gateway in one process tree. Without REDIS_URL the periodic tasks run in an "
        "in-process loop; with REDIS_URL a Celery worker and exactly one beat run instead. Ctrl-C stops all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("RUN_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("RUN_PORT", "8000")))
        parser.add_argument(
            "--without",
            action="append",
            choices=PARTS[1:],
            default=[],
            help="Leave a part out (repeatable), e.g. to run the gateway elsewhere.",
        )
        parser.add_argument("--no-seed", action="store_true", help="Do not create the demo data.")
        parser.add_argument(
            "--grace", type=float, default=10.0, help="Seconds each part gets to stop before it is killed."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        without = set(options["without"])
        site_url = os.environ.get("SITE_URL") or f"http://{host}:{port}"
        # Children read SITE_URL for the cTrader redirect URI; this process prints it in the logins.
        os.environ["SITE_URL"] = settings.SITE_URL = site_url
        if "CTRADER_REDIRECT_URI" not in os.environ:
            settings.CTRADER_REDIRECT_URI = f"{site_url}/ctrader/callback/"

        distributed = bool(settings.REDIS_URL)
        self.stdout.write(
            f"Starting clientarea ({'PostgreSQL/Redis with Celery' if distributed else 'embedded'} mode, "
            f"{'sandbox peers' if settings.SANDBOX else 'real peers'}, "
            f"database {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]})"
        )
        call_command("migrate", interactive=False, verbosity=0)
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        logins = ""
        if not options["no_seed"] and (settings.DEBUG or settings.SANDBOX):
            captured = io.StringIO()
            call_command("seed_demo", stdout=captured)
            logins = captured.getvalue()

        supervisor = Supervisor(cwd=str(settings.BASE_DIR), out=sys.stdout, grace=options["grace"])
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        if "gateway" not in without and not (settings.CTRADER_CLIENT_ID and settings.CTRADER_CLIENT_SECRET):
            self.stdout.write(
                "The Open API gateway is left out: CTRADER_CLIENT_ID and CTRADER_CLIENT_SECRET are not set "
                "(SANDBOX=1 provides them)."
            )
            without.add("gateway")
        # This tree runs a gateway, so the web process's /readyz holds it to a fresh heartbeat.
        gateway_expected = "gateway" not in without
        children = [Child("web", self._web_argv(manage, host, port), self._web_env(gateway_expected))]
        if settings.SANDBOX and "sandbox" not in without:
            children.append(Child("sandbox", [*manage, "sandbox"]))
        if "tasks" not in without:
            if distributed:
                celery = [sys.executable, "-m", "celery", "-A", "clientarea"]
                children.append(Child("worker", [*celery, "worker", "--loglevel", "INFO"]))
                # Exactly one beat: a second would enqueue every periodic task twice.
                children.append(
                    Child("beat", [*celery, "beat", "--loglevel", "INFO", "-s", self._beat_file()])
                )
            else:
                children.append(Child("tasks", [*manage, "run_periodic"]))
        if gateway_expected:
            if "openapi_gateway" not in get_commands():
                raise CommandError(
                    "The openapi_gateway command is not installed; run with --without gateway."
                )
            children.append(Child("gateway", [*manage, "openapi_gateway"]))

        stop_requested = False

        def request_stop(signum: int, frame: Any) -> None:
            nonlocal stop_requested
            stop_requested = True
            supervisor.stopping.set()

        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        status = 1
        try:
            # The sandbox first: the gateway and the web process talk to it from their first second.
            for child in sorted(children, key=lambda c: c.name != "sandbox"):
                supervisor.start(child)
            if self._wait_until_up(supervisor, f"http://{host}:{port}/healthz"):
                self._banner(site_url, logins)
            status = supervisor.wait() if not supervisor.stopping.is_set() else 0
        finally:
            supervisor.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if status and not stop_requested:
            raise CommandError("A part of the client area stopped unexpectedly (see its output above).")
        self.stdout.write("Stopped.")

    @staticmethod
    def _web_argv(manage: list[str], host: str, port: int) -> list[str]:
        if settings.DEBUG:
            # No autoreloader: it would fork a second server process outside this supervisor's control.
            return [*manage, "runserver", "--noreload", f"{host}:{port}"]
        workers = os.environ.get("WEB_CONCURRENCY", "2")
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "clientarea.wsgi",
            "--bind",
            f"{host}:{port}",
            "--workers",
            workers,
        ]

    @staticmethod
    def _web_env(gateway_expected: bool) -> dict[str, str]:
        env = {}
        if gateway_expected and "HEALTH_GATEWAY_EXPECTED" not in os.environ:
            env["HEALTH_GATEWAY_EXPECTED"] = "1"
        return env

    @staticmethod
    def _beat_file() -> str:
        directory = settings.BASE_DIR / ".local"
        directory.mkdir(exist_ok=True)
        return str(directory / "celerybeat-schedule")

    @staticmethod
    def _wait_until_up(supervisor: Supervisor, url: str, timeout: float = 120.0) -> bool:
        session = requests.Session()
        session.trust_env = False
        deadline = time.monotonic() + timeout
        while not supervisor.stopping.is_set() and time.monotonic() < deadline:
            if any(c.process is not None and c.process.poll() is not None for c in supervisor.children):
                return False
            try:
                if session.get(url, timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            supervisor.stopping.wait(0.3)
        return False

    def _banner(self, site_url: str, logins: str) -> None:
        lines = ["", "=" * 72, f" The client area is running: {site_url}/"]
        if settings.SANDBOX:
            lines.append(f" Sandbox control (simulated Spotware and TradingView): {settings.SANDBOX_HTTP}/")
            lines.append(f" Mailbox (every mail the client area sends): {settings.SANDBOX_HTTP}/mail/")
        lines.append(f" Health: {site_url}/healthz   Readiness: {site_url}/readyz")
        lines.append(" Press Ctrl-C to stop everything.")
        lines.append("=" * 72)
        self.stdout.write("\n".join(lines))
        if logins.strip():
            self.stdout.write(logins)
        host = urlsplit(site_url).hostname or ""
        if host not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
            self.stdout.write(f" Note: {host} is not in ALLOWED_HOSTS; add it or the pages answer 400.")
