"""What the browser journeys share: the sandbox's credentials and logins, and the record of the whole run."""

from __future__ import annotations

import logging

from sandbox.control import Sandbox

# The Open API application the sandbox accepts.
SANDBOX_APP_ID, SANDBOX_APP_SECRET = "sandbox-client", "sandbox-secret"
ADAPTER_BEARER = "sandbox-adapter-bearer"
TRADINGVIEW_CLIENT_ID, TRADINGVIEW_CLIENT_SECRET = "sandbox-tradingview", "sandbox-tradingview-secret"
DEMO_TRADER = ("demo", "demo-trader-2026")
STAFF = ("admin", "admin-staff-2026")
ALICE = 7001001  # the sandbox cTID with live and demo accounts


class JourneyLog(logging.Handler):
    """Keeps every record raw: what the code logged, before any safety-net scrubbing."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRIBUTES}
        exc = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        self.lines.append(f"{record.name} {record.levelname} {text} {extras!r} {exc}")


_STANDARD_ATTRIBUTES = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class Run:
    """What the whole e2e session saw: log lines and the secrets that were in play."""

    def __init__(self) -> None:
        self.log = JourneyLog()
        self.secrets: set[str] = {SANDBOX_APP_SECRET, ADAPTER_BEARER, TRADINGVIEW_CLIENT_SECRET}
        self.journeys = 0

    def collect(self, sandbox: Sandbox) -> None:
        world = sandbox.world
        with world.lock:
            self.secrets.update(world.access_tokens)
            self.secrets.update(world.refresh_tokens)
            self.secrets.update(world.used_refresh_tokens)
            self.secrets.update(code for code in world.codes)
        with sandbox.adapter.lock:
            self.secrets.update(sandbox.adapter.tokens)
        if sandbox.tradingview is not None:
            for link in sandbox.tradingview.links:
                self.secrets.update(t for t in (link.access_token, link.refresh_token) if t)


def leaked_secrets(run: Run) -> list[tuple[str, str]]:
    """Every (secret prefix, line) where a secret the run used appears in a captured log line."""
    secrets = {s for s in run.secrets if len(s) >= 8}
    return sorted(
        {
            (f"{secret[:4]}…", line.replace(secret, "<SECRET>")[:160])
            for line in run.log.lines
            for secret in secrets
            if secret in line
        }
    )
