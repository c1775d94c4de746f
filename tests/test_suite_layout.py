"""The test suite's own rules: the folders mirror the application, each fixture defined once, helpers imported
from helpers modules, one settings module, and no test that needs another to have run first.

A test lives in tests/<app>/ (and below, in the folder of the app's package it exercises); the browser journeys
live in tests/e2e/, and checks that span the whole project (catalogues, wording, imports) at the top.

A folder may specialise a shared fixture only through the knobs the root conftest offers for that purpose
(``trader_traits``, ``world_people``), never by redefining the fixture itself.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from django.apps import apps
from django.conf import settings

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# Top-level folders that are not an app: the browser journeys, and what the tests import.
NOT_APPS = {"e2e", "helpers"}
# Folders below an app's that are not a package of it: the security tests cross every app, and sit with the
# project's own package.
CROSS_CUTTING = {"clientarea/security"}
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


def _folders() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*") if p.is_dir() and p.name != "__pycache__")


def _project_apps() -> set[str]:
    """The Django apps of this project; sandbox is installed only with SANDBOX=1 (clientarea/settings.py)."""
    installed = {config.label for config in apps.get_app_configs() if Path(config.path).parent == ROOT}
    return installed | {"sandbox"}


def test_every_top_level_folder_is_an_app_of_the_project():
    top = {p.name for p in _folders() if p.parent == TESTS}
    assert top - NOT_APPS <= _project_apps(), sorted(top - NOT_APPS - _project_apps())
    assert {"accounts", "clientarea", "tradingview", "sandbox"} <= top


def test_every_folder_below_an_app_mirrors_a_package_of_it():
    strays = []
    for folder in _folders():
        relative = folder.relative_to(TESTS)
        if len(relative.parts) < 2 or relative.parts[0] in NOT_APPS or str(relative) in CROSS_CUTTING:
            continue
        if not (ROOT / relative / "__init__.py").exists():
            strays.append(str(relative))
    assert strays == []


def test_every_folder_is_a_package():
    """Tests import each other and their helpers as ``tests.…``."""
    assert [str(p.relative_to(TESTS)) for p in _folders() if not (p / "__init__.py").exists()] == []


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
