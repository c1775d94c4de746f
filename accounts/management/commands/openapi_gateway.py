"""manage.py openapi_gateway: keep every linked trading account authorized on the cTrader Open API."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.ctrader.openapi.gateway import Environment, Gateway
from accounts.services.gateway import DjangoGatewayStore, gateway_config


class Command(BaseCommand):
    help = "Run the long-lived Open API gateway (one connection per environment) until SIGTERM or SIGINT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--environment",
            choices=["live", "demo", "both"],
            default="both",
            help="Which connection(s) to hold (default: both).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.CTRADER_CLIENT_ID or not settings.CTRADER_CLIENT_SECRET:
            raise CommandError("CTRADER_CLIENT_ID and CTRADER_CLIENT_SECRET must be set.")
        chosen = options["environment"]
        urls: dict[Environment, str] = {}
        if chosen in ("live", "both"):
            urls["live"] = settings.CTRADER_OPENAPI_LIVE_URL
        if chosen in ("demo", "both"):
            urls["demo"] = settings.CTRADER_OPENAPI_DEMO_URL
        asyncio.run(self._run(urls))

    async def _run(self, urls: dict[Environment, str]) -> None:
        gateway = Gateway(DjangoGatewayStore(), gateway_config(), urls)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gateway.stop)
        self.stdout.write(
            f"Open API gateway running: {', '.join(sorted(urls))}. Stop with SIGTERM or Ctrl-C."
        )
        await gateway.run()
        self.stdout.write("Open API gateway stopped.")
