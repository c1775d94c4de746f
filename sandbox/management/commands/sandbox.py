from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sandbox.clients import tradingview_client_ensure_sandbox
from sandbox.control import from_settings


class Command(BaseCommand):
    help = (
        "Run the simulated peers (cTrader ID, Open API live and demo, TradingView adapter, TradingView) and the "
        "sandbox control page, on SANDBOX_HTTP, SANDBOX_WS_LIVE and SANDBOX_WS_DEMO. Needs SANDBOX=1."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.SANDBOX:
            raise CommandError("The sandbox runs only with SANDBOX=1 (it replaces Spotware and TradingView).")
        # The TradingView simulator signs in to the client area as a registered OAuth client.
        tradingview_client_ensure_sandbox(sandbox_url=settings.SANDBOX_HTTP)
        sandbox = from_settings()
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        try:
            sandbox.start()
        except OSError as exc:
            sandbox.stop()
            raise CommandError(f"The sandbox could not listen: {exc}") from exc
        self.stdout.write(
            f"Sandbox control page: {sandbox.url}/  (Open API live {sandbox.openapi['live'].url}, "
            f"demo {sandbox.openapi['demo'].url}); mailbox {sandbox.url}/mail/ "
            f"(SMTP {sandbox.mailbox.host}:{sandbox.mailbox.port})"
        )
        stop.wait()
        sandbox.stop()
