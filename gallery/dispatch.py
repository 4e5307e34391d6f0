"""Sending jobs to their provider: within the account's capacity, once, retried with backoff.

A dispatch claims its job with a lease before submitting (`Job.lease_free_q` says when
none holds it), so a redelivered task does not create a second provider task while the
first run is alive. Jobs that find no free slot wait here and keep their place, oldest first.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from gallery import fitting, lifecycle, queue, references, regions, routing, sync, upstream
from gallery.models import Job, PollLease, ProviderAccount, SuspectedDuplicate
from gallery.providers import ProviderError
from gallery.providers.base import Submission, TaskStatus, button_from_dict

logger = logging.getLogger(__name__)

DISPATCH_LEASE = timedelta(seconds=120)
# A queued job whose dispatch task has not run after this long is dispatched again.
LOST_DISPATCH_AFTER = timedelta(seconds=60)
MODAL_ATTEMPTS = 3
# A busy provider is asked again at least this often while the job may still wait.
BUSY_BACKOFF_CAP = timedelta(seconds=30)


def backoff(attempt: int) -> timedelta:
    return timedelta(seconds=min(300, 2 ** max(0, attempt)))


def dispatch(job_id: int) -> None:
    if not _claim(job_id):
        return  # already dispatched, leased by another run, ended, not due, or no free slot
    job = Job.objects.select_related("parent").get(pk=job_id)
    now = timezone.now()
    # One read of its account serves the check here and the bill below.
    account = ProviderAccount.objects.named(job.provider)
    # Its account was switched off while it waited: an imagine goes elsewhere.
    why = f"Account {job.provider} was disabled while this job waited."
    if not account.enabled and job.submit_sent_at is None and _moved(job, why):
        return
    if job.submit_sent_at is not None:
        looked = _look_for_task(job)
        if looked is None:
            return  # found and adopted, or the look must be repeated
        # The grace passed and no task reported this job's state: send it again, and tell the
        # operator that the provider may now hold two tasks for it.
        SuspectedDuplicate.objects.create(
            job=job,
            provider=job.provider,
            reason=f"Sent again: the answer to the submit of {job.submit_sent_at:%Y-%m-%d %H:%M:%S}"
            f" was lost, and no task reporting this job was found within MJ_SUBMIT_GRACE{looked}.",
        )
    # From here until its answer is recorded, the submit's outcome is unknown.
    Job.objects.filter(pk=job.pk).update(submit_sent_at=now)
    job.submit_sent_at = now
    try:
        submission = _submit(job)
    except ProviderError as exc:
        _failed(job, exc)
        return
    if submission is None:
        lifecycle.fail(
            job,
            kind=Job.FailKind.PROVIDER_ERROR,
            note="The job this button belongs to is no longer available.",
        )
        return
    submission = _fitted(job, submission)
    if submission is None:
        return
    status = Job.Status.MODAL if submission.status is TaskStatus.MODAL else Job.Status.SUBMITTED
    # Vary (Region) and Custom Zoom: the question is answered with what the user gave.
    answer = job.own_modal_answer() if status == Job.Status.MODAL else {}
    now = timezone.now()
    try:
        moved = job.transition(
            status,
            **answer,
            provider_job_id=submission.provider_job_id,
            **account.charge_for(job.action, job.mode),
            final_prompt=submission.final_prompt or job.final_prompt,
            submitted_at=now,
            deadline_at=job.deadline_from(now),
            dispatch_lease_until=None,
            next_attempt_at=None,
            submit_sent_at=None,
        )
    except IntegrityError:
        logger.error("provider id %s already belongs to another job", submission.provider_job_id)
        lifecycle.fail(job, kind=Job.FailKind.PROVIDER_ERROR, note="Duplicate provider task id.")
        return
    if moved and answer:
        queue.submit_modal(job)
    if not moved:
        job.refresh_from_db()
        if job.provider_job_id == submission.provider_job_id:
            # Its notifyHook came before this answer was recorded and adopted the same task.
            logger.debug("job %s was adopted by its own task's webhook first", job.code)
        else:
            logger.warning("job %s changed while it was being submitted", job.code)
    sync.kick(job.provider)


def _look_for_task(job: Job) -> str | None:
    """Before a lost submit is sent again: look for its task in the provider's task list,
    where the provider offers one (MJ_TASK_LIST). None when the job is settled here (its task
    was found and adopted, or the list could not be read and the look is tried again later);
    otherwise what the look found, said for the operator's record."""
    try:
        with upstream.connect(job.provider, job) as provider:
            if not provider.lists_tasks:
                return ""
            snapshot = provider.find_task(state=str(job.code))
    except ProviderError as exc:
        if job.attempts >= settings.MJ_DISPATCH_MAX_ATTEMPTS:
            return f" (the task list could not be read: {exc.message})"
        job.update_if_status(
            dispatch_lease_until=None,
            next_attempt_at=timezone.now() + min(backoff(job.attempts), BUSY_BACKOFF_CAP),
            fail_note=f"Looking for the task of a lost submit: {exc.message}"[:4000],
        )
        return None
    if snapshot is None:
        return ", nor in the provider's task list"
    if adopt(job.provider, snapshot.provider_job_id, str(job.code)) is None:
        # Settled by someone else meanwhile, or an id we cannot keep: free the lease so the
        # next dispatch decides again.
        job.update_if_status(dispatch_lease_until=None)
    return None


