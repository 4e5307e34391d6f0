"""What the providers report, applied to our jobs: batched polls, webhook hints, re-syncs.

A provider's answer only ever moves a job forward (`apply_snapshot`). Polling runs as one
chain per provider, guarded by `PollLease`: each link does one batched fetch of every job
the provider knows, then enqueues the next link while work remains. A webhook is a hint
that a job changed: one saying it ended costs a read of that job, a progress one only wakes
the poll chain. A re-sync reads one job now.

A result read by the poll or a re-sync is stored by an ingest task; one read because a webhook
said the job ended is stored by that read's own task. Both run in the ingest queue.
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from gallery import (
    dispatch,
    fitting,
    ingest,
    lifecycle,
    previews,
    queue,
    references,
    routing,
    upstream,
)
from gallery.models import Job, PollLease
from gallery.providers import ProviderError
from gallery.providers.base import TaskSnapshot, TaskStatus, classify_failure

logger = logging.getLogger(__name__)

# Repeated deliveries saying a job ended, closer together than this, cost one read.
HINT_INTERVAL = timedelta(seconds=0.5)


# --- one job's report -------------------------------------------------------------------


def apply_snapshot(job: Job, snapshot: TaskSnapshot) -> None:
    """Move a job forward to what the provider reports; never backwards. Every field is
    fitted to its column first (gallery.fitting)."""
    snapshot, problems = fitting.snapshot(snapshot)
    status = snapshot.status
    if job.status == Job.Status.FAILED:
        _apply_after_failure(job, snapshot)
        return
    if status is TaskStatus.FAILED:
        words = snapshot.fail_reason
        note = "" if words else "The provider reported a failure without a reason."
        lifecycle.fail(
            job, kind=classify_failure(words), reason=words, note=note, provider_refunds=True
        )
        return
    if status is TaskStatus.MODAL:
        if job.echoes_our_modal(timezone.now()):
            return  # a gateway's copy still shows the question we answered: pending
        if job.status != Job.Status.MODAL:
            # Vary (Region) and Custom Zoom: answered with what the user gave at the press.
            answer = job.own_modal_answer()
            if job.transition(Job.Status.MODAL, provider_payload=snapshot.raw, **answer) and answer:
                queue.submit_modal(job)
        return
    if status is TaskStatus.PENDING:
        return
    if job.status in (Job.Status.SUBMITTED, Job.Status.MODAL):
        job.transition(Job.Status.RUNNING, started_at=timezone.now())
    if job.status != Job.Status.RUNNING:
        return
    if status is TaskStatus.RUNNING:
        if snapshot.progress != job.progress or snapshot.image_url != job.preview_url:
            job.update_if_status(progress=snapshot.progress, preview_url=snapshot.image_url)
            if previews.wanted(job):
                queue.preview(job)  # fetched once per step by the worker, never by a page
        return
    if job.writes_prompts:
        if not snapshot.prompts:
            note = "The provider finished Describe without any prompts."
            lifecycle.fail(job, kind=Job.FailKind.PROVIDER_ERROR, note=note)
            return
        record_result(job, snapshot)
        return
    if not snapshot.image_url:
        note = "; ".join(problems) or "Finished without an image."
        lifecycle.fail(job, kind=Job.FailKind.IMAGE_UNAVAILABLE, note=note)
        return
    record_result(job, snapshot)


def _apply_after_failure(job: Job, snapshot: TaskSnapshot) -> None:
    """A job we ended as failed: a late success is delivered where the failure allows one
    (`Job.accepts_late_success`); once the provider ends it too, we stop asking."""
    if not job.accepts_late_success:
        return
    if snapshot.status is TaskStatus.SUCCEEDED and (snapshot.image_url or snapshot.prompts):
        record_result(job, snapshot)
    elif snapshot.status is TaskStatus.FAILED:
        # The provider failed it too, and refunds a failed task: it costs us nothing.
        Job.objects.filter(pk=job.pk, **Job.LATE_SUCCESS).update(
            deadline_at=None, **lifecycle.provider_refund(job)
        )


def record_result(job: Job, snapshot: TaskSnapshot) -> bool:
    """Record a finished task's result once and hand it to ingest, which ends the job.

    Only a running job, or a failed one that accepts a late success, takes a result; the
    update checks that, so a job ended meanwhile gets nothing written and nothing queued.
    """
    if job.status == Job.Status.RUNNING:
        still = {"status": Job.Status.RUNNING}
        changes: dict[str, Any] = {"progress": 100}
    elif job.accepts_late_success:
        still, changes = dict(Job.LATE_SUCCESS), {}
    else:
        return False
    # Should the ingest queued here be lost or killed, the sweeper queues another then.
    changes["ingest_due_at"] = timezone.now() + ingest.due_after()
    with transaction.atomic():
        recorded = Job.objects.filter(pk=job.pk, result_url="", **still).update(
            result_url=_result_url(job, snapshot),
            described=list(snapshot.prompts),
            buttons=[button.as_dict() for button in snapshot.buttons],
            final_prompt=snapshot.final_prompt or job.final_prompt or job.prompt,
            provider_payload=snapshot.raw,
            **changes,
        )
        if recorded == 1:
            job.refresh_from_db()
            if not _INGEST_HERE.get():
                queue.ingest(job)
    return recorded == 1


def _result_url(job: Job, snapshot: TaskSnapshot) -> str:
    """Where the finished job's picture is: the provider's, or for Describe the user's own
    picture, which the job keeps (a provider need not send it back)."""
    if job.writes_prompts:
        kept = references.of(job)
        return references.link(kept[0]) if kept else snapshot.image_url
    return snapshot.image_url


# Set while the read a webhook asked for runs (`collect`): a result it records is stored by
# that same task, not queued. Should that task die, the sweeper restarts the ingest at its due
# time (`ingest_due_at`, set with the result).
_INGEST_HERE: contextvars.ContextVar[bool] = contextvars.ContextVar("ingest_here", default=False)


# --- asking about one job now -------------------------------------------------------------


def request_refresh(job: Job) -> bool:
    """Queue a fetch of the job from its provider, if that could change it (`can_resync`);
    a job whose result is recorded but not stored gets its ingest queued again as well."""
    if not job.can_resync:
        return False
    queue.refresh(job)
    if job.awaits_ingest:
        queue.ingest(job)
    return True


def hint(job: Job, *, final: bool) -> bool:
    """A webhook said this job changed.

    A progress hook only wakes the provider's poll chain: its next batched read covers this
    job with the others, so progress costs no read of its own. A hook that says the job ended
    costs one read of that job (`collect`, in the ingest queue), which stores the result at
    once, so it never waits for the next poll; repeats within
    `HINT_INTERVAL` (duplicated deliveries) cost nothing more. Returns whether a read was
    queued.
    """
    if not final:
        kick(job.provider)
        return False
    now = timezone.now()
    unhinted = Q(hinted_at__isnull=True) | Q(hinted_at__lt=now - HINT_INTERVAL)
    claimed = Job.objects.filter(pk=job.pk).filter(unhinted).update(hinted_at=now) == 1
    if claimed:
        queue.collect(job)
    return claimed


def refresh(job_id: int) -> None:
    """Fetch one job from its provider now and move it forward (a re-sync). A result it
    finds is stored by an ingest, queued as the poll's are."""
    _read(job_id, store=False)


