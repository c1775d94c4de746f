"""Refresh tasks on a real Celery worker over the real Redis, and the sweep that enqueues them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, NamedTuple

import pytest
from django.utils import timezone

from accounts import tasks
from accounts.models import Ctid, CtidToken
from accounts.services.tokens import ctid_tokens_due_batches
from tests.helpers.ctrader import connect_in_world, make_trader, stored, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery]


def expire_in(ctid: Ctid, days: float) -> None:
    CtidToken.objects.filter(ctid=ctid).update(expires_at=timezone.now() + timedelta(days=days))


def test_a_timeout_is_retried_by_the_worker_and_then_succeeds(world, ctrader_id, celery_worker, settings):
    settings.TOKEN_HTTP_READ_TIMEOUT = 0.5
    ctrader_id.hang_seconds = 1.0
    ctid, issued = connect_in_world(world, trader=make_trader())
    world.next_refresh_failure = "timeout"
    tasks.refresh_ctid_token.delay(ctid.pk)
    wait_for(lambda: stored(ctid).version == 2)
    token = stored(ctid)
    assert token.state == CtidToken.State.ACTIVE
    assert token.last_refresh_outcome == CtidToken.Outcome.OK
    assert world.token_calls == 2
    assert token.refresh_token in world.refresh_tokens
    assert issued["refreshToken"] in world.used_refresh_tokens


def test_rotate_then_drop_on_the_worker_keeps_old_values_until_the_recheck(world, ctrader_id, celery_worker):
    ctid, issued = connect_in_world(world, trader=make_trader())
    world.next_refresh_failure = "drop"
    tasks.refresh_ctid_token.delay(ctid.pk)
    wait_for(lambda: stored(ctid).state == CtidToken.State.NEEDS_RECONNECT)
    token = stored(ctid)
    # First attempt: rotated and dropped (ambiguous, retried); the retry was refused and re-checked.
    assert world.token_calls == 2
    assert (token.access_token, token.refresh_token, token.version) == (
        issued["accessToken"],
        issued["refreshToken"],
        1,
    )
    assert token.last_refresh_outcome == CtidToken.Outcome.REJECTED
    assert Ctid.objects.get(pk=ctid.pk).state == Ctid.State.NEEDS_RECONNECT


def test_the_sweep_enqueues_only_due_tokens_and_the_worker_refreshes_them(world, ctrader_id, celery_worker):
    world.add_ctid(9100003, "Carol", [])
    world.add_ctid(9100004, "Dave", [])
    due, _ = connect_in_world(world, trader=make_trader("a"), user_id=9100001)
    not_due, _ = connect_in_world(world, trader=make_trader("b"), user_id=9100002)
    leased, _ = connect_in_world(world, trader=make_trader("c"), user_id=9100003)
    dead, _ = connect_in_world(world, trader=make_trader("d"), user_id=9100004)
    for ctid in (due, leased, dead):
        expire_in(ctid, 2)
    CtidToken.objects.filter(ctid=leased).update(
        lease_owner="elsewhere", lease_until=timezone.now() + timedelta(seconds=60)
    )
    CtidToken.objects.filter(ctid=dead).update(state=CtidToken.State.NEEDS_RECONNECT)

    assert tasks.run_token_sweep() == 1
    wait_for(lambda: stored(due).version == 2)
    assert world.token_calls == 1
    assert [stored(c).version for c in (not_due, leased, dead)] == [1, 1, 1]
    # Run again (a beat run overlapping a slow worker): the refreshed token is no longer due.
    assert tasks.run_token_sweep() == 0


def test_a_refresh_task_that_runs_twice_refreshes_once(world, ctrader_id):
    ctid, _ = connect_in_world(world, trader=make_trader())
    expire_in(ctid, 1)
    first = tasks.refresh_ctid_token.apply(args=(ctid.pk,), kwargs={"only_if_due": True}).get()
    second = tasks.refresh_ctid_token.apply(args=(ctid.pk,), kwargs={"only_if_due": True}).get()
    assert (first, second) == ("ok", "not_due")
    assert world.token_calls == 1


def test_the_sweep_selection_costs_one_query_per_batch(
    world, ctrader_id, settings, django_assert_num_queries
):
    settings.TOKEN_SWEEP_BATCH_SIZE = 2
    trader = make_trader()
    for index in range(5):
        ctid = Ctid.objects.create(user_id=8000 + index, trader=trader)
        CtidToken.objects.create(ctid=ctid, access_token="a", refresh_token="r", expires_at=timezone.now())
    batches: list[list[int]] = []
    with django_assert_num_queries(3):
        assert tasks.run_token_sweep(enqueue=batches.append) == 5
    assert [len(b) for b in batches] == [2, 2, 1]
    settings.TOKEN_SWEEP_BATCH_SIZE = 100
    with django_assert_num_queries(1):
        assert sum(len(b) for b in ctid_tokens_due_batches()) == 5


def test_in_embedded_mode_a_transient_failure_waits_for_the_next_sweep(world, ctrader_id, settings):
    settings.TOKEN_HTTP_READ_TIMEOUT = 0.3
    ctrader_id.hang_seconds = 0.6
    ctid, issued = connect_in_world(world, trader=make_trader())
    expire_in(ctid, 1)
    world.next_refresh_failure = "timeout"
    assert tasks.run_token_sweep() == 1  # eager: the task ran inline and failed once, without a retry loop
    assert world.token_calls == 1
    token = stored(ctid)
    assert token.refresh_token == issued["refreshToken"]
    assert token.last_refresh_outcome == CtidToken.Outcome.TRANSIENT
    assert tasks.run_token_sweep() == 1
    assert stored(ctid).version == 2
    assert world.token_calls == 2


class FanOut(NamedTuple):
    task: Any
    queue: str
    broker: Any  # a Redis client on the tests' broker database

    def messages(self) -> list[dict]:
        """The messages on the queue, oldest first, as JSON."""
        return [json.loads(raw) for raw in reversed(self.broker.lrange(self.queue, 0, -1))]


@pytest.fixture
def fan_out(celery_worker, monkeypatch, request) -> Iterator[FanOut]:  # type: ignore[no-untyped-def]
    """The refresh task sent to a queue of its own that no worker reads, emptied before and after."""
    import redis

    from tests.helpers.ops import TEST_REDIS_URL

    queue = f"test-fan-out-{request.node.name}-{os.getpid()}"
    task = tasks.refresh_ctid_token
    monkeypatch.setattr(task, "queue", queue, raising=False)
    monkeypatch.setattr(task, "_exec_options", None)
    broker = redis.Redis.from_url(TEST_REDIS_URL)
    broker.delete(queue)
    try:
        yield FanOut(task, queue, broker)
    finally:
        broker.delete(queue)


def test_a_fan_out_declares_its_queue_once_not_for_every_message(fan_out, monkeypatch):
    # The queue is declared (or found declared) once per fan-out; every message after the first is only
    # published, without kombu's declaration bookkeeping.
    import kombu

    declared: list[str] = []
    original = kombu.Producer.maybe_declare

    def counted(self, entity, *args, **kwargs):
        declared.append(getattr(entity, "name", ""))
        return original(self, entity, *args, **kwargs)

    monkeypatch.setattr(kombu.Producer, "maybe_declare", counted)
    assert tasks._enqueue(fan_out.task, [list(range(1, 301)), list(range(301, 601))], reason="sweep") == 600
    assert fan_out.broker.llen(fan_out.queue) == 600
    assert declared == [fan_out.queue]


def test_a_worker_fans_a_batch_out_in_pipelined_round_trips(fan_out, monkeypatch):
    # One message per id (each refresh keeps its own time limit), sent over Redis hundreds at a time: the
    # messages are those a single send makes, in order, to the task's queue.
    import base64

    import redis

    sent: list[str] = []
    original = redis.client.Pipeline.execute

    def counted(self, *args, **kwargs):
        commands = {str(command[0][0]) for command in self.command_stack}
        sent.append(f"{'+'.join(sorted(commands))} x{len(self.command_stack)}")
        return original(self, *args, **kwargs)

    def single(self, *args, **options):
        sent.append(str(args[0]))
        return single.original(self, *args, **options)

    single.original = redis.Redis.execute_command
    monkeypatch.setattr(redis.client.Pipeline, "execute", counted)
    monkeypatch.setattr(redis.Redis, "execute_command", single)
    ids = list(range(1, 1201))
    assert tasks._enqueue(fan_out.task, [ids[:700], ids[700:]], only_if_due=True, reason="sweep") == 1200
    messages = fan_out.messages()
    # The queue's declaration once, then the messages 500 to a round trip; none sent on its own.
    assert [s for s in sent if "LPUSH" in s] == ["LPUSH x500", "LPUSH x500", "LPUSH x200"]
    assert len(messages) == 1200
    first = messages[0]
    assert first["headers"]["task"] == fan_out.task.name
    assert first["headers"]["argsrepr"] == "(1,)"
    assert first["headers"]["kwargsrepr"] == "{'only_if_due': True, 'reason': 'sweep'}"
    bodies = [json.loads(base64.b64decode(m["body"])) for m in messages]
    assert [body[0] for body in bodies] == [[i] for i in ids]
    assert all(body[1] == {"only_if_due": True, "reason": "sweep"} for body in bodies)


def _sent(fan_out: FanOut, send) -> list[dict]:  # type: ignore[no-untyped-def]
    """The messages ``send`` puts on the queue, oldest first, with what differs between any two sends (the
    task id and the ids derived from it) taken out; the queue is emptied again."""
    send()
    messages = fan_out.messages()
    fan_out.broker.delete(fan_out.queue)
    for message in messages:
        task_id = message["headers"].pop("id")
        if message["headers"]["root_id"] == task_id:  # sent outside a task: the message is its own root
            message["headers"]["root_id"] = "itself"
        message["properties"].pop("correlation_id")
        message["properties"].pop("delivery_tag")
    return messages


@pytest.mark.parametrize("in_a_worker_task", [False, True], ids=["from-the-sweep", "from-a-batch-task"])
def test_a_fan_out_sends_exactly_the_messages_single_sends_make(fan_out, in_a_worker_task):
    # Headers (time limits, argsrepr, origin, parent and root ids inside a task), properties, routing and
    # body: each fanned-out message is the one ``apply_async`` would have sent for that id.
    from celery._state import _task_stack

    task = fan_out.task
    parent = tasks.refresh_ctid_tokens
    if in_a_worker_task:
        parent.push_request(
            id="batch-task-id", root_id="sweep-task-id", called_directly=False, delivery_info={}
        )
        _task_stack.push(parent)
    try:
        kwargs = {"only_if_due": True, "reason": "sweep"}
        ids = [7, 8, 9]
        fanned = _sent(fan_out, lambda: tasks._enqueue(task, [ids[:2], ids[2:]], **kwargs))

        def one_by_one() -> None:
            for ctid_id in ids:
                task.apply_async(args=(ctid_id,), kwargs=kwargs)

        single = _sent(fan_out, one_by_one)
    finally:
        if in_a_worker_task:
            _task_stack.pop()
            parent.pop_request()
    assert len(fanned) == len(single) == 3
    assert fanned == single
    assert fanned[0]["headers"]["timelimit"] == [tasks.REFRESH_TIME_LIMIT, tasks.REFRESH_SOFT_TIME_LIMIT]
    if in_a_worker_task:
        assert fanned[0]["headers"]["parent_id"] == "batch-task-id"
        assert fanned[0]["headers"]["root_id"] == "sweep-task-id"


def test_a_fan_out_routes_and_resolves_its_options_once_not_for_every_message(fan_out, monkeypatch):
    # Routing, the task's execution options and the app's configuration are the same for every message of
    # a fan-out: they are worked out once, and each message costs only its own id and body.
    from clientarea.celery import app

    routed: list[str] = []
    router = app.amqp.router
    original = type(router).route

    def counted(self, options, name, *args, **kwargs):
        routed.append(name)
        return original(self, options, name, *args, **kwargs)

    monkeypatch.setattr(type(router), "route", counted)
    assert tasks._enqueue(fan_out.task, [list(range(1, 301)), list(range(301, 601))], reason="sweep") == 600
    assert fan_out.broker.llen(fan_out.queue) == 600
    assert routed == [fan_out.task.name]


def test_a_fan_out_with_a_wrong_argument_fails_before_sending_anything(fan_out):
    with pytest.raises(TypeError):
        tasks._enqueue(fan_out.task, [[1, 2, 3]], no_such_argument=True)
    assert fan_out.broker.llen(fan_out.queue) == 0
