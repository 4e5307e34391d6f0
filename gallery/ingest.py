"""Copying a finished job's picture into our storage, then ending the job, once.

Runs at least once, and often twice at once (the poll and a webhook's read both see the
result): a run first takes the job's ingest lease, so one downloads and stores while the
other returns. A run killed mid-way holds the lease until its due time, when the sweeper
queues the next. Should two runs still overlap, the image rows are unique per (job, kind,
index), a second run finds them and only ends the job, and the job ends with a
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

from gallery import downloads, imaging, lifecycle, previews, queue, references, upstream
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
    now = timezone.now()
    due = now + due_after()  # the lease lasts until the sweeper would restart the ingest
    claimed = (
        Job.objects.filter(pk=job.pk)
        .filter(Job.ingest_free_q(now))
        .update(ingest_attempts=F("ingest_attempts") + 1, ingest_due_at=due, ingest_lease_until=due)
    )
    if not claimed:
        return  # another run is storing it (should that run die, the sweeper restarts one)
    if _main_image(job) is not None:
        # Stored by an earlier run that did not get to end the job (crash, redelivery).
        _succeed(job)
        return
    if job.writes_prompts:
        picture, error = _own_picture(job)
    else:
        allowed, private = upstream.image_hosts(job.provider)
        picture, error = _fetch_picture(job.result_url, allowed, private)
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
    _succeed(job)


def _succeed(job: Job) -> None:
    """End the job as soon as what its card shows is stored; the rest of its pictures are
    made afterwards, in the previews queue (`complete`)."""
    with transaction.atomic():
        if lifecycle.succeed(job):
            queue.renditions(job)


def _ingest_budget() -> float:
    """Seconds all download attempts of one ingest may take together."""
    task_timeout = float(settings.Q_CLUSTER.get("timeout") or 90)
    return max(5.0, task_timeout - INGEST_STORE_RESERVE)


def _fetch_picture(
    url: str, allowed: set[str], private: set[str]
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
                private_hosts=private,
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


def _own_picture(
    job: Job,
) -> tuple[imaging.Picture | None, downloads.ImageFetchError | None]:
    """The user's own picture a Describe was made from, from our storage: no download."""
    kept = references.of(job)
    if not kept:
        return None, downloads.ImageFetchError("The described picture is gone.", permanent=True)
    try:
        with kept[0].file.open("rb") as stored:
            return imaging.decode(stored.read()), None
    except (OSError, downloads.ImageFetchError) as exc:
        return None, downloads.ImageFetchError(f"The described picture: {exc}", permanent=True)


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
    """Store what a finished job needs to show: its picture, a PNG, with its small WebP
    thumbnail (`imaging.first_rendition`). The large thumbnail and a grid's four tiles come
    after the job has ended (`complete`).

    The files are written first, under names unique to this run (a storage that overwrites,
    like S3 by default, must not let a losing run clobber or delete the winner's files); a
    run that loses the race to a concurrent one deletes its own files and returns the
    winner's.
    """
    kind = _main_kind(job)
    existing = _main_image(job)
    if existing is not None:
        return existing
    rendition = imaging.first_rendition(picture)
    written: list[str] = []  # storage names of the files this run wrote
    try:
        image = _image_with_files(
            job,
            kind,
            0,
            width=rendition.png.width,
            height=rendition.png.height,
            thumbs=rendition.thumbs,
            png=rendition.png,
            run=secrets.token_hex(4),
            written=written,
        )
        with transaction.atomic():  # a savepoint: the caller's transaction survives a loss
            image.save()
    except IntegrityError:
        # A concurrent ingest stored it first; drop our copy of the files.
        _delete_files(written)
        return Image.objects.get(job=job, kind=kind, index=0)
    except BaseException:
        _delete_files(written)
        raise
    return image


# A finished job whose large thumbnail is still missing this long after it ended lost its
# `complete` task: the sweeper queues another, for jobs ended within COMPLETE_WITHIN.
COMPLETE_DUE_AFTER = timedelta(minutes=10)
COMPLETE_WITHIN = timedelta(days=1)


