"""django-q2 tasks: thin, idempotent, and keyed by ids.

Delivery is at least once, so every task may run twice or concurrently with itself:
- `dispatch` claims the job with a lease before submitting, so a redelivery does not
  create a second provider job;
- `poll` runs as one chain per provider, guarded by `PollLease`; each link does one batched
  fetch of every in-flight job, then enqueues the next link while work remains;
- `ingest` stores the images once (unique rows) and ends the job with a compare-and-set.
The job's own state (attempts, next_attempt_at, deadlines), not queue redelivery, drives retries.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from gallery import audit, imaging, services
from gallery.models import Image, Job, PollLease
from gallery.providers import ProviderError, get_provider
from gallery.providers.base import TaskSnapshot, TaskStatus, button_from_dict, classify_failure

logger = logging.getLogger(__name__)

DISPATCH_LEASE = timedelta(seconds=120)
# A queued job whose dispatch task has not run after this long is dispatched again.
LOST_DISPATCH_AFTER = timedelta(seconds=60)
INGEST_ATTEMPTS = 3
MODAL_ATTEMPTS = 3


def backoff(attempt: int) -> timedelta:
    return timedelta(seconds=min(300, 2 ** max(0, attempt)))


# --- dispatch -------------------------------------------------------------------------


def dispatch(job_id: int) -> None:
    if not _claim_for_dispatch(job_id):
        return  # already dispatched, leased by another run, ended, not due, or no free slot
    job = Job.objects.select_related("parent").get(pk=job_id)
    try:
        with get_provider(job.provider, recorder=audit.recorder(job.provider, job)) as provider:
            if job.action == Job.Action.IMAGINE:
                submission = provider.imagine(prompt=job.prompt, mode=job.mode, state=str(job.code))
            else:
                parent = job.parent
                button = parent.button(job.action, job.index, job.variant) if parent else None
                if parent is None or button is None or not parent.provider_job_id:
                    services.fail(
                        job,
                        kind=Job.FailKind.PROVIDER_ERROR,
                        reason="The job this button belongs to is no longer available.",
                    )
                    return
                submission = provider.action(
                    parent_job_id=parent.provider_job_id,
                    button=button_from_dict(button),
                    mode=job.mode,
                    state=str(job.code),
                    remix=job.remix,
                    # PiAPI lists the prompt as required on variations; a remix sends the
                    # edited one; a plain reroll keeps the parent's.
                    prompt=job.prompt if job.remix or job.action == Job.Action.VARIATION else "",
                )
    except ProviderError as exc:
        _dispatch_failed(job, exc)
        return
    status = Job.Status.MODAL if submission.status is TaskStatus.MODAL else Job.Status.SUBMITTED
    deadline = settings.MJ_DEADLINES.get(job.mode, settings.MJ_DEADLINES["fast"])
    try:
        moved = job.transition(
            status,
            provider_job_id=submission.provider_job_id,
            final_prompt=submission.final_prompt or job.final_prompt,
            submitted_at=timezone.now(),
            deadline_at=timezone.now() + timedelta(seconds=deadline),
            dispatch_lease_until=None,
            next_attempt_at=None,
        )
    except IntegrityError:
        logger.error("provider id %s already belongs to another job", submission.provider_job_id)
        services.fail(job, kind=Job.FailKind.PROVIDER_ERROR, reason="Duplicate provider task id.")
        return
    if not moved:
        logger.warning("job %s changed while it was being submitted", job.code)
    kick(job.provider)


def _claim_for_dispatch(job_id: int) -> bool:
    """Lease the job for one submit if it is due and the provider account has a free slot.

    The provider's lease row is locked while counting, so two dispatches never both take the
    last slot; jobs that find no slot wait locally and keep their place (oldest first).
    """
    now = timezone.now()
    job = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).first()
    if job is None:
        return False
    capacity = settings.MJ_PROVIDER_RUNNING + settings.MJ_PROVIDER_QUEUED
    PollLease.objects.get_or_create(provider=job.provider)
    with transaction.atomic():
        PollLease.objects.select_for_update().get(provider=job.provider)
        free = capacity - Job.objects.occupying(job.provider).count()
        ahead = (
            Job.objects.dispatchable(job.provider)
            .filter(created_at__lt=job.created_at)
            .filter(Q(dispatch_lease_until__isnull=True) | Q(dispatch_lease_until__lt=now))
            .count()
        )
        due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        waiting = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).filter(due)
        if ahead >= free:
            waiting.update(
                slot_position=ahead,
                next_attempt_at=now + timedelta(seconds=settings.MJ_POLL_INTERVAL),
            )
            kick(job.provider)
            return False
        claimed = waiting.filter(
            Q(dispatch_lease_until__isnull=True) | Q(dispatch_lease_until__lt=now)
        ).update(
            dispatch_lease_until=now + DISPATCH_LEASE,
            attempts=F("attempts") + 1,
            slot_position=None,
        )
    return claimed == 1


def _dispatch_failed(job: Job, exc: ProviderError) -> None:
    if exc.permanent or job.attempts >= settings.MJ_DISPATCH_MAX_ATTEMPTS:
        services.fail(job, kind=exc.fail_kind, reason=exc.message)
        return
    logger.info("dispatch of %s failed (%r); retrying", job.code, exc)
    job.update_if_status(
        dispatch_lease_until=None,
        next_attempt_at=timezone.now() + backoff(job.attempts),
        fail_reason=exc.message[:4000],
    )
    kick(job.provider)


def submit_modal(job_id: int) -> None:
    """Send the prompt a user typed for a job waiting in MODAL, then follow the answer's id."""
    now = timezone.now()
    claimed = (
        Job.objects.filter(pk=job_id, status=Job.Status.MODAL)
        .exclude(remix_prompt="")
        .filter(Q(dispatch_lease_until__isnull=True) | Q(dispatch_lease_until__lt=now))
        .update(dispatch_lease_until=now + DISPATCH_LEASE)
    )
    if claimed != 1:
        return
    job = Job.objects.get(pk=job_id)
    for attempt in range(MODAL_ATTEMPTS):
        try:
            with get_provider(job.provider, recorder=audit.recorder(job.provider, job)) as api:
                submission = api.modal(provider_job_id=job.provider_job_id, prompt=job.remix_prompt)
            break
        except ProviderError as exc:
            if exc.permanent or attempt == MODAL_ATTEMPTS - 1:
                services.fail(job, kind=exc.fail_kind, reason=exc.message)
                return
            time.sleep(min(8, 2**attempt))
    deadline = settings.MJ_DEADLINES.get(job.mode, settings.MJ_DEADLINES["fast"])
    # trueai answers with the same id, a gateway may hand out a new one: follow the answer.
    job.transition(
        Job.Status.SUBMITTED,
        provider_job_id=submission.provider_job_id,
        # The user rewrote the prompt for this job: it is this job's prompt from now on.
        prompt=job.remix_prompt,
        final_prompt=job.remix_prompt,
        remix_prompt="",
        dispatch_lease_until=None,
        deadline_at=timezone.now() + timedelta(seconds=deadline),
    )
    kick(job.provider)


