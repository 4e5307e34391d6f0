"""The one scheduled sweeper (every minute): every state a job can wait in has a bound, and
when a bound passes, something moves the job on.

- Waiting here for a slot or a retry: bound `next_attempt_at` (LOST_DISPATCH_AFTER for a
  lost dispatch); the poll tick dispatches it again (`dispatch.redispatch_due`).
- At the provider: bound the mode's deadline (MJ_DEADLINES), then one last read; the poll
  tick fails it as a timeout (`sync.tick`).
- For the user's remix prompt: bound MJ_REMIX_EXPIRY; this sweeper cancels it and its
  credits are released.
- For its images to be stored: bound `ingest_due_at` (one ingest's run time); this sweeper
  hands it to another ingest, each restart waiting longer, at most `ingest.RUNS` in all,
  then fails it as image_unavailable.
- For the rest of its pictures, once it shows as finished (its large thumbnail and a grid's
  tiles): bound `ingest.COMPLETE_DUE_AFTER` after it ended; this sweeper queues the step
  again, for jobs that ended within `ingest.COMPLETE_WITHIN`.

The poll ticks run as one chain per provider; this sweeper also restarts a chain that died.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from gallery import ingest, lifecycle, queue, sync
from gallery.models import Image, Job

logger = logging.getLogger(__name__)

# Jobs moved on per kind and sweep: a backlog is worked through over a few sweeps.
BATCH = 200


def run() -> None:
    now = timezone.now()
    expire_remix_questions(now)
    restart_ingests(now)
    restart_renditions(now)
    sync.kick_all()


def expire_remix_questions(now: datetime) -> int:
    expired = 0
    for job in Job.objects.remix_expired(now)[:BATCH]:
        expired += lifecycle.cancel(job, note="No remix prompt came in time.")
    return expired


def restart_ingests(now: datetime) -> int:
    """Hand results whose ingest was lost or killed to a new one; give up after RUNS."""
    due = Q(ingest_due_at__lt=now) | Q(ingest_due_at__isnull=True)
    restarted = 0
    for job in Job.objects.awaiting_ingest().filter(due)[:BATCH]:
        if job.ingest_attempts >= ingest.RUNS:
            lifecycle.fail(
                job,
                kind=Job.FailKind.IMAGE_UNAVAILABLE,
                note=f"The images could not be stored in {job.ingest_attempts} tries.",
            )
            continue
        with transaction.atomic():
            # Compare-and-set on the due time: two sweepers never both queue one job.
            # Each restart waits longer (backoff): a storage outage gets time to pass.
            later = ingest.due_after() + timedelta(seconds=30 * 2**job.ingest_attempts)
            claimed = Job.objects.filter(pk=job.pk, ingest_due_at=job.ingest_due_at).update(
                ingest_due_at=now + later
            )
            if claimed:
                logger.warning("ingest of %s was lost or killed; queued again", job.code)
                queue.ingest(job)
                restarted += 1
    return restarted


def restart_renditions(now: datetime) -> int:
    """Queue again the rest of the pictures of jobs whose `complete` step was lost."""
    incomplete = Image.objects.incomplete(
        ended_after=now - ingest.COMPLETE_WITHIN, ended_before=now - ingest.COMPLETE_DUE_AFTER
    ).select_related("job")
    restarted = 0
    for image in incomplete.order_by("job__finished_at")[:BATCH]:
        logger.warning("the pictures of %s were not completed; queued again", image.job.code)
        queue.renditions(image.job)
        restarted += 1
    return restarted