def _fitted(job: Job, submission: Submission) -> Submission | None:
    """The answer fitted to our columns, or None when its task id cannot be kept (the job
    is failed then, with the reason)."""
    fitted, problem = fitting.submission(submission)
    if problem:
        lifecycle.fail(job, kind=Job.FailKind.PROVIDER_ERROR, note=problem)
        return None
    return fitted


def _moved(job: Job, why: str) -> bool:
    """Move a new imagine its account cannot take to another account (gallery.routing) and
    queue it there; False when it cannot move."""
    old = job.provider
    if routing.reroute(job) is None:
        return False
    job.update_if_status(
        dispatch_lease_until=None,
        next_attempt_at=None,
        submit_sent_at=None,
        fail_note=f"Moved from account {old} to {job.provider}: {why}"[:4000],
    )
    place(job)
    return True


def _give_up(job: Job, exc: ProviderError) -> None:
    """Fail the job with what the provider said (its words) and our account of it."""
    lifecycle.fail(job, kind=exc.fail_kind, reason=exc.words, note=exc.message)


def _submit(job: Job) -> Submission | None:
    """The provider's answer to the job's submit; None when its parent's button is gone."""
    with upstream.connect(job.provider, job) as provider:
        state = str(job.code)
        if job.action == Job.Action.IMAGINE:
            pictures = references.inputs(job)
            extra = {"images": pictures} if pictures else {}
            return provider.imagine(prompt=job.prompt, mode=job.mode, state=state, **extra)
        if job.action == Job.Action.BLEND:
            pictures = references.inputs(job)
            return provider.blend(
                images=pictures, dimensions=job.variant or "square", mode=job.mode, state=state
            )
        if job.action == Job.Action.DESCRIBE:
            (picture,) = references.inputs(job)
            return provider.describe(image=picture, mode=job.mode, state=state)
        parent = job.parent
        button = job.parent_button()
        if parent is None or button is None or not parent.provider_job_id:
            return None
        asks = bool(job.own_modal_answer())
        return provider.action(
            parent_job_id=parent.provider_job_id,
            button=button_from_dict(button),
            mode=job.mode,
            state=str(job.code),
            remix=job.remix,
            # PiAPI lists the prompt as required on variations; a remix sends the edited
            # one, Vary (Region) and Custom Zoom the user's; a plain reroll keeps the parent's.
            prompt=job.prompt if job.remix or asks or job.action == Job.Action.VARIATION else "",
            mask=regions.stored_mask(job),
        )


def _claim(job_id: int) -> bool:
    """Lease the job for one submit if it is due and the provider account has a free slot.

    The provider's lease row is locked while counting, so two dispatches never both take the
    last slot; jobs that find no slot wait locally and keep their place (oldest first).
    """
    now = timezone.now()
    job = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).first()
    if job is None:
        return False
    PollLease.objects.get_or_create(provider=job.provider)
    with transaction.atomic():
        PollLease.objects.select_for_update().get(provider=job.provider)
        free, ahead = _slots_for(job, now)
        due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        waiting = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).filter(due)
        if not waiting.sendable(now).exists():
            return False  # an earlier submit's outcome is still unknown
        if ahead >= free:
            # In line for a slot: `fill_slots` sends it when one frees up.
            waiting.update(
                slot_position=ahead - max(free, 0), next_attempt_at=None, dispatch_queued_at=None
            )
            sync.kick(job.provider)
            return False
        claimed = waiting.sendable(now).update(
            dispatch_lease_until=now + DISPATCH_LEASE,
            attempts=F("attempts") + 1,
            slot_position=None,
            dispatch_queued_at=None,
        )
    return claimed == 1