def hint(job: Job, *, final: bool = False) -> bool:
    """A webhook said this job changed: fetch it now.

    Progress hints are throttled to two a second per job; a hint that the job ended
    (`final`) always fetches, so a result never waits for the next poll.
    """
    now = timezone.now()
    jobs = Job.objects.filter(pk=job.pk)
    if not final:
        recent = now - timedelta(seconds=0.5)
        jobs = jobs.filter(Q(hinted_at__isnull=True) | Q(hinted_at__lt=recent))
    claimed = jobs.update(hinted_at=now)
    if claimed == 1:
        async_task("gallery.tasks.refresh", job.pk, task_name=f"refresh-{job.code}")
    return claimed == 1


def refresh(job_id: int) -> None:
    """Fetch one job from its provider now and move it forward (webhooks, re-sync)."""
    job = Job.objects.filter(pk=job_id).exclude(provider_job_id="").first()
    if job is None or job.status not in (*Job.IN_FLIGHT, Job.Status.FAILED):
        return
    try:
        with get_provider(job.provider, recorder=audit.recorder(job.provider, job)) as api:
            snapshot = api.fetch(job.provider_job_id)
    except ProviderError as exc:
        logger.info("refresh of %s failed: %r; the poll will catch up", job.code, exc)
        return
    if snapshot is not None:
        apply_snapshot(job, snapshot)


# --- polling --------------------------------------------------------------------------


