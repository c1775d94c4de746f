"""The test suite's own rules: each fixture defined once, helpers imported from helpers modules, one settings
module, and no test that needs another to have run first.

A folder may specialise a shared fixture only through the knobs the root conftest offers for that purpose
(``trader_traits``, ``world_people``), never by redefining the fixture itself.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from django.conf import settings

TESTS = Path(__file__).resolve().parent
# Fixtures the root conftest reads so that a folder can choose what the shared fixture builds.
KNOBS = {"trader_traits", "world_people"}


def _fixtures(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and any(
            "fixture" in ast.unparse(decorator) for decorator in node.decorator_list
        ):
            names.add(node.name)
    return names


def _fixture_modules() -> list[Path]:
    """The conftests and the fixture plugins the root conftest loads for every folder."""
    return sorted(TESTS.rglob("conftest.py")) + sorted((TESTS / "helpers").glob("fixtures_*.py"))


def test_every_fixture_is_defined_in_one_conftest():
    where: dict[str, list[str]] = defaultdict(list)
    for module in _fixture_modules():
        for name in _fixtures(module) - KNOBS:
            where[name].append(str(module.relative_to(TESTS)))
    twice = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert twice == {}


def test_the_root_conftest_loads_every_fixture_plugin():
    from tests import conftest

    plugins = {f"tests.helpers.{path.stem}" for path in (TESTS / "helpers").glob("fixtures_*.py")}
    assert sorted(conftest.pytest_plugins) == sorted(plugins)


def test_the_shared_fixtures_live_in_the_root_conftest():
    assert {"trader", "world", "make_world", "ctrader_id"} <= _fixtures(TESTS / "conftest.py")


def test_no_module_imports_from_a_conftest():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "conftest":
                offenders.append(str(path.relative_to(TESTS)))
    assert offenders == []


def test_no_constant_is_defined_twice_under_the_same_name():
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(TESTS.rglob("conftest.py")) + sorted((TESTS / "helpers").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name) and name.id.isupper():
                            where[name.id].append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}


def test_no_test_module_is_named_to_run_last():
    assert [p.name for p in TESTS.rglob("test_z*.py")] == []


def test_the_whole_suite_uses_the_test_settings():
    assert settings.SETTINGS_MODULE == "clientarea.settings_test"
    assert settings.PASSWORD_HASHERS == ["django.contrib.auth.hashers.MD5PasswordHasher"]
