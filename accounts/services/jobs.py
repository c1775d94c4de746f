"""Work on a cTID that the web request queues instead of doing: finishing a connect, reading accounts.

A request creates a ``CtidJob`` and returns; a worker runs it (a Celery worker, or in embedded mode the
in-process worker threads, never the request thread) and writes the outcome on the job, which the
trader's page polls. Invariants:

- A connect job holds the token pair of the code exchange encrypted, and only until the worker has stored
  it on the cTID through ``ctid_token_store`` or given up; either way the pair is cleared from the job.
- A job runs once: the worker claims it with a conditional UPDATE (queued -> running).
- One sync job per cTID is queued at a time: pressing "Refresh accounts" again joins the queued one.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.ctrader.oauth import TokenPair
from accounts.models import Ctid, CtidJob, Trader
from accounts.selectors import ctid_jobs_to_show
from accounts.services.sync import SyncError, SyncNeedsReconnect, ctid_sync_accounts
from clientarea.celery import embedded_mode

logger = logging.getLogger(__name__)

_ACTIVE = (CtidJob.State.QUEUED, CtidJob.State.RUNNING)
_executor: ThreadPoolExecutor | None = None


def _in_process_worker() -> ThreadPoolExecutor:
    """The embedded mode's worker threads (no broker): jobs run here, not in the request thread."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=settings.EMBEDDED_WORKER_THREADS, thread_name_prefix="in-process-worker"
        )
    return _executor


def _run_in_thread(job_id: int) -> None:
    close_old_connections()
    try:
        ctid_job_run(job_id=job_id)
    except Exception:
        logger.exception("in-process job failed", extra={"job_id": job_id})
    finally:
        close_old_connections()


def _start(job_id: int) -> None:
    from clientarea.celery import registered_task

    if embedded_mode():
        _in_process_worker().submit(_run_in_thread, job_id)
    else:
        registered_task("accounts.tasks.run_ctid_job").delay(job_id)


def task_queue(task: Any, *args: Any, **kwargs: Any) -> None:
    """Queue a Celery task after the current transaction commits; in embedded mode run it on the
    in-process worker threads rather than eagerly in the calling (request) thread."""

    def start() -> None:
        if embedded_mode():
            _in_process_worker().submit(_apply_in_thread, task, args, kwargs)
        else:
            task.apply_async(args=args, kwargs=kwargs)

    transaction.on_commit(start)