def lease_ttl() -> timedelta:
    return timedelta(seconds=settings.MJ_POLL_INTERVAL * 4 + settings.MJ_HTTP_TIMEOUT * 2)


def claim_lease(provider: str, token: str) -> str | None:
    """Take or renew the provider's poll lease. Returns the token to pass on, or None."""
    now = timezone.now()
    PollLease.objects.get_or_create(provider=provider)
    new_token = token or secrets.token_hex(8)
    claimable = Q(expires_at__lt=now) | Q(token="")
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
    """Start the provider's poll chain unless one is alive."""
    alive = PollLease.objects.filter(provider=provider, expires_at__gte=timezone.now()).exclude(
        token=""
    )
    if not alive.exists():
        async_task("gallery.tasks.poll", provider, "", task_name=f"poll-{provider}")


def kick_all() -> None:
    """Schedule entry point (every minute): the safety net under the poll chains."""
    providers = Job.objects.in_flight().values_list("provider", flat=True).distinct()
    for provider in set(providers):
        kick(provider)


def poll(provider: str, token: str = "") -> None:
    token_held = claim_lease(provider, token)
    if token_held is None:
        return  # another chain is alive
    try:
        more = tick(provider)
    except Exception:
        logger.exception("poll tick for %s failed", provider)
        more = True
    if not more:
        release_lease(provider, token_held)
        return
    time.sleep(settings.MJ_POLL_INTERVAL)
    async_task("gallery.tasks.poll", provider, token_held, task_name=f"poll-{provider}")


def tick(provider: str) -> bool:
    """One round for a provider; returns whether jobs remain in flight."""
    now = timezone.now()
    _redispatch_due(provider, now)
    jobs = list(Job.objects.pollable(provider))
    if jobs:
        try:
            # One call for the whole batch: linked to its job when there is just one.
            record = audit.recorder(provider, jobs[0] if len(jobs) == 1 else None)
            with get_provider(provider, recorder=record) as client:
                snapshots = client.fetch_many(job.provider_job_id for job in jobs)
        except ProviderError as exc:
            logger.warning("batched fetch for %s failed: %r", provider, exc)
            snapshots = {}
        for job in jobs:
            snapshot = snapshots.get(job.provider_job_id)
            if snapshot is not None:
                apply_snapshot(job, snapshot)
            # A job waiting for the user's remix prompt is not late: the clock restarts when
            # the prompt is sent.
            overdue = job.deadline_at is not None and job.deadline_at < now
            if overdue and job.is_in_flight and not job.result_url and not job.awaiting_user:
                services.fail(
                    job,
                    kind=Job.FailKind.TIMEOUT,
                    reason=f"No result within the {job.get_mode_display()} mode deadline.",
                )
    return (
        Job.objects.filter(provider=provider)
        .filter(Q(status=Job.Status.QUEUED) | Q(pk__in=Job.objects.pollable(provider).values("pk")))
        .exists()
    )


def _redispatch_due(provider: str, now: datetime) -> None:
    """Queued jobs whose backoff has passed, or whose dispatch task got lost."""
    due = (
        Job.objects.dispatchable(provider)
        .filter(Q(dispatch_lease_until__isnull=True) | Q(dispatch_lease_until__lt=now))
        .filter(
            Q(next_attempt_at__lte=now)
            | Q(next_attempt_at__isnull=True, created_at__lt=now - LOST_DISPATCH_AFTER)
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:50]
    )
    for job_id in due:
        async_task("gallery.tasks.dispatch", job_id, task_name=f"dispatch-{job_id}")


def apply_snapshot(job: Job, snapshot: TaskSnapshot) -> None:
    """Move a job forward to what the provider reports; never backwards."""
    status = snapshot.status
    if job.status == Job.Status.FAILED:
        _apply_late(job, snapshot)
        return
    if status is TaskStatus.FAILED:
        reason = snapshot.fail_reason or "The provider reported a failure without a reason."
        services.fail(job, kind=classify_failure(reason), reason=reason)
        return
    if status is TaskStatus.MODAL:
        if job.status != Job.Status.MODAL:
            job.transition(Job.Status.MODAL, provider_payload=snapshot.raw)
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
        return
    # SUCCEEDED: record the result once and hand it to ingest.
    if not snapshot.image_url:
        services.fail(job, kind=Job.FailKind.IMAGE_UNAVAILABLE, reason="Finished without an image.")
        return
    recorded = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, result_url="").update(
        result_url=snapshot.image_url,
        progress=100,
        buttons=[button.as_dict() for button in snapshot.buttons],
        final_prompt=snapshot.final_prompt or job.final_prompt or job.prompt,
        provider_payload=snapshot.raw,
    )
    if recorded == 1:
        job.refresh_from_db()
        async_task("gallery.tasks.ingest", job.pk, task_name=f"ingest-{job.code}")