def complete(job_id: int) -> None:
    """The rest of a finished job's pictures: its picture's large thumbnail and, for a grid,
    the four tiles' rows with their thumbnails (each tile's PNG is cut when first asked for:
    `full_picture`). Made from our stored copy after the job shows as finished, so nobody
    waits for them.

    Idempotent: tiles are inserted together (unique per job, kind and index), and the large
    thumbnail is recorded last, so a picture without one says this step is still to do
    (`Image.objects.incomplete`, which the sweeper reads). A job deleted meanwhile keeps
    none of what this run wrote.
    """
    job = Job.objects.filter(pk=job_id, status=Job.Status.SUCCEEDED, deleted_at=None).first()
    main = _main_image(job) if job is not None else None
    if job is None or main is None or main.thumbnail_large:
        return
    with main.file.open("rb") as stored:
        picture = imaging.decode(stored.read())
    grid = main.kind == Image.Kind.GRID
    large, tiles = imaging.later_renditions(picture, grid=grid)
    run = secrets.token_hex(4)
    written: list[str] = []
    try:
        if grid and not job.images.filter(kind=Image.Kind.TILE).exists():
            rows = [
                _image_with_files(
                    job,
                    Image.Kind.TILE,
                    index,
                    width=tile.width,
                    height=tile.height,
                    thumbs=tile.thumbs,
                    png=None,
                    run=run,
                    written=written,
                )
                for index, tile in enumerate(tiles, start=1)
            ]
            try:
                with transaction.atomic():
                    for row in rows:
                        row.save()
            except IntegrityError:  # a concurrent run stored them first
                _delete_files(written)
                written.clear()
        field = main.thumbnail_large
        name = field.storage.save(
            field.field.generate_filename(
                main, f"{main.kind}-{run}-{imaging.THUMB_LARGE_WIDTH}.webp"
            ),
            ContentFile(large.data),
        )
        written.append(name)
        recorded = Image.objects.filter(pk=main.pk, thumbnail_large="").update(
            thumbnail_large=name, thumb_large_width=large.width, thumb_large_height=large.height
        )
        if not recorded:
            _delete_files([name])
    except BaseException:
        _delete_files(written)
        raise
    _purge_if_deleted(job.pk)


def _image_with_files(
    job: Job,
    kind: str,
    index: int,
    *,
    width: int,
    height: int,
    thumbs: tuple[imaging.Picture, ...],
    png: imaging.Picture | None,
    run: str,
    written: list[str],
) -> Image:
    """An unsaved Image row whose PNG and thumbnails are already in storage. A tile comes
    without its PNG (`png` None): that is cut when first asked for (`full_picture`)."""
    small, *rest = thumbs  # imaging.THUMB_WIDTHS: the small one, the large if made
    large = rest[0] if rest else None
    image = Image(
        job=job,
        kind=kind,
        index=index,
        width=width,
        height=height,
        thumb_width=small.width,
        thumb_height=small.height,
        thumb_large_width=large.width if large else 0,
        thumb_large_height=large.height if large else 0,
        bytes=len(png.data) if png else 0,
        sha256=png.sha256 if png else "",
        content_type=png.content_type if png else "image/png",
    )
    stem = f"{kind}{index or ''}-{run}"
    files = [(image.thumbnail, small.data, f"{stem}-{imaging.THUMB_WIDTH}.webp")]
    if png is not None:
        files.append((image.file, png.data, f"{stem}.png"))
    if large is not None:
        files.append(
            (image.thumbnail_large, large.data, f"{stem}-{imaging.THUMB_LARGE_WIDTH}.webp")
        )
    for field, data, name in files:
        field.save(name, ContentFile(data), save=False)
        written.append(field.name)
    return image


class PictureUnavailable(Exception):
    """A tile's PNG could not be cut from its grid just now (the storage failed)."""


def full_picture(image: Image) -> Image:
    """The image with its PNG stored. A grid's tile gets its PNG the first time someone asks
    for it (to see it at full size, download it or send it on): most tiles are only ever
    seen as thumbnails, and cutting and encoding all four of every job was a large share of
    the worker's work. It is cut from the grid we stored, in the request that asks.

    Requests racing on a tile each cut it, under names unique to each; the first recorded
    wins, the others delete their copy. A job deleted meanwhile keeps none of it. Raises
    PictureUnavailable when the grid cannot be read or the tile stored.
    """
    if image.file or image.kind != Image.Kind.TILE:
        return image
    grid = _main_image(image.job)
    if grid is None or grid.kind != Image.Kind.GRID:
        raise PictureUnavailable(f"The grid of tile {image.index} is gone.")
    name = ""
    try:
        with grid.file.open("rb") as stored:
            png = imaging.tile_png(imaging.decode(stored.read()), image.index)
        field = image.file
        name = field.storage.save(
            field.field.generate_filename(image, f"tile{image.index}-{secrets.token_hex(4)}.png"),
            ContentFile(png.data),
        )
    except Exception as exc:  # the storage backend's own errors (OSError, boto's, ...)
        logger.exception("cutting tile %s of %s failed", image.index, grid.job_id)
        if name:
            _delete_files([name])
        raise PictureUnavailable(str(exc)) from exc
    recorded = Image.objects.filter(pk=image.pk, file="").update(
        file=name, bytes=len(png.data), sha256=png.sha256
    )
    if not recorded:  # a concurrent request stored it first
        _delete_files([name])
    if _purge_if_deleted(image.job_id):
        raise PictureUnavailable("This picture was deleted.")
    image.refresh_from_db(fields=["file", "bytes", "sha256"])
    return image


def _purge_if_deleted(job_id: int) -> bool:
    """Remove what a run wrote for a job deleted while it ran (the deletion's purge may have
    read the rows before this run added to them). Returns whether the job was deleted."""
    if not Job.objects.filter(pk=job_id, deleted_at__isnull=False).exists():
        return False
    purge_images(job_id)
    return True


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
    if job.mask:  # Vary (Region)'s region goes with the job's pictures
        job.mask.delete(save=False)
        Job.objects.filter(pk=job.pk).update(mask="")
