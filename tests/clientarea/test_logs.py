"""The log formatters blank out known secret values and credential query parameters, wherever they appear."""

from __future__ import annotations

import json
import logging

import pytest
import requests

from clientarea.logs import REDACTED, JsonFormatter, PlainFormatter, reset_known_secrets

CLIENT_SECRET = "client-secret-value-7Qx2"
BEARER = "adapter-bearer-value-9Zt4"


@pytest.fixture(autouse=True)
def known_secrets(settings):
    settings.CTRADER_CLIENT_SECRET = CLIENT_SECRET
    settings.TRADINGVIEW_ADAPTER_TOKEN = BEARER
    reset_known_secrets()
    yield
    reset_known_secrets()


def _record(message: str, *args: object, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("tests.clientarea", logging.ERROR, __file__, 1, message, args, exc_info)


def test_known_secret_values_are_blanked_in_message_and_arguments():
    line = JsonFormatter("%(message)s").format(_record("calling with %s and " + BEARER, CLIENT_SECRET))
    assert CLIENT_SECRET not in line
    assert BEARER not in line
    assert json.loads(line)["message"] == f"calling with {REDACTED} and {REDACTED}"


def test_credentials_in_query_strings_are_blanked():
    url = "https://openapi.example/apps/token?grant_type=refresh_token&refresh_token=rt-abc123&client_id=x"
    line = PlainFormatter("%(message)s").format(_record("GET %s", url))
    assert "rt-abc123" not in line
    assert "grant_type=refresh_token" in line
    assert "client_id=x" in line


def test_a_traceback_quoting_a_secret_url_is_blanked():
    try:
        requests.get(f"http://127.0.0.1:1/apps/token?client_secret={CLIENT_SECRET}&code=c0de-99", timeout=1)
    except requests.RequestException:
        import sys

        record = _record("token call failed", exc_info=sys.exc_info())
    line = JsonFormatter("%(message)s").format(record)
    assert "exc_info" in json.loads(line)
    assert CLIENT_SECRET not in line
    assert "c0de-99" not in line


def test_ordinary_words_are_left_alone():
    line = PlainFormatter("%(message)s").format(_record("errorCode=ACCESS_DENIED status_code=200 sandbox"))
    assert line == "errorCode=ACCESS_DENIED status_code=200 sandbox"


def test_url_encoded_credentials_are_blanked_in_either_case():
    for separator in ("%3D", "%3d"):
        message = f"form body: grant_type%3Drefresh_token&refresh_token{separator}rt-enc0ded"
        line = JsonFormatter("%(message)s").format(_record(message))
        assert "rt-enc0ded" not in line
        assert f"refresh_token{separator}{REDACTED}" in json.loads(line)["message"]


def test_json_lines_encode_extra_values_one_after_another():
    import datetime
    import decimal

    formatter = JsonFormatter("%(message)s")
    for i in range(2):
        record = _record("figures read")
        record.at = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
        record.amount = decimal.Decimal("1.50")
        record.ctid_id = i
        data = json.loads(formatter.format(record))
        assert data == {
            "message": "figures read",
            "at": "2026-01-02T03:04:05+00:00",
            "amount": "1.50",
            "ctid_id": i,
        }


def test_credentials_in_an_encoded_url_inside_a_url_are_blanked():
    message = "redirect to /next?back=%2Fapps%2Ftoken%3Frefresh_token%3Drt-nested%26client_secret%3dcs-nested"
    line = PlainFormatter("%(message)s").format(_record(message))
    assert "rt-nested" not in line
    assert "cs-nested" not in line
    assert line.startswith("redirect to /next?back=%2Fapps%2Ftoken%3Frefresh_token%3D")