def _apply_late(job: Job, snapshot: TaskSnapshot) -> None:
    """A job we timed out: deliver a late success; stop asking once the provider ends it."""
    if snapshot.status is TaskStatus.SUCCEEDED and snapshot.image_url:
        recorded = Job.objects.filter(pk=job.pk, status=Job.Status.FAILED, result_url="").update(
            result_url=snapshot.image_url,
            buttons=[button.as_dict() for button in snapshot.buttons],
            final_prompt=snapshot.final_prompt or job.final_prompt or job.prompt,
            provider_payload=snapshot.raw,
        )
        if recorded == 1:
            async_task("gallery.tasks.ingest", job.pk, task_name=f"ingest-{job.code}")
    elif snapshot.status is TaskStatus.FAILED:
        Job.objects.filter(pk=job.pk, status=Job.Status.FAILED).update(deadline_at=None)


# --- ingest ---------------------------------------------------------------------------

# Room left inside django-q's task timeout for storing the images and ending the job: the
# downloads share what remains, so a slow host never gets the task killed mid-way (a killed
# ingest would leave its job running with nobody to end it).
INGEST_STORE_RESERVE = 20.0
# Tries at writing the files and rows when the storage backend fails (an S3 hiccup).
STORE_ATTEMPTS = 3


def ingest(job_id: int) -> None:
    """Copy a finished job's image into our storage, then end the job, once.

    Runs at least once and may run concurrently with itself: the rows are unique per
    (job, kind, index), a second run finds them and only ends the job, and the job ends with
    a compare-and-set in `services`. An image that cannot be fetched after the retries, or
    cannot be stored, fails the job as image_unavailable (which releases its hold).
    """
    job = Job.objects.filter(pk=job_id).first()
    if job is None or not job.result_url:
        return
    late = job.status == Job.Status.FAILED and job.fail_kind == Job.FailKind.TIMEOUT
    if job.status != Job.Status.RUNNING and not late:
        return
    if _main_image(job) is not None:
        # Stored by an earlier run that did not get to end the job (crash, redelivery).
        services.succeed(job)
        return
    allowed = set(settings.MJ_IMAGE_HOSTS)
    with get_provider(job.provider) as provider:
        allowed |= provider.image_hosts()
    picture, error = _fetch_picture(job.result_url, allowed)
    Job.objects.filter(pk=job.pk).update(ingest_attempts=F("ingest_attempts") + 1)
    if picture is None:
        services.fail(
            job,
            kind=Job.FailKind.IMAGE_UNAVAILABLE,
            reason=str(error) if error else "The image could not be fetched.",
        )
        return
    stored, reason = _store_with_retries(job, picture)
    if not stored:
        services.fail(job, kind=Job.FailKind.IMAGE_UNAVAILABLE, reason=reason)
        return
    services.succeed(job)


def _ingest_budget() -> float:
    """Seconds all download attempts of one ingest may take together."""
    task_timeout = float(settings.Q_CLUSTER.get("timeout") or 90)
    return max(5.0, task_timeout - INGEST_STORE_RESERVE)


def _fetch_picture(
    url: str, allowed: set[str]
) -> tuple[imaging.Picture | None, imaging.ImageFetchError | None]:
    """Download and validate, retrying transient errors within the ingest's time budget."""
    budget_ends = time.monotonic() + _ingest_budget()
    error: imaging.ImageFetchError | None = None
    for attempt in range(INGEST_ATTEMPTS):
        remaining = budget_ends - time.monotonic()
        if remaining < 1:
            break
        try:
            data = imaging.download(
                url,
                allowed_hosts=allowed,
                timeout=min(float(settings.MJ_INGEST_TIMEOUT), remaining),
            )
            return imaging.decode(data), None
        except imaging.ImageFetchError as exc:
            error = exc
            logger.info("image download %s/%s failed: %s", attempt + 1, INGEST_ATTEMPTS, exc)
            if exc.permanent or attempt == INGEST_ATTEMPTS - 1:
                break
            time.sleep(min(8, 2**attempt))
    return None, error


