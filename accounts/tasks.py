"""Celery tasks: thin, take ids, safe to run twice, retry only transient failures (backoff, jitter, cap).

Exactly one beat runs the periodic tasks (``CELERY_BEAT_SCHEDULE`` in settings). Without Redis (embedded
mode) tasks run eagerly and the run command's loop calls ``run_token_sweep`` and ``run_account_sync``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable

from celery import Task, shared_task
from django.conf import settings

from accounts.models import Ctid, CtidToken
from accounts.services.sync import SyncNeedsReconnect, SyncTransient, ctid_sync_accounts
from accounts.services.tokens import TokenRefreshTransient, ctid_token_refresh, ctid_tokens_due_batches
from clientarea.celery import embedded_mode

logger = logging.getLogger(__name__)

# Below the refresh lease (TOKEN_REFRESH_LEASE_SECONDS, 120 s by default): a task killed by its time limit
# never outlives the lease it holds.
REFRESH_SOFT_TIME_LIMIT = 75
REFRESH_TIME_LIMIT = 90


def retry_countdown(retries: int) -> float:
    """Exponential backoff with equal jitter, capped."""
    base = settings.TASK_RETRY_BASE_SECONDS
    ceiling = min(settings.TASK_RETRY_CAP_SECONDS, base * (2**retries))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


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


def _enqueue(task: Task, batches: Iterable[list[int]], **kwargs: object) -> int:
    count = 0
    if embedded_mode():
        for ids in batches:
            for ctid_id in ids:
                task.apply(args=(ctid_id,), kwargs=kwargs)
                count += 1
        return count
    # One producer (one broker connection) for the whole sweep.
    with task.app.producer_or_acquire() as producer:  # type: ignore[attr-defined]
        for ids in batches:
            for ctid_id in ids:
                task.apply_async(args=(ctid_id,), kwargs=kwargs, producer=producer)
                count += 1
    return count


def run_token_sweep(*, enqueue: Callable[[list[int]], None] | None = None) -> int:
    """Enqueue one refresh per token due within the refresh window; returns how many were enqueued.

    A plain function so the embedded run loop can call it; ``enqueue`` replaces sending (benchmarks).
    """
    batches = ctid_tokens_due_batches()
    if enqueue is not None:
        count = 0
        for ids in batches:
            enqueue(ids)
            count += len(ids)
        return count
    count = _enqueue(refresh_ctid_token, batches, only_if_due=True, reason="sweep")
    logger.info("token sweep enqueued refreshes", extra={"count": count})
    return count


def _syncable_batches(batch_size: int) -> Iterable[list[int]]:
    after = 0
    while True:
        ids = list(
            Ctid.objects.filter(state=Ctid.State.CONNECTED, token__state=CtidToken.State.ACTIVE, pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if ids:
            yield ids
            after = ids[-1]
        if len(ids) < batch_size:
            return


def run_account_sync() -> int:
    """Enqueue one account sync per connected cTID; returns how many were enqueued."""
    count = _enqueue(sync_ctid_accounts, _syncable_batches(settings.TOKEN_SWEEP_BATCH_SIZE))
    logger.info("account sync enqueued", extra={"count": count})
    return count


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def sweep_due_tokens() -> int:
    return run_token_sweep()


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def sync_all_accounts() -> int:
    return run_account_sync()


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
