"""manage.py openapi_gateway as a real process: it serves, reports, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import GatewayStatus
from sandbox.openapi_server import OpenApiSimulator
from sandbox.world import World
from tests.helpers.ctrader import CLIENT_ID, CLIENT_SECRET, link_ctid

BASE_DIR = Path(__file__).resolve().parents[4]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_command_authorizes_accounts_and_stops_cleanly_on_signal(
    world: World, live_sim: OpenApiSimulator, stop_signal: signal.Signals
) -> None:
    _, tokens = link_ctid(world, 9100001)
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DEBUG": "1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TOKEN_ENCRYPTION_KEYS": ",".join(settings.TOKEN_ENCRYPTION_KEYS),
        "CTRADER_CLIENT_ID": CLIENT_ID,
        "CTRADER_CLIENT_SECRET": CLIENT_SECRET,
        "CTRADER_OPENAPI_LIVE_URL": live_sim.url,
        "OPENAPI_DB_POLL_SECONDS": "0.2",
    }
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "openapi_gateway", "--environment", "live"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        live_sim.wait_until(lambda: live_sim.authorized_accounts() == {61000001, 61000003}, timeout=30)
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, err
    assert "Open API gateway stopped." in out
    assert GatewayStatus.objects.get(environment="live").state == GatewayStatus.State.STOPPED
    # Structured logs, and no secret in them.
    assert '"logger": "accounts.ctrader.openapi' in err
    assert str(tokens["accessToken"]) not in err
    assert CLIENT_SECRET not in err
