"""The Open API gateway run in a thread of the test process, as the management command runs it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from accounts.ctrader.openapi.gateway import Gateway, GatewayConfig
from accounts.services.gateway import DjangoGatewayStore
from tests.helpers.ctrader import CLIENT_ID, CLIENT_SECRET


class GatewayRunner:
    """The gateway's asyncio loop in a thread, the way the management command runs it."""

    def __init__(self, urls: dict[str, str], config: GatewayConfig, store: Any = None) -> None:
        self.gateway = Gateway(store or DjangoGatewayStore(), config, urls)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.gateway.run())
        except BaseException as exc:
            self.error = exc
        finally:
            self.loop.close()

    def start(self) -> GatewayRunner:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.gateway.stop)
            self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the gateway did not stop"
        if self.error is not None:
            raise self.error

    def call(self, func: Callable[[], Any]) -> Any:
        """Read gateway state on its own loop."""

        async def read() -> Any:
            return func()

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(timeout=5)


def gateway_config_for_tests(**overrides: Any) -> GatewayConfig:
    config = GatewayConfig(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        request_timeout=5.0,
        heartbeat_interval=30.0,
        max_requests_per_second=200,
        reconnect_base=0.05,
        reconnect_max=1.0,
        account_retry_base=0.05,
        account_retry_max=1.0,
        db_poll_seconds=0.1,
        status_interval=0.05,
        reconnect_floor=0.05,
        reconnect_spread=0.1,
    )
    return replace(config, **overrides)
