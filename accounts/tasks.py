"""Celery tasks: thin, take ids, safe to run twice, retry only transient failures (backoff, jitter, cap).

Exactly one beat runs the periodic tasks (``CELERY_BEAT_SCHEDULE`` in settings). Without Redis (embedded
mode) tasks run eagerly and the run command's loop calls ``run_token_sweep`` and ``run_account_sync``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from celery import Task, shared_task
from celery.utils.saferepr import saferepr
from django.conf import settings
from kombu.utils.uuid import uuid

from accounts.ctrader.backoff import backoff_delay
from accounts.models import Ctid, CtidToken
from accounts.selectors import ctid_tokens_lost_refreshes, keyset_batches
from accounts.services.sync import SyncNeedsReconnect, SyncTransient, ctid_sync_accounts
from accounts.services.tokens import (
    TokenRefreshTransient,
    ctid_token_follow_up,
    ctid_token_refresh,
    ctid_tokens_due_batches,
)
from clientarea.celery import embedded_mode

logger = logging.getLogger(__name__)

# Below the refresh lease (TOKEN_REFRESH_LEASE_SECONDS, 120 s by default): a task killed by its time limit
# never outlives the lease it holds.
REFRESH_SOFT_TIME_LIMIT = 75
REFRESH_TIME_LIMIT = 90
# Messages sent per Redis round trip when a worker fans a batch of ids out into one task each.
ENQUEUE_PIPELINE_SIZE = 500


def retry_countdown(retries: int) -> float:
    """Exponential backoff with equal jitter, capped."""
    return backoff_delay(retries, base=settings.TASK_RETRY_BASE_SECONDS, cap=settings.TASK_RETRY_CAP_SECONDS)


def _retry(task: Task, exc: Exception) -> Exception:
    if task.request.is_eager:
        # Embedded mode has no broker to hold a delayed retry (an eager retry would run at once, in a loop);
        # the next sweep or periodic sync tries again.
        logger.warning(
            "task failed, left to the next periodic run", extra={"task": task.name, "error": str(exc)}
        )
        return exc
    return task.retry(
        exc=exc, countdown=retry_countdown(task.request.retries), max_retries=settings.TASK_MAX_RETRIES
    )


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=REFRESH_SOFT_TIME_LIMIT,
    time_limit=REFRESH_TIME_LIMIT,
)
def refresh_ctid_token(self: Task, ctid_id: int, only_if_due: bool = False, reason: str = "task") -> str:
    try:
        result = ctid_token_refresh(ctid_id=ctid_id, reason=reason, only_if_due=only_if_due)
    except CtidToken.DoesNotExist:
        return "missing"
    except TokenRefreshTransient as exc:
        if exc.ambiguous:
            # The answer was lost: the service queued the follow-up (or the periodic one will find it). A
            # plain retry would repeat the same request instead of checking the chain.
            return "lost_answer_followed_up"
        raise _retry(self, exc) from None
    return result.outcome.value


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=REFRESH_SOFT_TIME_LIMIT,
    time_limit=REFRESH_TIME_LIMIT,
)
def follow_up_ctid_token_refresh(self: Task, ctid_id: int, seen_version: int) -> str:
    """After a lost refresh answer: find the chain alive, or mark the cTID needs_reconnect."""
    try:
        result = ctid_token_follow_up(ctid_id=ctid_id, seen_version=seen_version)
    except CtidToken.DoesNotExist:
        return "missing"
    except TokenRefreshTransient as exc:
        raise _retry(self, exc) from None
    return result.outcome.value


def _run_or_queue(task: Task, *args: object) -> None:
    """Inline in the embedded mode (nothing would hold the message), queued otherwise."""
    if embedded_mode():
        task.apply(args=args)
    else:
        task.apply_async(args=args)


def _run_or_queue_each(task: Task, calls: Sequence[Sequence[object]]) -> int:
    """``_run_or_queue`` once per argument list; returns how many."""
    for args in calls:
        _run_or_queue(task, *args)
    return len(calls)


def run_lost_refresh_follow_ups() -> int:
    """Follow up every lost refresh answer not followed up yet; returns how many were started.

    The embedded mode runs them inline; with a broker they are queued (this is the safety net for a
    follow-up message that never arrived).
    """
    lost = ctid_tokens_lost_refreshes(older_than_seconds=settings.TOKEN_REFRESH_FOLLOW_UP_SECONDS)
    count = _run_or_queue_each(follow_up_ctid_token_refresh, lost)
    if count:
        logger.info("lost token refresh answers followed up", extra={"count": count})
    return count


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def follow_up_lost_refreshes() -> int:
    return run_lost_refresh_follow_ups()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=120, time_limit=150)
def identify_pending_ctid_consent(self: Task, pending_id: int) -> str:
    """Place the pair of a consent whose cTID could not be identified during the callback."""
    from accounts.services.ctids import ctid_pending_consent_identify

    try:
        return ctid_pending_consent_identify(pending_id=pending_id).outcome
    except SyncTransient as exc:
        raise _retry(self, exc) from None


def run_pending_consent_identification() -> int:
    """Identify every kept consent (inline in the embedded mode, queued otherwise); returns how many."""
    from accounts.services.ctids import ctid_pending_consent_ids

    return _run_or_queue_each(identify_pending_ctid_consent, [(i,) for i in ctid_pending_consent_ids()])


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def identify_pending_ctid_consents() -> int:
    return run_pending_consent_identification()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=120, time_limit=150)
def sync_ctid_accounts(self: Task, ctid_id: int) -> str:
    try:
        result = ctid_sync_accounts(ctid_id=ctid_id)
    except (Ctid.DoesNotExist, CtidToken.DoesNotExist):
        return "missing"
    except SyncNeedsReconnect:
        return "needs_reconnect"
    except (SyncTransient, TokenRefreshTransient) as exc:
        raise _retry(self, exc) from None
    return f"{result.active} active, {result.gone} gone"


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=120, time_limit=150)
def run_ctid_job(job_id: int) -> str:
    """A connect or an account sync queued by a web request (the trader's page follows the job, in the
    page's language)."""
    from accounts.services.jobs import ctid_job_run

    return ctid_job_run(job_id=job_id)


def _enqueue(task: Task, batches: Iterable[list[int]], **kwargs: object) -> int:
    """One message per id (each task keeps its own time limit), all through one producer, sent in pipelines.

    Each message is the one ``task.apply_async(args=(id,), kwargs=kwargs)`` would send (headers, time limits,
    routing, parent and root ids when a worker task fans out); what ``apply_async`` works out again for every
    message (the task's execution options, its route, the app's configuration, the caller task) is worked out
    once here, so a message costs only its id and its body. Celery builds and sends each one
    (``create_task_message``, ``send_task_message``: the publish signals fire as for any send). The batch task
    keeps no trail of its children's results: there is no result backend to store them in.

    kombu's publish batch sends the messages over Redis ``ENQUEUE_PIPELINE_SIZE`` at a time in one round trip
    each (a broker without batches gets them one by one). Should sending fail, the messages of the pipeline
    in flight are not sent and the error reaches the caller, as a failed single send did.
    """
    count = 0
    if embedded_mode():
        for ids in batches:
            for ctid_id in ids:
                task.apply(args=(ctid_id,), kwargs=kwargs)
                count += 1
        return count
    # Celery's own parts that its type stubs do not list (the router, the message builder and sender).
    app: Any = task.app
    amqp: Any = app.amqp
    name = task.name
    options: dict[str, Any] = dict(task._get_exec_options())  # type: ignore[attr-defined]
    options.setdefault("ignore_result", task.ignore_result)
    time_limit = options.pop("time_limit", None)
    soft_time_limit = options.pop("soft_time_limit", None)
    expires = options.pop("expires", None)
    ignore_result = options.pop("ignore_result", None)
    # The fanned-out tasks route by name, as every route in the settings does: one lookup for all.
    options = amqp.router.route(options, name, (), kwargs, task)
    # apply_async's check of the arguments against the task's signature (a wrong one fails before any send).
    check_arguments = task.__header__ if task.typing else None  # type: ignore[attr-defined]
    root_id = parent_id = None
    parent = app.current_worker_task
    if parent:
        root_id = parent.request.root_id or parent.request.id
        parent_id = parent.request.id
        if app.conf.task_inherit_parent_priority:
            options.setdefault("priority", (parent.request.delivery_info or {}).get("priority"))
    sent_event, reply_to = app.conf.task_send_sent_event, app.thread_oid
    # The arguments as the message headers show them (Celery's saferepr of each), written once for the kwargs.
    kwargsrepr = saferepr(kwargs)
    # The first message declares the task's queue as a single send does; the others only publish (kombu would
    # find the queue declared, after copying and binding it again for every message).
    declare: list[Any] | None = None
    create, send = amqp.create_task_message, amqp.send_task_message
    with (
        app.producer_or_acquire() as producer,
        producer.connection._reraise_as_library_errors(),  # kombu's errors, as a single send raises them
        producer.batch(max_size=ENQUEUE_PIPELINE_SIZE),
    ):
        for ids in batches:
            for ctid_id in ids:
                args = (ctid_id,)
                if check_arguments is not None:
                    check_arguments(*args, **kwargs)
                message = create(
                    uuid(), name, args, kwargs, None, None, None, None, expires, 0, None, None, None,
                    reply_to, time_limit, soft_time_limit, sent_event, root_id, parent_id, None, None,
                    ignore_result=ignore_result, argsrepr=f"({int(ctid_id)},)", kwargsrepr=kwargsrepr,
                    **options,
                )  # fmt: skip
                send(producer, name, message, declare=declare, **options)
                declare = []
                count += 1
    return count


def _enqueue_batches(
    batch_task: Task, per_id_task: Task, batches: Iterable[list[int]], **kwargs: object
) -> int:
    """One message per batch of ids: the periodic task's cost follows the number of batches, not of ids.

    A worker then fans each batch out into one task per id (``per_id_task``), so every refresh or sync keeps
    its own time limit; in embedded mode the ids run in-process one after the other.
    """
    if embedded_mode():
        return _enqueue(per_id_task, batches, **kwargs)
    count = 0
    with batch_task.app.producer_or_acquire() as producer:  # type: ignore[attr-defined]
        for ids in batches:
            batch_task.apply_async(args=(ids,), kwargs=kwargs, producer=producer)
            count += len(ids)
    return count


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=120, time_limit=150)
def refresh_ctid_tokens(ctid_ids: list[int], only_if_due: bool = False, reason: str = "sweep") -> int:
    """A batch of the token sweep: one refresh task per cTID."""
    return _enqueue(refresh_ctid_token, [ctid_ids], only_if_due=only_if_due, reason=reason)


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=120, time_limit=150)
def sync_ctids_accounts(ctid_ids: list[int]) -> int:
    """A batch of the periodic account sync: one sync task per cTID."""
    return _enqueue(sync_ctid_accounts, [ctid_ids])


