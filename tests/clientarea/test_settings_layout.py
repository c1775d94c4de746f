"""The settings read top to bottom: every setting is given its value once, where it is defined.

A setting defined in one place and patched further down (an ``append`` to ``INSTALLED_APPS``, an ``insert``
into ``MIDDLEWARE``, ``LOGGING[...] = ...``, ``CELERY_BEAT_SCHEDULE.update(...)``) means that reading its
definition no longer tells the truth; these tests fail on any such statement in clientarea/settings.py.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

SETTINGS = Path(__file__).resolve().parents[2] / "clientarea" / "settings.py"


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """Module-level statements, including those inside module-level ``if`` and ``try`` blocks."""
    statements: list[ast.stmt] = []
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        statements.append(node)
        if isinstance(node, ast.If | ast.Try):
            pending.extend(node.body + node.orelse + getattr(node, "finalbody", []))
    return statements


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


@pytest.fixture(scope="module")
def statements() -> list[ast.stmt]:
    return _top_level(ast.parse(SETTINGS.read_text()))


def test_each_setting_is_assigned_once(statements):
    assigned: Counter[str] = Counter()
    for node in statements:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name) and name.id.isupper():
                    assigned[name.id] += 1
    assert {name: count for name, count in assigned.items() if count > 1} == {}


def test_no_setting_is_patched_after_its_definition(statements):
    patched = []
    for node in statements:
        if isinstance(node, ast.AugAssign):
            patched.append(ast.unparse(node))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if not isinstance(target, ast.Name) and (_root_name(target) or "").isupper():
                    patched.append(ast.unparse(node))
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and (_root_name(node.value) or "").isupper()
        ):
            patched.append(ast.unparse(node))
    assert patched == []


def test_the_layout_rules_catch_a_patch():
    """The checks above see the statements they forbid (so their passing means something)."""
    patches = (
        'INSTALLED_APPS = ["a"]\nINSTALLED_APPS.append("b")',
        'MIDDLEWARE = ["a"]\nif True:\n    MIDDLEWARE.insert(0, "b")',
        'LOGGING = {}\nLOGGING["filters"] = {}',
        "CELERY_BEAT_SCHEDULE = {}\nCELERY_BEAT_SCHEDULE.update({})",
        'INSTALLED_APPS = ["a"]\nINSTALLED_APPS += ["b"]',
    )
    for source in patches:
        found = _top_level(ast.parse(source))
        with pytest.raises(AssertionError):
            test_no_setting_is_patched_after_its_definition(found)
    with pytest.raises(AssertionError):
        test_each_setting_is_assigned_once(_top_level(ast.parse("EMAIL_TIMEOUT = 1\nEMAIL_TIMEOUT = 2.0")))
