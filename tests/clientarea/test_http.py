"""Peer clients are cached per thread, one way for all: reused within a thread, never shared across threads,
rebuilt when the settings they were built from change."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from accounts.services.tokens import oauth_client
from clientarea import http
from tradingview import adapter


def _in_another_thread(fn: Callable[[], Any]) -> Any:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()))
    thread.start()
    thread.join(timeout=10)
    return result[0]


def test_per_thread_builds_once_per_thread_and_key():
    built: list[object] = []

    def build() -> object:
        built.append(object())
        return built[-1]

    first = http.per_thread("test-object", key=1, build=build)
    assert http.per_thread("test-object", key=1, build=build) is first
    assert http.per_thread("other-name", key=1, build=build) is not first
    other_thread = _in_another_thread(lambda: http.per_thread("test-object", key=1, build=build))
    assert other_thread is not first
    assert http.per_thread("test-object", key=1, build=build) is first
    changed = http.per_thread("test-object", key=2, build=build)
    assert changed is not first
    assert len(built) == 4


def test_the_adapter_session_is_per_thread_and_follows_the_settings(settings):
    session = adapter._http()
    assert adapter._http() is session
    assert _in_another_thread(adapter._http) is not session
    settings.HTTP_CONNECT_TIMEOUT = settings.HTTP_CONNECT_TIMEOUT + 1
    assert adapter._http() is not session


def test_the_ctrader_id_client_is_per_thread_and_follows_the_settings(settings):
    client = oauth_client()
    assert oauth_client() is client
    assert _in_another_thread(oauth_client) is not client
    settings.CTRADER_CLIENT_ID = f"{settings.CTRADER_CLIENT_ID}-changed"
    assert oauth_client() is not client
