"""Functions and constants the tests import; fixtures live in the conftest files."""
