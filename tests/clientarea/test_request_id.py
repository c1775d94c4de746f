"""Every log line of a request carries its id; the response returns it; Celery tasks run under it."""

from __future__ import annotations

import json
import logging
import time

import pytest
from celery import Celery
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from clientarea import request_id
from clientarea.logs import JsonFormatter
from clientarea.request_id import RequestIdFilter, RequestIdMiddleware


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def captured():
    handler = Capture()
    logger = logging.getLogger("tests.clientarea")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _logging_view(request: HttpRequest) -> HttpResponse:
    logging.getLogger("tests.clientarea.view").info("inside the view")
    return HttpResponse("ok")


def test_a_request_gets_a_new_id_on_its_log_lines_and_response(captured):
    response = RequestIdMiddleware(_logging_view)(RequestFactory().get("/"))
    value = response["X-Request-ID"]
    assert len(value) == 32
    assert captured.lines[-1]["message"] == "inside the view"
    assert captured.lines[-1]["request_id"] == value
    assert request_id.get() == ""  # nothing leaks into the next request on this thread


def test_a_sane_incoming_id_is_kept_and_a_hostile_one_replaced(captured):
    middleware = RequestIdMiddleware(_logging_view)
    kept = middleware(RequestFactory().get("/", HTTP_X_REQUEST_ID="lb-7f3a9c01-42"))
    assert kept["X-Request-ID"] == "lb-7f3a9c01-42"
    assert captured.lines[-1]["request_id"] == "lb-7f3a9c01-42"

    hostile = 'x\n{"level": "CRITICAL"}' + "a" * 20
    replaced = middleware(RequestFactory().get("/", HTTP_X_REQUEST_ID=hostile))
    assert replaced["X-Request-ID"] != hostile
    assert captured.lines[-1]["request_id"] == replaced["X-Request-ID"]


def test_log_lines_outside_a_request_say_so(captured):
    logging.getLogger("tests.clientarea.idle").info("no request here")
    assert captured.lines[-1]["request_id"] == "-"


@pytest.mark.django_db
def test_the_full_stack_returns_the_id_header(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="probe-0001-abcdef")
    assert response["X-Request-ID"] == "probe-0001-abcdef"


def test_an_eager_task_runs_under_the_callers_id():
    from tests.clientarea.worker_tasks import probe

    token = request_id.bind("eager-caller-0001")
    try:
        assert probe.apply(args=["eager"]).get() == "eager-caller-0001"
    finally:
        request_id.unbind(token)
    assert request_id.get() == ""


def test_a_task_without_a_caller_gets_its_own_id():
    from tests.clientarea.worker_tasks import probe

    result = probe.apply(args=["scheduled"], task_id="beat-task-00000001")
    assert result.get() == "beat-task-00000001"


@pytest.mark.celery
def test_a_task_on_a_real_worker_logs_under_the_publishers_id(worker_process, redis_url):
    # The test process runs tasks eagerly (no REDIS_URL); publish through an app bound to the worker's broker.
    publisher = Celery("publisher", broker=redis_url, set_as_current=False)
    marker = f"m{time.monotonic_ns()}"
    token = request_id.bind("web-request-00042")
    try:
        publisher.send_task("tests.clientarea.probe", args=[marker])
    finally:
        request_id.unbind(token)

    deadline = time.monotonic() + 30
    line = None
    while line is None and time.monotonic() < deadline:
        for raw in list(worker_process.lines):
            if marker in raw and raw.startswith("{"):
                line = json.loads(raw)
        time.sleep(0.2)
    assert line is not None, worker_process.output()
    assert line["message"] == "probe ran"
    assert line["request_id"] == "web-request-00042"