def run_token_sweep(*, enqueue: Callable[[list[int]], None] | None = None) -> int:
    """Enqueue the refresh of every token due within the refresh window, one message per batch of ids;
    returns how many tokens were enqueued.

    A plain function so the embedded run loop can call it; ``enqueue`` replaces sending (benchmarks).
    """
    batches = ctid_tokens_due_batches()
    if enqueue is not None:
        count = 0
        for ids in batches:
            enqueue(ids)
            count += len(ids)
        return count
    count = _enqueue_batches(
        refresh_ctid_tokens, refresh_ctid_token, batches, only_if_due=True, reason="sweep"
    )
    logger.info("token sweep enqueued refreshes", extra={"count": count})
    return count


def _syncable_batches(batch_size: int) -> Iterable[list[int]]:
    connected = Ctid.objects.filter(state=Ctid.State.CONNECTED, token__state=CtidToken.State.ACTIVE)
    return keyset_batches(connected, batch_size=batch_size)


def run_account_sync() -> int:
    """Enqueue the account sync of every connected cTID, one message per batch; returns how many."""
    count = _enqueue_batches(
        sync_ctids_accounts, sync_ctid_accounts, _syncable_batches(settings.TOKEN_SWEEP_BATCH_SIZE)
    )
    logger.info("account sync enqueued", extra={"count": count})
    return count


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def sweep_due_tokens() -> int:
    """The periodic token sweep; it also expires connect and sync jobs that were abandoned (a lost message,
    a worker killed mid-job), clearing any token pair they still hold."""
    from accounts.services.jobs import ctid_jobs_expire

    expired = ctid_jobs_expire()
    if expired:
        logger.warning("abandoned cTID jobs expired", extra={"count": expired})
    return run_token_sweep()


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def sync_all_accounts() -> int:
    return run_account_sync()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=90, time_limit=110)
