"""Copying a finished job's picture into our storage, then ending the job, once.

Runs at least once and may run concurrently with itself: the image rows are unique per
(job, kind, index), a second run finds them and only ends the job, and the job ends with a
compare-and-set (gallery.lifecycle). A picture that cannot be fetched after the retries, or
cannot be stored, fails the job as image_unavailable, which releases its hold.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from gallery import downloads, imaging, lifecycle, previews, upstream
from gallery.models import Image, Job

logger = logging.getLogger(__name__)

INGEST_ATTEMPTS = 3

# Room left inside django-q's task timeout for storing the images and ending the job: the
# downloads share what remains, so a slow host never gets the task killed mid-way (a killed
# ingest would leave its job running with nobody to end it).
INGEST_STORE_RESERVE = 20.0
# Tries at writing the files and rows when the storage backend fails (an S3 hiccup).
STORE_ATTEMPTS = 3


# An ingest that has not ended its job this long after it started was killed: the sweeper
# (gallery.sweep) hands the job to a new one, at most RUNS times in all.
RUNS = 4


def due_after() -> timedelta:
    """How long one ingest may take: django-q's task timeout, and a margin."""
    return timedelta(seconds=float(settings.Q_CLUSTER.get("timeout") or 90) + 30)


def ingest(job_id: int) -> None:
    job = Job.objects.filter(pk=job_id).first()
    if job is None or not job.awaits_ingest:
        return
    Job.objects.filter(pk=job.pk).update(
        ingest_attempts=F("ingest_attempts") + 1, ingest_due_at=timezone.now() + due_after()
    )
    if _main_image(job) is not None:
        # Stored by an earlier run that did not get to end the job (crash, redelivery).
        lifecycle.succeed(job)
        return
    allowed = set(settings.MJ_IMAGE_HOSTS)
    with upstream.connect(job.provider, audited=False) as provider:
        allowed |= provider.image_hosts()
    picture, error = _fetch_picture(job.result_url, allowed)
    if picture is None:
        lifecycle.fail(
            job,
            kind=Job.FailKind.IMAGE_UNAVAILABLE,
            note=str(error) if error else "The image could not be fetched.",
        )
        return
    stored, reason = _store_with_retries(job, picture)
    if not stored:
        lifecycle.fail(job, kind=Job.FailKind.IMAGE_UNAVAILABLE, note=reason)
        return
    lifecycle.succeed(job)


def _ingest_budget() -> float:
    """Seconds all download attempts of one ingest may take together."""
    task_timeout = float(settings.Q_CLUSTER.get("timeout") or 90)
    return max(5.0, task_timeout - INGEST_STORE_RESERVE)


def _fetch_picture(
    url: str, allowed: set[str]
) -> tuple[imaging.Picture | None, downloads.ImageFetchError | None]:
    """Download and validate, retrying transient errors within the ingest's time budget."""
    budget_ends = time.monotonic() + _ingest_budget()
    error: downloads.ImageFetchError | None = None
    for attempt in range(INGEST_ATTEMPTS):
        remaining = budget_ends - time.monotonic()
        if remaining < 1:
            break
        try:
            data = downloads.download(
                url,
                allowed_hosts=allowed,
                timeout=min(float(settings.MJ_INGEST_TIMEOUT), remaining),
            )
            return imaging.decode(data), None
        except downloads.ImageFetchError as exc:
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
        except downloads.ImageFetchError as exc:
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
    previews.purge(job)
