"""Production start-up: every missing secret stops it by name, and the deploy checks pass."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "p" * 20 + "-production-like-secret-key-with-enough-entropy-0123456789",
    "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "CTRADER_CLIENT_ID": "1234_abcdef",
    "CTRADER_CLIENT_SECRET": "client-secret",
    "TRADINGVIEW_ADAPTER_URL": "http://adapter.internal:8080",
    "TRADINGVIEW_ADAPTER_TOKEN": "adapter-bearer",
    "ALLOWED_HOSTS": "clientarea.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused",
    "REDIS_URL": "redis://127.0.0.1:6379/14",
    "LOG_FORMAT": "plain",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A clean environment: nothing from the test run (DEBUG=1 in particular) leaks in.
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "missing",
    [
        "SECRET_KEY",
        "TOKEN_ENCRYPTION_KEYS",
        "CTRADER_CLIENT_ID",
        "CTRADER_CLIENT_SECRET",
        "TRADINGVIEW_ADAPTER_URL",
        "TRADINGVIEW_ADAPTER_TOKEN",
    ],
)
def test_production_refuses_to_start_without_a_secret(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"The environment variable {missing} is required" in result.stderr


def test_production_refuses_an_invalid_encryption_key():
    result = _manage("check", env={**PRODUCTION_ENV, "TOKEN_ENCRYPTION_KEYS": "not-a-fernet-key"})
    assert result.returncode != 0
    assert "TOKEN_ENCRYPTION_KEYS" in result.stderr


def test_deploy_checks_pass_with_a_production_environment():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_env_example_lists_every_setting_variable():
    import re

    settings_source = (ROOT / "clientarea" / "settings.py").read_text()
    used = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', settings_source))
    settings_source += (ROOT / "clientarea" / "environment.py").read_text()
    used |= set(
        re.findall(r'\b(?:secret|peer_url|fernet_keys|color)\(\s*"([A-Z][A-Z0-9_]+)"', settings_source)
    )
    assert {"SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "CTRADER_CLIENT_SECRET", "BRAND_PRIMARY_COLOR"} <= used
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used, "no variables found in settings.py"
    assert used - listed == set()
