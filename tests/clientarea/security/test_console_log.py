"""The development console (runserver, DEBUG=1, plain log lines) blanks secrets like the JSON log does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import requests

from .peers import BASE_DIR

KNOWN_SECRET = "known-client-secret-0123456789abcdef"
QUERY_SECRETS = {
    "client_secret": "query-client-secret-5a1b2c3d4e",
    "refresh_token": "query-refresh-token-6f7a8b9c0d",
    "code": "query-auth-code-1e2f3a4b5c6d",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_secrets_are_absent_from_the_debug_console_output(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "DEBUG": "1",
        "SANDBOX": "0",
        "LOG_FORMAT": "plain",
        "CTRADER_CLIENT_SECRET": KNOWN_SECRET,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    out = tmp_path / "console.log"
    with out.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=BASE_DIR,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    requests.get(f"{base}/healthz", timeout=1)
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            # Request lines of 4xx answers are logged with their query strings.
            requests.get(f"{base}/no-such-page/", params={**QUERY_SECRETS, "x": KNOWN_SECRET}, timeout=5)
            requests.get(f"{base}/tradingview/oauth/authorize", params=QUERY_SECRETS, timeout=5)
        finally:
            server.terminate()
            server.wait(timeout=10)
    console = out.read_text()
    assert "/no-such-page/" in console, console[-2000:]
    for secret in (KNOWN_SECRET, *QUERY_SECRETS.values()):
        assert secret not in console, f"{secret} printed on the console"
    assert "[redacted]" in console
