"""Functions and constants the tests import, and in fixtures_*.py the fixtures the root conftest loads for
every folder; a folder's own fixtures live in its conftest."""
