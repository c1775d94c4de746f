"""Log formatters with a last line of defence against leaked secrets.

Code never passes a secret to a logger. These formatters still blank out, in the finished line, every secret
value the settings hold (client secret, adapter bearer, Django and encryption keys) and the values of query
parameters that carry OAuth credentials, so a third-party library that logs a full URL or an exception that
quotes one cannot put a credential in the logs.
"""

from __future__ import annotations

import json
import logging
import re
import time
from functools import lru_cache
from typing import Any

from pythonjsonlogger.core import LogData
from pythonjsonlogger.json import JsonEncoder
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

REDACTED = "[redacted]"
_SECRET_SETTINGS = (
    "SECRET_KEY",
    "CTRADER_CLIENT_SECRET",
    "TRADINGVIEW_ADAPTER_TOKEN",
    "TOKEN_ENCRYPTION_KEYS",
    "EMAIL_HOST_PASSWORD",
)
_SENSITIVE_PARAMETER = re.compile(
    # A name starts a word, or follows an encoded "?" or "&" (a URL quoted inside another URL's query).
    r"(?i)(?:\b|(?<=%3F)|(?<=%26))"
    r"(client_secret|refresh_token|access_token|accessToken|refreshToken|code|token|password)"
    # A value ends where a URL or a quoted string would; backslashes stay, or escapes in JSON lines would break.
    r"(=|%3D)([^&\s\"'<>\\]+)"
)
# Shorter values are too likely to match ordinary words ("sandbox" would blank half the logs).
_MIN_SECRET_LENGTH = 12


@lru_cache(maxsize=1)
def _known_secrets() -> tuple[str, ...]:
    from django.conf import settings

    values: list[str] = []
    for name in _SECRET_SETTINGS:
        value = getattr(settings, name, "")
        values.extend(value if isinstance(value, list | tuple) else [value])
    # Longest first, so a secret that contains another is blanked whole.
    return tuple(
        sorted(
            {v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )
    )


def scrub(text: str) -> str:
    try:
        secrets = _known_secrets()
    except Exception:  # settings not configured (a log line during start-up): the pattern still applies
        secrets = ()
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    # The pattern needs "=" or "%3D" (either case): most lines have neither, and the pattern's search over
    # a whole line costs more than formatting it.
    if "=" not in text and "%3" not in text:
        return text
    return _SENSITIVE_PARAMETER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def reset_known_secrets() -> None:
    """Forget the cached secret values (after settings change, e.g. in tests)."""
    _known_secrets.cache_clear()


class JsonFormatter(_JsonFormatter):
    """python-json-logger's formatter, scrubbed, with the common line built in one pass.

    A line with no exception, stack or dict message, from a formatter configured without defaults, static
    fields or a timestamp field (as the settings configure it), is built here: the format's fields, then the
    record's extra attributes, serialised as the library serialises it (by one shared encoder), exactly as the
    library builds it. Any other line, or a subclass that adds fields or processes the data, goes through the
    library.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # ``json.dumps`` with an encoder class builds a new encoder for every line; one instance serves all
        # (an encoder keeps no state between calls). Any other serialiser is used as configured.
        self._encoder: json.JSONEncoder | None = None
        if (
            self.json_serializer is json.dumps
            and self.json_encoder is JsonEncoder
            and self.json_default is None
        ):
            self._encoder = JsonEncoder(indent=self.json_indent, ensure_ascii=self.json_ensure_ascii)
        # The format's fields with their output names, renamed once.
        self._fields = tuple((name, self._get_rename(name)) for name in self._required_fields)
        self._asctime = "asctime" in self._required_fields
        self._one_pass = (
            not (self.defaults or self.static_fields or self.timestamp or self.rename_fields_keep_missing)
            and type(self).process_log_record is _JsonFormatter.process_log_record
            and type(self).add_fields is _JsonFormatter.add_fields
        )
        # The last whole second formatted by ``formatTime`` and its text: lines come many to a second.
        self._second: tuple[int, str] = (-1, "")

    def jsonify_log_record(self, log_data: LogData) -> str:
        if self._encoder is None:
            return super().jsonify_log_record(log_data)
        return self._encoder.encode(log_data)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt or self.default_msec_format is None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached, text = self._second
        if second != cached:
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, text)
        return self.default_msec_format % (text, record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        if (
            not self._one_pass
            or isinstance(record.msg, dict)
            or record.exc_info
            or record.exc_text
            or record.stack_info
        ):
            return scrub(super().format(record))
        record.message = record.getMessage()
        if self._asctime:
            record.asctime = self.formatTime(record, self.datefmt)
        values = record.__dict__
        data = {output: values.get(name) for name, output in self._fields}
        skip, rename = self._skip_fields, self.rename_fields
        for key, value in values.items():
            if key not in skip and not (isinstance(key, str) and key.startswith("_")):
                data[rename.get(key, key)] = value
        return scrub(self.serialize_log_record(data))


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))