def _slots_for(job: Job, now: datetime) -> tuple[int, int]:
    """The account's free slots, and the jobs waiting to be sent that came before this one:
    it may be sent when fewer are ahead of it than there are free slots."""
    free = capacity(job.provider) - Job.objects.occupying(job.provider).count()
    ahead = (
        Job.objects.dispatchable(job.provider)
        .filter(created_at__lt=job.created_at)
        .filter(Job.lease_free_q(now))
        .count()
    )
    return free, ahead


def place(job: Job) -> None:
    """A new job's way to the provider, in the submit's transaction: its dispatch is queued
    when a slot may be free for it; otherwise it takes its place in line, and `fill_slots`
    sends it when a slot frees up, so a burst of submits queues no dispatch task that could
    only find every slot taken. The count is taken without the claim's lock (a submit never
    waits on it): `_claim` has the last word, and a job placed in line wrongly is sent by
    the next poll tick's `fill_slots`."""
    now = timezone.now()
    free, ahead = _slots_for(job, now)
    if ahead < free:
        queue.dispatch(job)
        return
    job.update_if_status(slot_position=ahead - max(free, 0), next_attempt_at=None)
    provider = job.provider
    transaction.on_commit(lambda: sync.kick(provider))  # the lease row is not held meanwhile


def _failed(job: Job, exc: ProviderError) -> None:
    """A submit the provider did not take: fail the job, or try again later.

    If the request may have reached the provider (its answer was lost), the outcome is
    unknown: the job waits MJ_SUBMIT_GRACE for the task to be found (`adopt`) before it is
    sent again. A busy provider (HTTP 429, a full queue) is tried again for as long as the job
    may wait (its mode's deadline from when it was made), with backoff capped at
    BUSY_BACKOFF_CAP; any other transient error MJ_DISPATCH_MAX_ATTEMPTS times."""
    now = timezone.now()
    # Refused before the provider made anything: another account takes an imagine at once.
    if routing.refused(job.provider, exc) and _moved(job, exc.message):
        return
    if exc.maybe_sent and not exc.permanent:
        job.update_if_status(
            dispatch_lease_until=None,
            next_attempt_at=now + timedelta(seconds=settings.MJ_SUBMIT_GRACE),
            fail_note=f"{exc.message} It may have reached the provider: waiting to find out.",
        )
        sync.kick(job.provider)
        return
    if exc.busy:
        give_up = exc.permanent or job.deadline_from(job.created_at) <= now
        delay = min(backoff(job.attempts), BUSY_BACKOFF_CAP)
    else:
        give_up = exc.permanent or job.attempts >= settings.MJ_DISPATCH_MAX_ATTEMPTS
        delay = backoff(job.attempts)
    if give_up:
        _give_up(job, exc)
        return
    logger.info("dispatch of %s failed (%r); retrying in %s", job.code, exc, delay)
    job.update_if_status(
        dispatch_lease_until=None,
        next_attempt_at=now + delay,
        submit_sent_at=None,  # answered: the provider made nothing
        fail_note=exc.message[:4000],
    )
    sync.kick(job.provider)


def adopt(provider: str, provider_job_id: str, state: Any) -> Job | None:
    """A task the provider reports (a webhook) with one of our job codes as its `state`.

    A job whose submit's answer was lost takes it as its own task: it was made after all,
    and is not sent again. A task reporting a job that has another task, or never sent one,
    is recorded as a suspected duplicate. Returns the job that owns the task, if any.
    """
    try:
        code = uuid.UUID(str(state))
    except ValueError:
        return None
    if fitting.task_id(provider_job_id):
        return None  # not an id we could keep, so not one we could follow
    job = Job.objects.filter(provider=provider, code=code).first()
    if job is None or job.provider_job_id == provider_job_id:
        return job
    if job.provider_job_id or job.submit_sent_at is None or job.status != Job.Status.QUEUED:
        SuspectedDuplicate.objects.get_or_create(
            job=job,
            provider=provider,
            provider_job_id=provider_job_id[:64],
            defaults={"reason": "A task reports this job as its state but is not its task."},
        )
        return None
    sent = job.submit_sent_at
    moved = job.transition(
        Job.Status.SUBMITTED,
        expect={"provider_job_id": "", "submit_sent_at": sent},
        provider_job_id=provider_job_id,
        **_billed(job),
        submitted_at=sent,
        deadline_at=job.deadline_from(sent),
        submit_sent_at=None,
        dispatch_lease_until=None,
        next_attempt_at=None,
    )
    if not moved:
        return None
    logger.info(
        "job %s adopted its task %s, reported before the submit's answer was recorded",
        job.code,
        provider_job_id,
    )
    sync.kick(provider)
    return job


