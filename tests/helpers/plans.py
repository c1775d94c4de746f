"""The plan PostgreSQL keeps for a statement prepared once per connection (clientarea/prepared.py)."""

from __future__ import annotations

from django.db import connection


def generic_plan(statement: str) -> str:
    """The plan of ``statement`` (``%s`` placeholders) for any parameter values, as PostgreSQL keeps it for a
    prepared statement after its first runs: here, made on the test database's almost empty tables."""
    parts = statement.split("%s")
    numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE generic_plan_check AS {numbered}")
        try:
            cursor.execute(f"EXPLAIN EXECUTE generic_plan_check({', '.join(['NULL'] * (len(parts) - 1))})")
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE generic_plan_check")


def scans_of(plan: str, table: str) -> list[str]:
    """The plan's lines that read ``table``."""
    return [line.strip() for line in plan.splitlines() if "Scan" in line and f" on {table} " in line + " "]