def open_trading_account(self: Task, opening_id: int, sealed_password_hash: str) -> str:
    """Run or resume one account opening; transient failures come back with the opening's own backoff.

    The sealed (encrypted, expiring) password hash rides in the message so that a retry can finish the
    create and link steps; it is never written to the database.
    """
    from accounts.services.opening import OpeningRetry
    from accounts.services.opening_run import account_opening_run, opening_countdown

    try:
        opening = account_opening_run(opening_id=opening_id, sealed_password_hash=sealed_password_hash)
    except OpeningRetry as exc:
        if self.request.is_eager:
            # Embedded mode has no broker to hold the retry: a timer in this process runs it (the sealed
            # hash stays in memory only, as it would in the queued message).
            _retry_in_process(opening_id, sealed_password_hash, opening_countdown(opening_id=opening_id))
            return "retrying"
        raise self.retry(
            exc=exc,
            countdown=opening_countdown(opening_id=opening_id),
            max_retries=settings.ACCOUNT_OPENING_MAX_ATTEMPTS,
        ) from None
    return opening.state if opening is not None else "missing"


def _retry_in_process(opening_id: int, sealed_password_hash: str, countdown: float) -> None:
    import threading

    from django.db import close_old_connections

    def run() -> None:
        try:
            open_trading_account.apply(args=(opening_id, sealed_password_hash))
        finally:
            close_old_connections()

    if not settings.ACCOUNT_OPENING_RETRY_IN_PROCESS:
        logger.warning("account opening left for a later attempt", extra={"opening_id": opening_id})
        return
    timer = threading.Timer(countdown, run)
    timer.daemon = True
    timer.start()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=60, time_limit=75)
