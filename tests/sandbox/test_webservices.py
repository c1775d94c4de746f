"""The sandbox's WebServices hosts, their failure switches on the control page, and its SMTP mailbox page."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest
import requests

from accounts.ctrader.webservices import WebServicesClient, WebServicesPermanent, md5_hex
from sandbox.control import SANDBOX_MANAGERS, Endpoint, Sandbox

LOOPBACK = Endpoint("127.0.0.1", 0)


@pytest.fixture
def box() -> Iterator[Sandbox]:
    sandbox = Sandbox(
        http=LOOPBACK, live=LOOPBACK, demo=LOOPBACK, clientarea_url="http://127.0.0.1:9",
        ctrader_client_id="c", ctrader_client_secret="s", adapter_bearer="b",
        tradingview_client_id="tv", tradingview_client_secret="tvs",
    )  # fmt: skip
    sandbox.start()
    yield sandbox
    sandbox.stop()


def client(box: Sandbox, environment: str) -> WebServicesClient:
    login, password = SANDBOX_MANAGERS[environment]
    return WebServicesClient(
        base_url=f"{box.url}/webservices/{environment}", manager_login=login, manager_password=password,
        session=requests.Session(), timeout=(2, 2),
    )  # fmt: skip


def test_the_control_page_arms_a_webservices_failure_and_shows_it(box: Sandbox) -> None:
    page = requests.get(f"{box.url}/", timeout=5).text
    assert "Broker WebServices" in page
    assert "/mail/" in page
    pressed = requests.post(
        f"{box.url}/control/webservices-fail",
        data={"environment": "demo", "call": "trader_create", "how": "TRADER_GROUP_NOT_FOUND"},
        allow_redirects=False,
        timeout=5,
    )
    assert pressed.status_code == 302
    assert box.webservices["demo"].armed() == {"trader_create": ["TRADER_GROUP_NOT_FOUND"]}
    assert "TRADER_GROUP_NOT_FOUND" in requests.get(f"{box.url}/", timeout=5).text
    with pytest.raises(WebServicesPermanent) as refused:
        client(box, "demo").trader_create(
            password_hash=md5_hex("x1234567"), broker_name="SANDBOX-EU", group_name="SANDBOX-TV",
            deposit_currency="EUR", leverage_in_cents=10000,
        )  # fmt: skip
    assert refused.value.error_code == "TRADER_GROUP_NOT_FOUND"
    requests.post(f"{box.url}/control/reset", timeout=5)
    assert box.webservices["demo"].armed() == {}


def test_an_account_created_on_either_host_links_to_a_world_ctid(box: Sandbox) -> None:
    live, demo = client(box, "live"), client(box, "demo")
    ctid = live.ctid_create(email="sandbox@example.com", broker_name="SANDBOX-EU")
    trader = demo.trader_create(
        password_hash=md5_hex("x1234567"), broker_name="SANDBOX-EU", group_name="SANDBOX-TV",
        deposit_currency="EUR", leverage_in_cents=10000, balance=500_000,
    )  # fmt: skip
    linked = live.ctid_link(
        trader_login=trader.login, password_hash=md5_hex("x1234567"), user_id=ctid.user_id,
        broker_name="SANDBOX-EU", environment="demo",
    )  # fmt: skip
    account = box.world.account(linked.ctid_trader_account_id)
    assert account is not None
    assert not account.is_live
    assert account.balance == 500_000
    assert (
        str(trader.login) in requests.get(f"{box.url}/", timeout=5).text
    )  # listed with the world's accounts


def test_mail_sent_to_the_sandbox_smtp_server_is_listed(box: Sandbox) -> None:
    with smtplib.SMTP(box.mailbox.host, box.mailbox.port, timeout=5) as smtp:
        smtp.sendmail(
            "ca@example.com", ["t@example.com"], b"Subject: Ready\r\n\r\nLogin 123 http://x.example/y"
        )
    page = requests.get(f"{box.url}/mail/", timeout=5).text
    assert "Ready" in page
    assert "t@example.com" in page
    assert 'href="http://x.example/y"' in page
    assert (
        requests.get(f"{box.url}/mail/1", timeout=5).text.startswith("Subject: Ready")
        or "Ready" in requests.get(f"{box.url}/mail/1", timeout=5).text
    )
