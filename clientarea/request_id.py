"""Request ids: one id per incoming request (or per task), on every log line it causes, across processes.

The id comes from the ``X-Request-ID`` header when a proxy set a sane one, otherwise it is made here. It lives
in a contextvar, so every log record written while handling the request carries it (``RequestIdFilter``); the
response returns it; and Celery tasks published while handling the request run under the same id, because it
travels in the task message headers.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
TASK_HEADER = "request_id"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# Incoming ids end up in every log line: accept only short, plain tokens, never arbitrary client text.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def get() -> str:
    return _current.get()


def new() -> str:
    return uuid.uuid4().hex


def bind(value: str) -> contextvars.Token[str]:
    return _current.set(value)


def unbind(token: contextvars.Token[str]) -> None:
    _current.reset(token)


def accept(incoming: str | None) -> str:
    """The id to use for a request that arrived with ``incoming`` in its header."""
    if incoming and _ACCEPTABLE.fullmatch(incoming):
        return incoming
    return new()


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        value = accept(request.headers.get(HEADER))
        request.request_id = value  # type: ignore[attr-defined]
        token = bind(value)
        try:
            response = self.get_response(request)
        finally:
            unbind(token)
        response[HEADER] = value
        return response


class RequestIdFilter(logging.Filter):
    """Puts ``request_id`` on every record ("-" outside a request or task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = get() or "-"
        return True


# --- Celery: the id rides in the message headers and is bound while the task runs. ---
_task_tokens: dict[str, contextvars.Token[str]] = {}


@before_task_publish.connect
def _publish_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    value = get()
    if value and headers is not None:
        headers[TASK_HEADER] = value


@task_prerun.connect
def _bind_task_request_id(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    carried = getattr(task.request, TASK_HEADER, None) if task is not None else None
    # Eager tasks run inside the caller's context and keep its id; a scheduled task gets its own.
    value = carried or get() or (task_id or new())
    if task_id:
        _task_tokens[task_id] = bind(value)


@task_postrun.connect
def _unbind_task_request_id(task_id: str | None = None, **_: Any) -> None:
    token = _task_tokens.pop(task_id or "", None)
    if token is not None:
        # A token made in another context (a pool thread that switched contexts) has nothing to restore.
        with contextlib.suppress(ValueError):
            unbind(token)
