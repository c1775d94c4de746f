"""Embedded mode (no broker: tasks run in-process) is decided in one place, and every caller follows it."""

from __future__ import annotations

import pytest

from accounts import tasks as account_tasks
from accounts.services.ctids import _sync_later
from clientarea.celery import app, embedded_mode
from tradingview import tasks as tradingview_tasks


@pytest.fixture(params=[True, False], ids=["embedded", "broker"])
def eager(request, monkeypatch):
    # Set on the app's own changes, under both spellings, and put back exactly as found (other tests read the
    # value through the Django settings, which the app's changes override). The app reads its configuration
    # first, should this be the process's first test: read later, it would replace the values set here.
    app.conf.task_always_eager  # noqa: B018
    for key in ("CELERY_TASK_ALWAYS_EAGER", "task_always_eager"):
        monkeypatch.setitem(app.conf.changes, key, request.param)
    assert app.conf.task_always_eager is request.param
    return request.param


def test_embedded_mode_is_the_apps_eager_setting(eager):
    assert embedded_mode() is eager


def test_a_delayed_logout_waits_for_the_sweep_only_in_embedded_mode(
    eager, db, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tradingview_tasks.schedule_logout(grant_id=1, countdown=30)
    assert len(callbacks) == (0 if eager else 1)


def test_a_failed_first_sync_is_queued_only_with_a_broker(eager, monkeypatch):
    sent = []
    monkeypatch.setattr(account_tasks.sync_ctid_accounts, "apply_async", lambda *a, **kw: sent.append(a))
    _sync_later(7)
    assert sent == ([] if eager else [((7,),)])


def test_the_sweep_runs_in_process_in_embedded_mode_and_sends_otherwise(eager, monkeypatch):
    ran, sent = [], []
    task = account_tasks.sync_ctid_accounts
    monkeypatch.setattr(task, "apply", lambda args, kwargs: ran.append(args))
    # The message each id would be sent as (args, kwargs, embed: its body), kept instead of published.
    monkeypatch.setattr(
        app.amqp, "send_task_message", lambda producer, name, message, **options: sent.append(message.body[0])
    )
    monkeypatch.setattr(app, "producer_or_acquire", lambda: _NullProducer())
    assert account_tasks._enqueue(task, [[1, 2], [3]]) == 3
    assert (ran, sent) == (([(1,), (2,), (3,)], []) if eager else ([], [(1,), (2,), (3,)]))


class _NullProducer:
    def __init__(self) -> None:
        self.connection = self

    def __enter__(self) -> _NullProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def batch(self, max_size: int) -> _NullProducer:
        return self

    def _reraise_as_library_errors(self) -> _NullProducer:
        return self


_WRITER = """
import os, sys
sys.path.insert(0, os.getcwd())
os.environ["DJANGO_SETTINGS_MODULE"] = "clientarea.settings"
import django
django.setup()
from django.db import connection, transaction
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE IF NOT EXISTS counted (n integer)")
for _ in range(300):
    with transaction.atomic():  # a read, then a write: as a view or a task does
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM counted")
            cursor.execute("INSERT INTO counted VALUES (%s)", [cursor.fetchone()[0]])
print("done")
"""


def test_the_embedded_database_takes_writes_from_several_processes_at_once(tmp_path):
    """make run's web, sandbox, worker and gateway processes share the SQLite file: none may fail with
    "database is locked" because another writes at the same moment."""
    import os
    import subprocess
    import sys

    from tests.helpers.ops import BASE_DIR

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.sqlite3'}", "DEBUG": "1"}
    env.pop("REDIS_URL", None)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [writer.communicate(timeout=120) for writer in writers]
    for writer, (out, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0, err[-2000:]
        assert out.strip().endswith("done")
