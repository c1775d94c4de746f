"""The CPU time the thread serving a request used for it, in the ``X-Bench-CPU-Us`` response header."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


def thread_cpu(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        started = time.thread_time_ns()
        response = get_response(request)
        response["X-Bench-CPU-Us"] = str((time.thread_time_ns() - started) // 1000)
        return response

    return middleware
