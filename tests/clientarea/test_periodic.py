"""The embedded mode's periodic loop applies the beat schedule in-process."""

from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command

import tests.clientarea.worker_tasks  # noqa: F401  (registers tests.clientarea.probe)
from clientarea.periodic import run_entry, run_forever, schedule_entries


@pytest.fixture(scope="module", autouse=True)
def _task_modules_imported():
    # The first import round reconfigures logging (Celery's Django fixup); do it before caplog is attached.
    schedule_entries({})


SCHEDULE = {"probe-every-minute": {"task": "tests.clientarea.probe", "schedule": 60.0, "args": ["periodic"]}}


def test_every_entry_is_due_at_start_and_not_again_before_its_interval():
    (entry,) = schedule_entries(SCHEDULE)
    assert entry.due()
    assert run_entry(entry)
    assert not entry.due()


def test_a_periodic_task_runs_under_a_request_id_of_its_own(caplog):
    (entry,) = schedule_entries(SCHEDULE)
    with caplog.at_level("INFO"):
        run_entry(entry)
    probe = next(r for r in caplog.records if r.getMessage() == "probe ran")
    assert probe.request_id.startswith("periodic-probe-every-minute-")


def test_an_unknown_task_in_the_schedule_is_refused():
    with pytest.raises(LookupError, match=r"not\.registered\.task"):
        schedule_entries({"typo": {"task": "not.registered.task", "schedule": 5.0}})


def test_a_failing_task_is_reported_and_the_loop_goes_on(caplog):
    schedule = {"fails": {"task": "tests.clientarea.probe", "schedule": 60.0, "args": []}}  # missing argument
    (entry,) = schedule_entries(schedule)
    assert run_entry(entry) is False
    assert any(r.getMessage() == "periodic task failed" for r in caplog.records)


def test_the_loop_stops_when_asked():
    stop = threading.Event()
    entries = schedule_entries(SCHEDULE)
    thread = threading.Thread(target=run_forever, kwargs={"entries": entries, "tick": 0.05, "stop": stop})
    thread.start()
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_run_periodic_refuses_to_run_next_to_a_broker(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/5"
    with pytest.raises(CommandError, match="Celery beat"):
        call_command("run_periodic", "--once")