def send_trader_mail(self: Task, trader_id: int, subject: str, body: str) -> str:
    """One mail to a trader; retried with backoff while the mail server refuses or cannot be reached."""
    from accounts.models import Trader
    from accounts.services.opening import trader_mail

    trader = Trader.objects.select_related("user").filter(pk=trader_id).first()
    if trader is None:
        return "missing"
    if trader_mail(trader, subject, body):
        return "sent"
    if self.request.is_eager:
        return "failed"
    raise self.retry(countdown=retry_countdown(self.request.retries), max_retries=settings.TASK_MAX_RETRIES)


# --- account figures ---
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=120, time_limit=150)
def refresh_ctid_figures(
    self: Task, ctid_id: int, account_ids: list[int] | None = None, environment: str | None = None
) -> str:
    """Read a cTID's account figures over the Open API (its active accounts, the listed ones, or those of one
    environment)."""
    from accounts.services.figures_openapi import FiguresError, FiguresTransient, ctid_figures_refresh

    try:
        result = ctid_figures_refresh(
            ctid_id=ctid_id, ctid_trader_account_ids=account_ids, environment=environment
        )
    except (Ctid.DoesNotExist, CtidToken.DoesNotExist):
        return "missing"
    except FiguresTransient as exc:
        if account_ids is not None:
            # An on-view read is not worth retrying: the periodic refresh comes soon anyway.
            return "transient"
        raise _retry(self, exc) from None
    except FiguresError as exc:
        return f"failed: {exc}"
    return f"{result.stored} stored, {result.snapshots} history points"


def _figures_ctid_batches(batch_size: int, environment: str) -> Iterable[list[int]]:
    from accounts.models import TradingAccount

    after = 0
    while True:
        ids = list(
            Ctid.objects.filter(
                state=Ctid.State.CONNECTED,
                token__state=CtidToken.State.ACTIVE,
                trader__suspended=False,
                accounts__status=TradingAccount.Status.ACTIVE,
                accounts__is_live=environment == "live",
                pk__gt=after,
            )
            .order_by("pk")
            .values_list("pk", flat=True)
            .distinct()[:batch_size]
        )
        if ids:
            yield ids
            after = ids[-1]
        if len(ids) < batch_size:
            return


def run_figures_refresh() -> dict[str, int]:
    """Refresh every account's figures: each environment with WebServices manager credentials from its trader
    list (read in pages, stored in bulk); an environment without them by one Open API read task per cTID."""
    from accounts.services.figures_webservices import (
        FiguresWebServicesError,
        environment_figures_refresh,
        webservices_environments,
    )

    done: dict[str, int] = {}
    listed = webservices_environments()
    for environment in ("live", "demo"):
        if environment in listed:
            try:
                done[environment] = environment_figures_refresh(environment=environment).stored
            except FiguresWebServicesError as exc:
                logger.warning(
                    "figures refresh failed", extra={"environment": environment, "error": str(exc)}
                )
        else:
            done[f"{environment}_openapi_tasks"] = _enqueue(
                refresh_ctid_figures,
                _figures_ctid_batches(settings.TOKEN_SWEEP_BATCH_SIZE, environment),
                environment=environment,
            )
    logger.info("figures refresh", extra=done)
    return done


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def refresh_all_figures() -> dict[str, int]:
    return run_figures_refresh()


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1900)
def account_history_retention() -> str:
    from accounts.services.figures import account_snapshots_retention

    result = account_snapshots_retention()
    return f"{result.hourly} hourly, {result.daily} daily, {result.deleted} deleted"
