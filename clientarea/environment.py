"""How the settings read the environment (typed values, required secrets, development defaults) and build entries.

Only ``clientarea/settings.py`` uses this module. Development (DEBUG=1) gets generated, persisted defaults for
every secret so a fresh clone runs with no configuration; with DEBUG off a missing secret stops start-up with
a message naming it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = BASE_DIR / ".local"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SANDBOX = env.bool("SANDBOX", default=False)

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def local_default(name: str, make: Callable[[], str]) -> str:
    """A development-only secret, generated once and kept in .local/ so restarts keep working."""
    LOCAL_DIR.mkdir(exist_ok=True)
    path = LOCAL_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def secret(
    name: str, *, dev_default: Callable[[], str] | None = None, sandbox_default: str | None = None
) -> str:
    """The variable's value; else the sandbox's fixed value (SANDBOX=1), else the development default (DEBUG=1)."""
    value = env.str(name, default="")
    if value:
        return value
    if SANDBOX and sandbox_default is not None:
        return sandbox_default
    if DEBUG and dev_default is not None:
        return dev_default()
    raise ImproperlyConfigured(
        f"The environment variable {name} is required when DEBUG is off (see .env.example)."
    )


def secret_key() -> str:
    return secret(
        "SECRET_KEY", dev_default=lambda: local_default("secret_key", lambda: secrets.token_urlsafe(50))
    )


def fernet_keys(name: str) -> list[str]:
    """Comma-separated Fernet keys, newest first. A bad key stops start-up, not the first request using it."""
    from cryptography.fernet import Fernet

    raw = secret(
        name,
        dev_default=lambda: local_default("token_encryption_keys", lambda: Fernet.generate_key().decode()),
    )
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    try:
        for key in keys:
            Fernet(key.encode())
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} holds a value that is not a Fernet key (32 url-safe base64-encoded bytes)."
        ) from None
    return keys


def peer_url(name: str, production: str, sandbox: str) -> str:
    """A peer's address: the variable, else the simulator's with SANDBOX=1, else Spotware's production one."""
    return env.str(name, default=sandbox if SANDBOX else production)


def color(name: str, default: str) -> str:
    value = env.str(name, default=default)
    if not _COLOR.match(value):
        raise ImproperlyConfigured(f"{name} must be a colour written as #rrggbb, not {value!r}.")
    return value


def every(task: str, seconds: float, *, expires: float | None = None) -> dict[str, object]:
    """A beat schedule entry; a run still queued when the next is due is dropped (``expires``), not run twice."""
    entry: dict[str, object] = {"task": task, "schedule": float(seconds)}
    if expires is not None:
        entry["options"] = {"expires": float(expires)}
    return entry