def collect(job_id: int) -> None:
    """A webhook said this job ended: read it, and store a result the read brings in this
    same task. It runs in the ingest queue, so the result never waits behind polling,
    dispatches or previews, nor for a second hop through a queue."""
    _read(job_id, store=True)


def _read(job_id: int, *, store: bool) -> None:
    job = Job.objects.filter(pk=job_id).first()
    if job is None or not job.can_resync:
        return
    if store and job.result_url:
        return  # the poll read the result first: the ingest it queued stores it
    try:
        with upstream.connect(job.provider, job) as api:
            snapshot = api.fetch(job.provider_job_id)
    except ProviderError as exc:
        logger.info("read of %s failed: %r; the poll will catch up", job.code, exc)
        routing.refused(job.provider, exc)
        return
    if snapshot is None:
        return
    here = _INGEST_HERE.set(store)
    try:
        apply_snapshot(job, snapshot)
    finally:
        _INGEST_HERE.reset(here)
    # A slot the result freed is handed to the next job in line now, not at the next tick.
    dispatch.fill_slots(job.provider, timezone.now())
    if store:  # the result was not recorded before this read (checked above)
        job.refresh_from_db()
        if job.awaits_ingest:
            ingest.ingest(job.pk)


# --- the poll chain -------------------------------------------------------------------------


