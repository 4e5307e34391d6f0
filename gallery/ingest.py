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
        image = _image_with_files(job, kind, 0, rendition, secrets.token_hex(4), written)
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
                _tile_with_files(job, index, tile, run, written)
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
    if Job.objects.filter(pk=job.pk, deleted_at__isnull=False).exists():
        purge_images(job.pk)  # deleted while this ran: its purge may have missed these


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
    small, *rest = rendition.thumbs  # imaging.THUMB_WIDTHS: the small one, the large if made
    large = rest[0] if rest else None
    image = Image(
        job=job,
        kind=kind,
        index=index,
        width=picture.width,
        height=picture.height,
        thumb_width=small.width,
        thumb_height=small.height,
        thumb_large_width=large.width if large else 0,
        thumb_large_height=large.height if large else 0,
        bytes=len(picture.data),
        sha256=picture.sha256,
        content_type=picture.content_type,
    )
    stem = f"{kind}{index or ''}-{run}"
    files = [
        (image.file, picture.data, f"{stem}.png"),
        (image.thumbnail, small.data, f"{stem}-{imaging.THUMB_WIDTH}.webp"),
    ]
    if large is not None:
        files.append(
            (image.thumbnail_large, large.data, f"{stem}-{imaging.THUMB_LARGE_WIDTH}.webp")
        )
    for field, data, name in files:
        field.save(name, ContentFile(data), save=False)
        written.append(field.name)
    return image


def _tile_with_files(
    job: Job, index: int, tile: imaging.TileRendition, run: str, written: list[str]
) -> Image:
    """An unsaved tile row whose thumbnails are already in storage; its PNG is to come."""
    small, large = tile.thumbs
    image = Image(
        job=job,
        kind=Image.Kind.TILE,
        index=index,
        width=tile.width,
        height=tile.height,
        thumb_width=small.width,
        thumb_height=small.height,
        thumb_large_width=large.width,
        thumb_large_height=large.height,
        bytes=0,
        sha256="",
        content_type="image/png",
    )
    stem = f"tile{index}-{run}"
    for field, data, name in (
        (image.thumbnail, small.data, f"{stem}-{imaging.THUMB_WIDTH}.webp"),
        (image.thumbnail_large, large.data, f"{stem}-{imaging.THUMB_LARGE_WIDTH}.webp"),
    ):
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
    grid = Image.objects.filter(job_id=image.job_id, kind=Image.Kind.GRID, index=0).first()
    if grid is None:
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
    if Job.objects.filter(pk=image.job_id, deleted_at__isnull=False).exists():
        purge_images(image.job_id)  # deleted while this ran: its purge may have missed it
        raise PictureUnavailable("This picture was deleted.")
    image.refresh_from_db(fields=["file", "bytes", "sha256"])
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
    if job.mask:  # Vary (Region)'s region goes with the job's pictures
        job.mask.delete(save=False)
        Job.objects.filter(pk=job.pk).update(mask="")
