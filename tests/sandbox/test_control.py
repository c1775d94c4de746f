"""The sandbox control page: every button changes what the simulators do, and no token reaches the page."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from sandbox.control import Endpoint, Sandbox
from sandbox.world import Grant

LOOPBACK = Endpoint("127.0.0.1", 0)
BEARER = "control-test-bearer"


@pytest.fixture
def box() -> Iterator[Sandbox]:
    sandbox = Sandbox(
        http=LOOPBACK,
        live=LOOPBACK,
        demo=LOOPBACK,
        clientarea_url="http://127.0.0.1:9",
        ctrader_client_id="control-client",
        ctrader_client_secret="control-secret",
        adapter_bearer=BEARER,
        tradingview_client_id="tv",
        tradingview_client_secret="tv-secret",
    )
    sandbox.start()
    yield sandbox
    sandbox.stop()


def _press(box: Sandbox, control: str, **form: str) -> requests.Response:
    return requests.post(f"{box.url}/control/{control}", data=form, allow_redirects=False, timeout=10)


def _generate_token(box: Sandbox) -> dict:
    body = {
        "userId": 7001001,
        "brokerNames": ["SANDBOX-EU"],
        "ctidTraderAccountIds": [40000101],
        "isVerified": True,
    }
    response = requests.post(
        f"{box.url}/adapter/generate/token",
        json=body,
        headers={"Authorization": f"Bearer {BEARER}"},
        timeout=10,
    )
    return response.json()


def test_the_page_explains_the_simulators_and_lists_the_accounts(box):
    page = requests.get(f"{box.url}/", timeout=10)
    assert page.status_code == 200
    for text in ("What is simulated", "/tradingview-sim/", "http://127.0.0.1:9/", "5100101", "12,500.50 EUR"):
        assert text in page.text
    assert box.openapi["live"].url in page.text


def test_refresh_failure_buttons_arm_the_token_endpoint(box):
    for how in ("error", "timeout", "drop"):
        response = _press(box, "refresh-failure", how=how)
        assert response.status_code == 302
        assert box.world.next_refresh_failure == how
    assert "drops the connection" in requests.get(f"{box.url}/", timeout=10).text
    _press(box, "reset")
    assert box.world.next_refresh_failure == ""


def test_the_adapter_error_fires_on_the_next_call_only(box):
    _press(box, "adapter-error")
    assert _generate_token(box) == {"s": "error", "errmsg": "Simulated adapter error."}
    assert _generate_token(box)["s"] == "ok"
    page = requests.get(f"{box.url}/", timeout=10).text
    assert "POST /adapter/generate/token" in page
    assert "200 s:error" in page


def test_a_page_on_another_origin_cannot_press_the_buttons(box):
    response = requests.post(
        f"{box.url}/control/adapter-error", headers={"Origin": "https://evil.example"}, timeout=10
    )
    assert response.status_code == 403
    assert box.adapter.mode == ""


@pytest.mark.parametrize(
    ("event", "payload_type", "name"),
    [
        ("account_disconnect", 2164, "ProtoOAAccountDisconnectEvent"),
        ("tokens_invalidated", 2147, "ProtoOAAccountsTokenInvalidatedEvent"),
        ("client_disconnect", 2148, "ProtoOAClientDisconnectEvent"),
    ],
)
def test_an_event_button_pushes_the_event_to_a_connected_client(box, event, payload_type, name):
    tokens = box.world.issue_tokens(Grant(7001001, (40000102,), "accounts"))
    with connect(box.openapi["demo"].url) as ws:
        ws.send(
            json.dumps(
                {
                    "payloadType": 2100,
                    "payload": {"clientId": "control-client", "clientSecret": "control-secret"},
                }
            )
        )
        assert json.loads(ws.recv(timeout=5))["payloadType"] == 2101
        ws.send(
            json.dumps(
                {
                    "payloadType": 2102,
                    "payload": {"ctidTraderAccountId": 40000102, "accessToken": tokens["accessToken"]},
                }
            )
        )
        assert json.loads(ws.recv(timeout=5))["payloadType"] == 2103

        assert _press(box, "event", event=event, account="40000102").status_code == 302
        received = json.loads(ws.recv(timeout=5))
        assert received["payloadType"] == payload_type

    page = requests.get(f"{box.url}/", timeout=10).text
    assert name in page
    assert "ACCOUNT_AUTH_REQ" in page
    # The activity shows what happened, never the token that authorized it.
    assert tokens["accessToken"] not in page


def test_dropping_the_socket_cuts_the_connection(box):
    with connect(box.openapi["live"].url) as ws:
        ws.send(
            json.dumps(
                {
                    "payloadType": 2100,
                    "payload": {"clientId": "control-client", "clientSecret": "control-secret"},
                }
            )
        )
        assert json.loads(ws.recv(timeout=5))["payloadType"] == 2101
        _press(box, "drop", environment="live")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert "ConnectionClosed" in type(closed.value).__name__


def test_an_unknown_account_is_reported_not_crashed(box):
    response = _press(box, "event", event="account_disconnect", account="999")
    assert response.status_code == 302
    assert "Not done: no account 999" in requests.get(f"{box.url}/", timeout=10).text