def lease_ttl() -> timedelta:
    return timedelta(seconds=settings.MJ_POLL_INTERVAL * 4 + settings.MJ_HTTP_TIMEOUT * 2)


def claim_lease(provider: str, token: str) -> str | None:
    """Take or renew the provider's poll lease. Returns the token to pass on, or None."""
    now = timezone.now()
    PollLease.objects.get_or_create(provider=provider)
    new_token = token or secrets.token_hex(8)
    claimable = PollLease.free_q(now)
    if token:
        claimable |= Q(token=token)
    updated = (
        PollLease.objects.filter(provider=provider)
        .filter(claimable)
        .update(token=new_token, expires_at=now + lease_ttl())
    )
    return new_token if updated == 1 else None


def release_lease(provider: str, token: str) -> None:
    PollLease.objects.filter(provider=provider, token=token).update(
        token="", expires_at=timezone.now()
    )


def kick(provider: str) -> None:
    """Start the provider's poll chain unless one is alive. The lease is taken here, for the
    link this queues, so a burst of kicks (webhooks, submits) queues one link, not one each;
    if that link is lost, the lease runs out and the next kick starts another. A chain that is
    alive costs a kick one read and no write (a progress webhook is mostly this)."""
    held = PollLease.objects.filter(provider=provider).exclude(PollLease.free_q(timezone.now()))
    if held.exists():
        return
    token = claim_lease(provider, "")
    if token is not None:
        queue.poll(provider, token)


def kick_all() -> None:
    """Start every poll chain that should run and does not (the sweeper, every minute)."""
    providers = Job.objects.in_flight().values_list("provider", flat=True).distinct()
    for provider in set(providers):
        kick(provider)