def _apply_in_thread(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    close_old_connections()
    try:
        task.apply(args=args, kwargs=kwargs)
    finally:
        close_old_connections()


def _dispatch(job_id: int) -> None:
    """Start the job once the transaction that created it has committed."""
    transaction.on_commit(lambda: _start(job_id))


def ctid_job_connect_queue(*, trader: Trader, pair: TokenPair) -> CtidJob:
    """Queue the rest of a connect (identify the cTID, store the pair, read its accounts)."""
    with transaction.atomic():
        job = CtidJob.objects.create(
            public_id=uuid.uuid4(),
            kind=CtidJob.Kind.CONNECT,
            trader=trader,
            message=_("Connecting your cTrader ID…"),
            language=translation.get_language() or "",
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )
        _dispatch(job.pk)
    return job


def ctid_job_sync_queue(*, ctid: Ctid, requested_by: str = "trader") -> CtidJob:
    """Queue a read of the cTID's accounts; a sync already queued for it is returned instead."""
    with transaction.atomic():
        Ctid.objects.select_for_update().filter(pk=ctid.pk).first()  # one queued sync per cTID
        queued = CtidJob.objects.filter(ctid=ctid, kind=CtidJob.Kind.SYNC, state=CtidJob.State.QUEUED).first()
        if queued is not None:
            return queued
        job = CtidJob.objects.create(
            public_id=uuid.uuid4(),
            kind=CtidJob.Kind.SYNC,
            trader_id=ctid.trader_id,
            ctid=ctid,
            requested_by=requested_by,
            message=_("Refreshing the accounts of cTrader ID %(user_id)s…") % {"user_id": ctid.user_id},
            language=translation.get_language() or "",
        )
        _dispatch(job.pk)
    return job


def _finish(job_id: int, *, state: str, message: str, ctid_id: int | None = None) -> None:
    fields: dict[str, Any] = {
        "state": state,
        "message": message[:500],
        "finished_at": timezone.now(),
        "access_token": None,
        "refresh_token": None,
    }
    if ctid_id is not None:
        fields["ctid_id"] = ctid_id
    CtidJob.objects.filter(pk=job_id).update(**fields)


def ctid_job_run(*, job_id: int) -> str:
    """Run a queued job once; returns its final state ("skipped" when it was not queued any more)."""
    claimed = CtidJob.objects.filter(pk=job_id, state=CtidJob.State.QUEUED).update(
        state=CtidJob.State.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return "skipped"
    job = CtidJob.objects.select_related("trader", "ctid").get(pk=job_id)
    # The outcome is shown to the trader later: word it in the language of the page that queued the job.
    with translation.override(job.language or settings.LANGUAGE_CODE):
        if job.kind == CtidJob.Kind.CONNECT:
            return _run_connect(job)
        return _run_sync(job)


def _run_connect(job: CtidJob) -> str:
    from accounts.services.ctids import ConnectError, ctid_connect_finish

    if not job.access_token or not job.refresh_token:
        _finish(job.pk, state=CtidJob.State.FAILED, message=_("Please connect your cTrader ID again."))
        return CtidJob.State.FAILED
    pair = TokenPair(job.access_token, job.refresh_token, int(job.expires_in or 0), "bearer")
    try:
        result = ctid_connect_finish(trader=job.trader, pair=pair)
    except ConnectError as exc:
        _finish(job.pk, state=CtidJob.State.FAILED, message=str(exc))
        return CtidJob.State.FAILED
    except Exception:
        logger.exception("connect job failed", extra={"job_id": job.pk})
        _finish(
            job.pk,
            state=CtidJob.State.FAILED,
            message=_("Your cTrader ID could not be connected. Please try again."),
        )
        return CtidJob.State.FAILED
    values = {"id": result.ctid.user_id}
    if result.sync is not None:
        values["count"] = result.sync.active
        text = (
            _("cTrader ID %(id)s is connected: %(count)s trading account(s) found.")
            if result.created
            else _("cTrader ID %(id)s is reconnected: %(count)s trading account(s) found.")
        )
        message = text % values
    else:
        message = (
            _(
                "cTrader ID %(id)s is connected, but we could not read its accounts yet. "
                "Use “Refresh accounts” in a minute."
            )
            % values
        )
    _finish(job.pk, state=CtidJob.State.DONE, message=message, ctid_id=result.ctid.pk)
    return CtidJob.State.DONE


def _run_sync(job: CtidJob) -> str:
    assert job.ctid is not None
    user_id = job.ctid.user_id
    try:
        result = ctid_sync_accounts(ctid_id=job.ctid.pk)
    except SyncNeedsReconnect:
        message = _(
            "cTrader ID %(id)s needs to be reconnected before we can read its accounts. Use Reconnect above."
        ) % {"id": user_id}
        _finish(job.pk, state=CtidJob.State.FAILED, message=message)
        return CtidJob.State.FAILED
    except SyncError as exc:
        logger.warning("account refresh job failed", extra={"job_id": job.pk, "error": str(exc)})
        message = _(
            "We could not reach cTrader to refresh the accounts of cTrader ID %(id)s. Please try again later."
        ) % {"id": user_id}
        _finish(job.pk, state=CtidJob.State.FAILED, message=message)
        return CtidJob.State.FAILED
    message = _("The accounts of cTrader ID %(id)s are up to date: %(count)s active account(s).") % {
        "id": user_id,
        "count": result.active,
    }
    _finish(job.pk, state=CtidJob.State.DONE, message=message)
    return CtidJob.State.DONE


def ctid_jobs_expire(*, older_than: timedelta = timedelta(minutes=15)) -> int:
    """Fail jobs queued or running for too long (a lost message, a worker killed mid-job). A connect job's
    token pair is never dropped: the consent already replaced the cTID's chain at Spotware, so the pair moves
    to a pending consent that the periodic identification places. Returns how many were expired."""
    from accounts.services.ctids import ctid_pending_consent_keep

    stale = CtidJob.objects.filter(state__in=_ACTIVE, created_at__lt=timezone.now() - older_than)
    for job in stale.filter(kind=CtidJob.Kind.CONNECT, access_token__isnull=False).select_related("trader"):
        if job.access_token and job.refresh_token:
            ctid_pending_consent_keep(
                trader=job.trader,
                pair=TokenPair(job.access_token, job.refresh_token, int(job.expires_in or 0), "bearer"),
                error="connect job expired before it ran",
            )
    return stale.update(
        state=CtidJob.State.FAILED,
        message=_("This took too long and was stopped. Please try again."),
        finished_at=timezone.now(),
        access_token=None,
        refresh_token=None,
    )


def ctid_jobs_for_dashboard(*, trader: Trader) -> list[CtidJob]:
    """The trader's jobs still running, and those finished that the trader has not been shown yet
    (marked shown now)."""
    jobs = list(ctid_jobs_to_show(trader=trader).order_by("created_at")[:20])
    finished = [j.pk for j in jobs if j.finished]
    if finished:
        CtidJob.objects.filter(pk__in=finished).update(seen=True)
    return jobs