def _billed(job: Job) -> dict[str, Any]:
    """What the job's account bills for the task it just took (its model id and price)."""
    return ProviderAccount.objects.named(job.provider).charge_for(job.action, job.mode)


def capacity(provider: str) -> int:
    """Slots of provider account `provider`: tasks it runs at once plus tasks it queues."""
    return ProviderAccount.objects.named(provider).connection().capacity


def redispatch_due(provider: str, now: datetime) -> None:
    """Queued jobs whose backoff has passed, or whose dispatch task got lost. Jobs waiting for
    a slot are not among them: `fill_slots` sends those when slots free up."""
    due = (
        Job.objects.dispatchable(provider)
        .sendable(now)
        .filter(slot_position__isnull=True)
        .filter(
            Q(next_attempt_at__lte=now)
            | Q(next_attempt_at__isnull=True, created_at__lt=now - LOST_DISPATCH_AFTER)
        )
        .order_by("created_at", "pk")
        .only("pk", "code")[:50]
    )
    for job in due:
        queue.dispatch(job)


# Jobs in line for a slot whose places are kept up to date; the ones behind keep theirs
# until they move up.
LINE_KEPT = 100


def fill_slots(provider: str, now: datetime) -> int:
    """Send as many jobs waiting for a slot as the account has free slots, oldest first, the
    moment they free up (the poll tick and a re-sync call this once they applied what the
    provider said); the rest learn their new place in line. Returns how many were sent."""
    in_line = Job.objects.dispatchable(provider).sendable(now).filter(slot_position__isnull=False)
    # Dispatches queued for earlier free slots that have not run yet hold those slots.
    sent = Q(dispatch_queued_at__gte=now - LOST_DISPATCH_AFTER)
    line = list(
        in_line.exclude(sent)
        .order_by("created_at", "pk")
        .only("pk", "code", "slot_position", "status")[:LINE_KEPT]
    )
    if not line:
        return 0
    taken = Job.objects.occupying(provider).count() + in_line.filter(sent).count()
    free = max(0, capacity(provider) - taken)
    moved: dict[int, int] = {}
    for place, job in enumerate(line):
        if place < free:
            if job.update_if_status(dispatch_queued_at=now):
                queue.dispatch(job)
        elif job.slot_position != place - free:
            moved[job.pk] = place - free
    Job.objects.place_in_line(moved)
    return min(free, len(line))


def submit_modal(job_id: int) -> None:
    """Send the prompt a user typed for a job waiting in MODAL, then follow the answer's id."""
    now = timezone.now()
    claimed = (
        Job.objects.filter(pk=job_id, status=Job.Status.MODAL)
        .exclude(remix_prompt="")
        .filter(Job.lease_free_q(now))
        .update(dispatch_lease_until=now + DISPATCH_LEASE)
    )
    if claimed != 1:
        return
    job = Job.objects.get(pk=job_id)
    for attempt in range(MODAL_ATTEMPTS):
        try:
            with upstream.connect(job.provider, job) as api:
                submission = api.modal(
                    provider_job_id=job.provider_job_id,
                    prompt=job.remix_prompt,
                    mode=job.mode,
                    mask=regions.stored_mask(job),
                )
            break
        except ProviderError as exc:
            if exc.permanent and job.modal_answered_at is not None:
                # We answered this question before (the card reopened on a lagging report):
                # the provider refusing it again says it has the first answer. Read it.
                _answered(job, job.provider_job_id)
                queue.refresh(job)
                return
            if exc.permanent or attempt == MODAL_ATTEMPTS - 1:
                _give_up(job, exc)
                return
            time.sleep(min(8, 2**attempt))
    submission = _fitted(job, submission)
    if submission is None:
        return
    # trueai answers with the same id, a gateway may hand out a new one: follow the answer.
    _answered(job, submission.provider_job_id)
    sync.kick(job.provider)


def _answered(job: Job, provider_job_id: str) -> None:
    """The remix question is answered: the job waits for the provider again."""
    now = timezone.now()
    job.transition(
        Job.Status.SUBMITTED,
        provider_job_id=provider_job_id,
        # The user rewrote the prompt for this job: it is this job's prompt from now on.
        prompt=job.remix_prompt,
        final_prompt=job.remix_prompt,
        remix_prompt="",
        dispatch_lease_until=None,
        modal_answered_at=now,
        deadline_at=job.deadline_from(now),
    )