def _store_with_retries(job: Job, picture: imaging.Picture) -> tuple[bool, str]:
    """Store the picture; a storage failure is retried, a bad picture is not."""
    for attempt in range(STORE_ATTEMPTS):
        try:
            store_picture(job, picture)
            return True, ""
        except imaging.ImageFetchError as exc:
            return False, str(exc)
        except Exception as exc:  # the storage backend's own errors (OSError, boto's, ...)
            logger.exception("storing the images of %s failed", job.code)
            if attempt == STORE_ATTEMPTS - 1:
                return False, f"The image could not be stored: {exc}"
            time.sleep(min(8, 2**attempt))
    return False, "The image could not be stored."


def _main_kind(job: Job) -> str:
    return Image.Kind.SINGLE if job.is_single_image else Image.Kind.GRID


def _main_image(job: Job) -> Image | None:
    return Image.objects.filter(job=job, kind=_main_kind(job), index=0).first()


def store_picture(job: Job, picture: imaging.Picture) -> Image:
    """Store a job's picture (and a grid's four tiles), each a PNG with two WebP thumbnails.

    All rows are inserted in one transaction, so a job has either every image or none. The
    files are written first, under names unique to this run (a storage that overwrites, like
    S3 by default, must not let a losing run clobber or delete the winner's files); a run
    that loses the race to a concurrent one deletes its own files and returns the winner's.
    """
    kind = _main_kind(job)
    existing = _main_image(job)
    if existing is not None:
        return existing
    made = imaging.renditions(picture, grid=kind == Image.Kind.GRID)
    # The whole picture at index 0, then tiles 1-4 (left to right, top to bottom).
    pieces = [(kind if index == 0 else Image.Kind.TILE, index, r) for index, r in enumerate(made)]
    run = secrets.token_hex(4)
    written: list[str] = []  # storage names of the files this run wrote
    try:
        images = [_image_with_files(job, k, index, r, run, written) for k, index, r in pieces]
        with transaction.atomic():
            for image in images:
                image.save()
    except IntegrityError:
        # A concurrent ingest stored them first; drop our copy of the files.
        _delete_files(written)
        return Image.objects.get(job=job, kind=kind, index=0)
    except BaseException:
        _delete_files(written)
        raise
    return images[0]


def _image_with_files(
    job: Job,
    kind: str,
    index: int,
    rendition: imaging.Rendition,
    run: str,
    written: list[str],
) -> Image:
    """An unsaved Image row whose PNG and thumbnails are already in storage."""
    picture = rendition.png
    small, large = rendition.thumbs  # imaging.THUMB_WIDTHS: the small one, then the large
    image = Image(
        job=job,
        kind=kind,
        index=index,
        width=picture.width,
        height=picture.height,
        thumb_width=small.width,
        thumb_height=small.height,
        thumb_large_width=large.width,
        thumb_large_height=large.height,
        bytes=len(picture.data),
        sha256=picture.sha256,
        content_type=picture.content_type,
    )
    stem = f"{kind}{index or ''}-{run}"
    for field, data, name in (
        (image.file, picture.data, f"{stem}.png"),
        (image.thumbnail, small.data, f"{stem}-{imaging.THUMB_WIDTH}.webp"),
        (image.thumbnail_large, large.data, f"{stem}-{imaging.THUMB_LARGE_WIDTH}.webp"),
    ):
        field.save(name, ContentFile(data), save=False)
        written.append(field.name)
    return image


def _delete_files(names: list[str]) -> None:
    storage = Image._meta.get_field("file").storage
    for name in names:
        try:
            storage.delete(name)
        except Exception:  # best effort: an orphan file is better than a masked error
            logger.exception("could not delete %s", name)


# --- deleted jobs -----------------------------------------------------------------------


def purge_images(job_id: int) -> None:
    """Remove the stored files of a job its owner deleted (idempotent)."""
    job = Job.objects.filter(pk=job_id, deleted_at__isnull=False).first()
    if job is None:
        return
    for image in Image.objects.filter(job=job):
        for field in (image.file, image.thumbnail, image.thumbnail_large):
            if field:
                field.delete(save=False)
        image.delete()
