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


def _library_line(formatter_kwargs: dict, record: logging.LogRecord) -> str:
    """The line python-json-logger itself makes of ``record``, scrubbed as ours are."""
    from pythonjsonlogger.json import JsonFormatter as LibraryFormatter

    from clientarea.logs import scrub

    return scrub(LibraryFormatter(**formatter_kwargs).format(record))


SETTINGS_FORMAT = {
    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
}


@pytest.mark.parametrize(
    "formatter_kwargs",
    [
        SETTINGS_FORMAT,
        {"fmt": "%(message)s"},
        {"fmt": "%(asctime)s %(levelname)s %(message)s", "datefmt": "%H:%M:%S"},
        {**SETTINGS_FORMAT, "rename_fields": {**SETTINGS_FORMAT["rename_fields"], "ctid_id": "ctid"}},
        {**SETTINGS_FORMAT, "static_fields": {"service": "clientarea"}},
        {**SETTINGS_FORMAT, "rename_fields": {"ctid_id": "ctid"}, "rename_fields_keep_missing": True},
        {**SETTINGS_FORMAT, "timestamp": True, "defaults": {"region": "eu"}},
    ],
)
def test_each_line_is_the_one_the_library_makes(formatter_kwargs):
    import datetime
    import sys

    records = []
    plain = _record("ctid token refreshed")
    plain.ctid_id, plain.version, plain.reason = 7, 3, "sweep"
    plain.request_id = "req-1"
    plain._private = "kept out"
    records.append(plain)
    args = _record("calling %s with %d accounts and " + BEARER, "the adapter", 3)
    args.at = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    records.append(args)
    records.append(logging.LogRecord("tests", logging.INFO, __file__, 1, {"event": "as a dict"}, (), None))
    try:
        raise ValueError(f"refused: client_secret={CLIENT_SECRET}")
    except ValueError:
        records.append(_record("failed", exc_info=sys.exc_info()))
    stacked = _record("where")
    stacked.stack_info = "Stack (most recent call last):\n  File x"
    records.append(stacked)
    for record in records:
        expected = _library_line(formatter_kwargs, record)
        assert JsonFormatter(**formatter_kwargs).format(record) == expected


def test_the_time_of_each_line_is_its_own_across_seconds():
    formatter = JsonFormatter(**SETTINGS_FORMAT)
    first, same_second, next_second = _record("a"), _record("b"), _record("c")
    first.created, first.msecs = 1_800_000_000.123, 123.0
    same_second.created, same_second.msecs = 1_800_000_000.987, 987.0
    next_second.created, next_second.msecs = 1_800_000_001.004, 4.0
    for record in (first, same_second, next_second, first):
        expected = logging.Formatter().formatTime(record)
        assert json.loads(formatter.format(record))["time"] == expected


def test_the_settings_formatter_builds_a_plain_line_itself_and_hands_the_rest_to_the_library(monkeypatch):
    import sys

    from pythonjsonlogger.json import JsonFormatter as LibraryFormatter

    built_by_library = []
    library_add_fields = LibraryFormatter.add_fields

    def counted(self, *args, **kwargs):
        built_by_library.append(self)
        return library_add_fields(self, *args, **kwargs)

    monkeypatch.setattr(LibraryFormatter, "add_fields", counted)
    formatter = JsonFormatter(**SETTINGS_FORMAT)
    plain = _record("ctid token refreshed")
    plain.ctid_id = 7
    assert json.loads(formatter.format(plain))["ctid_id"] == 7
    assert built_by_library == []
    try:
        raise ValueError("refused")
    except ValueError:
        formatter.format(_record("failed", exc_info=sys.exc_info()))
    assert built_by_library == [formatter]


def test_a_subclass_that_serialises_its_own_way_is_used_for_every_line():
    class Tagged(JsonFormatter):
        def jsonify_log_record(self, log_data):
            return "tagged " + super().jsonify_log_record(log_data)

    assert Tagged(**SETTINGS_FORMAT).format(_record("plain")).startswith("tagged {")
