"""Celery tasks: thin, take ids, safe to run twice, retry only transient failures (backoff, jitter, cap).

Exactly one beat runs the periodic tasks (``CELERY_BEAT_SCHEDULE`` in settings). Without Redis (embedded
mode) tasks run eagerly and the run command's loop calls ``run_token_sweep`` and ``run_account_sync``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from celery import Task, shared_task
from django.conf import settings

from accounts.ctrader.backoff import backoff_delay
from accounts.models import Ctid, CtidToken
from accounts.selectors import keyset_batches
from accounts.services.sync import SyncNeedsReconnect, SyncTransient, ctid_sync_accounts
from accounts.services.tokens import TokenRefreshTransient, ctid_token_refresh, ctid_tokens_due_batches

logger = logging.getLogger(__name__)

# Below the refresh lease (TOKEN_REFRESH_LEASE_SECONDS, 120 s by default): a task killed by its time limit
# never outlives the lease it holds.
REFRESH_SOFT_TIME_LIMIT = 75
REFRESH_TIME_LIMIT = 90


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
        raise _retry(self, exc) from None
    return result.outcome.value


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
    """A connect or an account sync queued by a web request (the trader's page follows the job)."""
    from accounts.services.jobs import ctid_job_run

    return ctid_job_run(job_id=job_id)


def _enqueue(task: Task, batches: Iterable[list[int]], **kwargs: object) -> int:
    """One message per id (each task keeps its own time limit), all through one producer."""
    count = 0
    if task.app.conf.task_always_eager:
        for ids in batches:
            for ctid_id in ids:
                task.apply(args=(ctid_id,), kwargs=kwargs)
                count += 1
        return count
    with task.app.producer_or_acquire() as producer:  # type: ignore[attr-defined]
        for ids in batches:
            for ctid_id in ids:
                task.apply_async(args=(ctid_id,), kwargs=kwargs, producer=producer)
                count += 1
    return count


def _enqueue_batches(
    batch_task: Task, per_id_task: Task, batches: Iterable[list[int]], **kwargs: object
) -> int:
    """One message per batch of ids: the periodic task's cost follows the number of batches, not of ids.

    A worker then fans each batch out into one task per id (``per_id_task``), so every refresh or sync keeps
    its own time limit; in embedded mode the ids run in-process one after the other.
    """
    if batch_task.app.conf.task_always_eager:
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
