"""Every trader-facing string is translated in every shipped language, and the catalogues match the code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [code for code, _name in settings.LANGUAGES if code != "en"]
SKIP = {
    ".venv",
    ".git",
    "staticfiles",
    "test-artifacts",
    ".local",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
}


def _statistics(po: Path) -> str:
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", os.devnull, str(po)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_at_least_two_languages_besides_english_are_shipped() -> None:
    assert len(SHIPPED) >= 2
    for code in SHIPPED:
        assert (ROOT / "locale" / code / "LC_MESSAGES" / "django.po").exists()


@pytest.mark.parametrize("code", SHIPPED)
def test_the_catalogue_has_no_untranslated_or_fuzzy_string(code: str) -> None:
    stats = _statistics(ROOT / "locale" / code / "LC_MESSAGES" / "django.po")
    assert "untranslated" not in stats, stats
    assert "fuzzy" not in stats, stats


def test_every_string_in_the_code_is_in_the_catalogues_and_translated(tmp_path: Path) -> None:
    """Extract the strings again from a copy of the code: a new string without a translation fails here."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT, copy, ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".mo")])
    env = {**os.environ, "DEBUG": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "makemessages",
            *[f"-l{c}" for c in SHIPPED],
            "--no-obsolete",
            "--no-location",
            "--ignore=sandbox",
            "--ignore=tests",
            "--ignore=bench",
        ],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for code in SHIPPED:
        stats = _statistics(copy / "locale" / code / "LC_MESSAGES" / "django.po")
        assert "untranslated" not in stats, f"{code}: {stats}"
        assert "fuzzy" not in stats, f"{code}: {stats}"


def test_a_string_without_translation_is_caught(tmp_path: Path) -> None:
    po = tmp_path / "django.po"
    po.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "Hello"\nmsgstr ""\n'
    )
    assert "1 untranslated" in _statistics(po)