def ticks_per_link() -> int:
    """Ticks one poll task runs before it hands on to the next link. A link that ran a single
    tick would wait in the queue behind every other task before the next one, stretching the
    interval; so a link keeps the pace itself for as long as django-q's task timeout safely
    allows (a tick may take up to two HTTP timeouts), then queues its successor."""
    if settings.MJ_POLL_TICKS_PER_LINK:
        return settings.MJ_POLL_TICKS_PER_LINK
    task_timeout = float(settings.Q_CLUSTER.get("timeout") or 90)
    room = task_timeout - 2 * settings.MJ_HTTP_TIMEOUT - 5
    return max(1, int(room // settings.MJ_POLL_INTERVAL))


def poll(provider: str, token: str = "") -> None:
    """One link of the provider's poll chain: ticks at MJ_POLL_INTERVAL while jobs remain,
    renewing the lease before each, then the next link (or the chain ends)."""
    token_held = token
    for number in range(ticks_per_link()):
        renewed = claim_lease(provider, token_held)
        if renewed is None:
            return  # another chain is alive (ours lost its lease)
        token_held = renewed
        started = time.monotonic()
        try:
            more = tick(provider)
        except Exception:
            logger.exception("poll tick for %s failed", provider)
            more = True
        if not more:
            release_lease(provider, token_held)
            return
        if number < ticks_per_link() - 1:
            time.sleep(max(0.0, settings.MJ_POLL_INTERVAL - (time.monotonic() - started)))
    time.sleep(settings.MJ_POLL_INTERVAL)
    queue.poll(provider, token_held)


# A job past its deadline is failed once it has been read after the deadline (its last
# read); if no read gets through, this long after the deadline it is failed all the same.
LAST_READ_GRACE = timedelta(minutes=2)


def _advance(job: Job, snapshot: TaskSnapshot | None, now: datetime) -> None:
    """Apply one job's report, then its deadline; each on its own, so that a report that
    cannot be applied (a database error, a bug) skips that one job, logged with its reason,
    and the tick goes on to the others."""
    if snapshot is not None:
        try:
            with transaction.atomic():
                apply_snapshot(job, snapshot)
        except Exception:
            logger.exception("the report on job %s could not be applied; skipped", job.code)
            job.refresh_from_db()
    last_read_done = snapshot is not None or (
        job.deadline_at is not None and now > job.deadline_at + LAST_READ_GRACE
    )
    if job.is_overdue(now) and last_read_done:
        try:
            lifecycle.fail(
                job,
                kind=Job.FailKind.TIMEOUT,
                note=f"No result within the {job.mode_name} mode deadline.",
            )
        except Exception:
            logger.exception("the deadline of job %s could not be applied", job.code)


def _read_omitted(
    provider: str, jobs: list[Job], seen: dict[str, TaskSnapshot], now: datetime
) -> Iterator[tuple[str, TaskSnapshot]]:
    """Read on their own the jobs a batched read left out (a gateway's list may omit ids it
    still knows), throttled: each at most every MJ_SINGLE_READ_INTERVAL seconds, at most
    MJ_SINGLE_READS_PER_TICK a tick, the most urgent first (past their deadline, then the
    nearest deadline). Each report is yielded as it is read, like `fetch_each`."""
    since = now - timedelta(seconds=settings.MJ_SINGLE_READ_INTERVAL)
    omitted = [
        job
        for job in jobs
        if job.provider_job_id not in seen and (job.read_at is None or job.read_at < since)
    ]
    far = now + timedelta(days=365)
    omitted.sort(key=lambda job: job.deadline_at or far)
    for job in omitted[: settings.MJ_SINGLE_READS_PER_TICK]:
        Job.objects.filter(pk=job.pk).update(read_at=now)
        try:
            with upstream.connect(provider, job) as client:
                snapshot = client.fetch(job.provider_job_id)
        except ProviderError as exc:
            logger.info("single read of %s failed: %r", job.code, exc)
            routing.refused(provider, exc)
            continue
        if snapshot is not None:
            yield job.provider_job_id, snapshot


def tick(provider: str) -> bool:
    """One round for a provider; returns whether jobs remain in flight.

    Each job's report is applied as soon as it is read (PiAPI reads one task a call); the
    jobs the read left out are then read on their own; last, the deadlines of the rest.
    """
    now = timezone.now()
    dispatch.redispatch_due(provider, now)
    # In a stable order: the reads (PiAPI reads one task a call) go out in the same order.
    jobs = list(Job.objects.pollable(provider).order_by("pk"))
    by_id = {job.provider_job_id: job for job in jobs}
    seen: dict[str, TaskSnapshot] = {}

    def apply(reports: Iterable[tuple[str, TaskSnapshot]]) -> None:
        for task_id, snapshot in reports:
            if task_id in by_id and task_id not in seen:
                seen[task_id] = snapshot
                _advance(by_id[task_id], snapshot, now)

    if jobs:
        try:
            # One call for the whole batch: linked to its job when there is just one.
            with upstream.connect(provider, jobs[0] if len(jobs) == 1 else None) as client:
                apply(client.fetch_each(by_id))
        except ProviderError as exc:
            logger.warning("batched fetch for %s failed: %r", provider, exc)
            routing.refused(provider, exc)
        else:
            apply(_read_omitted(provider, jobs, seen, now))
    for job in jobs:
        if job.provider_job_id not in seen:
            _advance(job, None, now)
    dispatch.fill_slots(provider, now)
    return _remaining(provider)


def _remaining(provider: str) -> bool:
    return (
        Job.objects.filter(provider=provider)
        .filter(Q(status=Job.Status.QUEUED) | Q(pk__in=Job.objects.pollable(provider).values("pk")))
        .exists()
    )
