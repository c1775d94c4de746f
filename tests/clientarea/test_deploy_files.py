"""The deployment files in deploy/ are usable as shipped."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def test_the_gunicorn_config_loads_and_binds_to_loopback() -> None:
    env = {**os.environ, "DEBUG": "1"}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--check-config",
            "-c",
            str(DEPLOY / "gunicorn.conf.py"),
            "clientarea.wsgi",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    namespace: dict[str, object] = {}
    exec(compile((DEPLOY / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    assert str(namespace["bind"]).startswith("127.0.0.1:")
    assert namespace["accesslog"] is None  # query strings carry one-time codes


def test_systemd_units_start_the_three_processes_from_the_release() -> None:
    expected = {
        "clientarea-web.service": "gunicorn -c deploy/gunicorn.conf.py clientarea.wsgi",
        "clientarea-worker.service": "celery -A clientarea worker",
        "clientarea-beat.service": "celery -A clientarea beat",
    }
    for name, command in expected.items():
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.read(DEPLOY / "systemd" / name)
        service = unit["Service"]
        assert command in service["ExecStart"], name
        assert service["EnvironmentFile"] == "/etc/clientarea/env"
        assert service["User"] == "clientarea"
        assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_nginx_example_terminates_tls_and_forwards_the_scheme() -> None:
    text = (DEPLOY / "nginx" / "clientarea.conf").read_text()
    assert "listen 443 ssl" in text
    assert "ssl_certificate " in text
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in text
    assert "return 301 https://" in text
    assert "$request_uri" not in text.split("log_format", 1)[1].split(";", 1)[0]  # no query strings logged


def test_the_operators_guide_is_linked_and_covers_the_essentials() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/operations.md" in readme
    guide = (ROOT / "docs" / "operations.md").read_text()
    for topic in (
        "TOKEN_ENCRYPTION_KEYS",
        "rotate_token_keys",
        "createsuperuser",
        "migrate",
        "roll back",
        "axes_reset_username",
        "two_factor_reset",
        "/readyz",
        "Scaling out",
        "Back up PostgreSQL",
    ):
        assert topic in guide, topic


def test_the_web_process_keeps_what_it_loaded_at_start_out_of_full_garbage_collections() -> None:
    # Django, the apps and the settings live as long as the process: a full collection walking them all took
    # tens of milliseconds of a request now and then; frozen, it walks only what requests created.
    probe = (
        "import gc\n"
        "before = gc.get_freeze_count()\n"
        "import clientarea.wsgi\n"
        "frozen = gc.get_freeze_count()\n"
        "print(before, frozen, len(gc.get_objects()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    before, frozen, tracked = (int(v) for v in result.stdout.split())
    assert before == 0
    assert frozen > 50_000
    assert tracked < frozen / 10
