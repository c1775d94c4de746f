"""A restarted sandbox remembers what its simulators issued: nothing a trader sees changes."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from sandbox.adapter import IssuedToken
from sandbox.control import Endpoint, Sandbox
from sandbox.world import Grant

LOOPBACK = Endpoint("127.0.0.1", 0)


def _sandbox(state_file: Path) -> Sandbox:
    box = Sandbox(
        http=LOOPBACK,
        live=LOOPBACK,
        demo=LOOPBACK,
        clientarea_url="http://127.0.0.1:9",
        ctrader_client_id="client",
        ctrader_client_secret="client-secret",
        adapter_bearer="bearer",
        tradingview_client_id="tv",
        tradingview_client_secret="tv-secret",
        state_file=str(state_file),
    )
    box.start()
    return box


def test_tokens_balances_and_adapter_tokens_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sandbox-state.json"
    first = _sandbox(path)
    try:
        issued = first.world.issue_tokens(Grant(user_id=7001001, account_ids=(40000101,), scope="accounts"))
        first.world.account(40000101).balance = 999_900
        with first.adapter.lock:
            first.adapter.tokens["tvsim_kept"] = IssuedToken(
                7001001, ["SANDBOX-EU"], [40000101], True, time.time() + 60
            )
    finally:
        first.stop()
    assert path.exists()
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    second = _sandbox(path)
    try:
        # The access token still opens the Open API side, and the refresh token still rotates, over HTTP.
        assert second.world.grant_for_access_token(str(issued["accessToken"])) is not None
        answer = requests.get(
            f"{second.url}/ctrader-id/apps/token",
            params={
                "grant_type": "refresh_token",
                "refresh_token": issued["refreshToken"],
                "client_id": "client",
                "client_secret": "client-secret",
            },
            timeout=5,
        ).json()
        assert answer["errorCode"] is None
        assert answer["accessToken"]
        # The rotation killed the restored access token, as it kills any of the cTID's.
        assert second.world.grant_for_access_token(str(issued["accessToken"])) is None
        assert second.world.account(40000101).balance == 999_900
        assert not second.adapter.is_revoked("tvsim_kept")
        assert "tvsim_kept" in second.adapter.active_tokens()
    finally:
        second.stop()


def test_without_a_state_file_the_sandbox_starts_fresh(tmp_path: Path) -> None:
    box = _sandbox(tmp_path / "missing" / "state.json")
    try:
        assert box.world.access_tokens == {}
    finally:
        box.stop()
    assert (tmp_path / "missing" / "state.json").exists()


def test_an_unreadable_state_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    box = _sandbox(path)
    try:
        assert box.world.refresh_tokens == {}
    finally:
        box.stop()
