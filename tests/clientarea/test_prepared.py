"""Operators behind a pooler that cannot keep prepared statements turn them off with one variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Runs one statement through the preparing cursor, then counts the statements the session holds prepared.
PROBE = """
import django
django.setup()
from django.db import connection
from clientarea import prepared
with prepared.cursor() as cursor:
    cursor.execute("SELECT 1 WHERE %s = %s", [1, 1])
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql")
    print(prepared.enabled(), cursor.fetchone()[0])
"""


def _probe(**env: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "clientarea.settings", "LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.split()[-2] + " " + run.stdout.split()[-1]


@pytest.mark.skipif("postgres" not in os.environ.get("DATABASE_URL", ""), reason="needs PostgreSQL")
def test_prepared_statements_are_on_by_default_and_off_with_the_variable():
    assert _probe() == "True 1"
    assert _probe(DATABASE_PREPARED_STATEMENTS="0") == "False 0"
