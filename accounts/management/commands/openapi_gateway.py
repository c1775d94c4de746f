"""manage.py openapi_gateway: keep every linked trading account authorized on the cTrader Open API."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.ctrader.openapi.gateway import ApplicationRefused, Environment, Gateway, GatewayConfig
from accounts.services.gateway import DjangoGatewayStore, gateway_config


class Command(BaseCommand):
    help = (
        "Run an Open API gateway process until SIGTERM or SIGINT. Start it N times (on one or several "
        "machines): the processes divide the cTIDs among themselves through PostgreSQL leases."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--environment",
            choices=["live", "demo", "both"],
            default="both",
            help="Which connection(s) to hold (default: both).",
        )
        parser.add_argument(
            "--exit-on-refusal",
            action="store_true",
            help="Exit with status 3 when the Open API refuses the application, instead of retrying slowly "
            "(OPENAPI_EXIT_ON_REFUSAL=1 does the same).",
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
        config = gateway_config()
        if options["exit_on_refusal"]:
            config = replace(config, exit_on_refusal=True)
        try:
            asyncio.run(self._run(urls, config))
        except ApplicationRefused as exc:
            self.stderr.write(f"Open API gateway stopped: {exc}.")
            raise SystemExit(3) from None

    async def _run(self, urls: dict[Environment, str], config: GatewayConfig) -> None:
        host = socket.gethostname()
        name = f"{host}:{os.getpid()}:{secrets.token_hex(3)}"
        store = DjangoGatewayStore(name, host=host, pid=os.getpid())
        gateway = Gateway(store, config, urls, leases=store)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gateway.stop)
        self.stdout.write(
            f"Open API gateway running: {', '.join(sorted(urls))}. Stop with SIGTERM or Ctrl-C."
        )
        await gateway.run()
        self.stdout.write("Open API gateway stopped.")
