"""Headless Chromium for the browser journeys: Debian's system Chromium driven by Playwright."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def launch_chromium(playwright: Any) -> Any:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is needed for the browser journeys and was not found at {CHROMIUM}")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# Every Content-Security-Policy violation a page reports, passed to the console where the test collects it.
_CSP_SCRIPT = """
document.addEventListener('securitypolicyviolation', (e) => {
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') +
                ' on ' + e.documentURI + (e.sourceFile ? ' (' + e.sourceFile + ':' + e.lineNumber + ')' : ''));
});
"""


def record_csp_violations(context: Any) -> list[str]:
    """Collects, for every page of ``context``, each CSP violation the browser reports."""
    violations: list[str] = []

    def watch(page: Any) -> None:
        page.on(
            "console",
            lambda message: violations.append(message.text)
            if message.type == "error"
            and ("CSP violation" in message.text or "Content Security Policy" in message.text)
            else None,
        )

    context.add_init_script(_CSP_SCRIPT)
    context.on("page", watch)
    return violations
