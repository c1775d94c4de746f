"""``manage.py run`` starts the whole tree on the ports it is given, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.helpers.ops import BASE_DIR


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _processes_with(marker: str) -> list[int]:
    """Every live process whose environment carries the marker: the whole tree, grandchildren included."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"RUN_TEST_MARKER={marker}".encode() in (entry / "environ").read_bytes():
                status = (entry / "status").read_text()
                if "\nState:\tZ" not in status:
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


class Tree:
    def __init__(self, env: dict[str, str], port: int) -> None:
        self.marker = env["RUN_TEST_MARKER"]
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "run", "--port", str(port), "--grace", "15"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, url: str, *, status: int = 200, timeout: float = 180) -> requests.Response:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"manage.py run exited early ({self.process.returncode}):\n{self.output()[-5000:]}"
                )
            try:
                response = requests.get(url, timeout=5)
                if response.status_code == status:
                    return response
                last = (response.status_code, response.text[:500])
            except requests.RequestException as exc:
                last = exc
            time.sleep(0.5)
        pytest.fail(f"{url} never answered {status} (last: {last}):\n{self.output()[-5000:]}")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)

    def kill_everything(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid in _processes_with(self.marker):
            os.kill(pid, signal.SIGKILL)


def _environment(tmp_path: Path, ports: list[int], **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "SITE_URL", "HEALTH_GATEWAY_EXPECTED")
    }
    env.update(
        {
            "DEBUG": "1",
            "SANDBOX": "1",
            "LOG_FORMAT": "json",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "SANDBOX_HTTP": f"http://127.0.0.1:{ports[1]}",
            "SANDBOX_WS_LIVE": f"ws://127.0.0.1:{ports[2]}",
            "SANDBOX_WS_DEMO": f"ws://127.0.0.1:{ports[3]}",
            "RUN_TEST_MARKER": uuid.uuid4().hex,
        }
    )
    env.update(extra)
    return env


def test_run_starts_everything_and_ctrl_c_stops_every_process(tmp_path):
    ports = _free_ports(4)
    tree = Tree(_environment(tmp_path, ports), ports[0])
    try:
        base = f"http://127.0.0.1:{ports[0]}"
        assert tree.wait_for(f"{base}/healthz").json() == {"status": "ok"}
        sandbox_page = tree.wait_for(f"http://127.0.0.1:{ports[1]}/")
        assert "Sandbox control" in sandbox_page.text
        assert base in sandbox_page.text  # it links back to this client area
        # Ready includes the gateway's heartbeat on both environments of the sandbox.
        ready = tree.wait_for(f"{base}/readyz").json()
        assert ready["checks"]["gateway"]["ok"] is True
        assert tree.wait_for(f"{base}/account/login/").status_code == 200

        deadline = time.monotonic() + 30
        while "Demo logins" not in tree.output() and time.monotonic() < deadline:
            time.sleep(0.2)
        output = tree.output()
        assert f"The client area is running: {base}/" in output
        assert "Trader: demo / demo-trader-2026" in output
        assert "Staff:  admin / admin-staff-2026" in output
        # The demo trader signs in on the embedded database and sees the dashboard and the account list.
        browser = requests.Session()
        sign_in = browser.get(f"{base}/account/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', sign_in.text).group(1)
        signed_in = browser.post(
            f"{base}/account/login/",
            data={"csrfmiddlewaretoken": token, "username": "demo", "password": "demo-trader-2026"},
            headers={"Referer": f"{base}/account/login/"},
            timeout=10,
        )
        assert signed_in.url == f"{base}/"
        for page in ("/", "/api/v1/accounts/?page_size=200", "/api/v1/me/", "/account/settings/"):
            assert browser.get(f"{base}{page}", timeout=10).status_code == 200, page
        started = [line for line in output.splitlines() if "| started " in line]
        assert {line.split("started ")[1].split()[0] for line in started} == {
            "web",
            "sandbox",
            "tasks",
            "gateway",
        }
        assert len(_processes_with(tree.marker)) >= 5  # the supervisor and its four parts

        assert tree.interrupt() == 0, tree.output()[-3000:]
        assert "Stopped." in tree.output()
        assert _processes_with(tree.marker) == []
    finally:
        tree.kill_everything()


@pytest.fixture
def run_database() -> Iterator[str]:
    """A PostgreSQL database of its own for ``manage.py run``, which migrates and seeds it and whose beat
    sweeps it: the shared database of the environment stays as it was."""
    import psycopg
    from django.db import connection

    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith("postgres"):
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL")
    name = f"test_run_{os.getpid()}"
    params = connection.get_connection_params()
    admin = {k: params[k] for k in ("host", "port", "user", "password") if params.get(k)}
    with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=10, **admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=10, **admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.celery
def test_with_postgresql_and_redis_it_runs_a_worker_and_exactly_one_beat(tmp_path, redis_url, run_database):
    ports = _free_ports(4)
    env = _environment(tmp_path, ports, DATABASE_URL=run_database, REDIS_URL=redis_url)
    tree = Tree(env, ports[0])
    try:
        base = f"http://127.0.0.1:{ports[0]}"
        ready = tree.wait_for(f"{base}/readyz").json()
        assert ready["checks"]["database"]["detail"] == "postgresql answers"
        assert ready["checks"]["celery"]["ok"] is True
        started = [
            line.split("started ")[1].split()[0]
            for line in tree.output().splitlines()
            if "| started " in line
        ]
        assert sorted(started) == ["beat", "gateway", "sandbox", "web", "worker"]
        assert tree.interrupt() == 0, tree.output()[-3000:]
        assert _processes_with(tree.marker) == []
    finally:
        tree.kill_everything()
