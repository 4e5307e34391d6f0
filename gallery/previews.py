"""In-progress previews, kept by us: the worker fetches each new one once, as a small WebP in
our storage, and the studio serves only that copy, so no web request waits on a provider.

A progress report bringing a new preview URL queues `fetch` (gallery.sync); the task reads
the job's latest URL when it runs, so reports that come faster than it are coalesced. A
preview that cannot be fetched is skipped for that step; the card keeps the one before.
"""

from __future__ import annotations

import logging
import zlib

from django.core.files.base import ContentFile

from gallery import downloads, imaging, upstream
from gallery.models import Job

logger = logging.getLogger(__name__)

PREVIEW_WIDTH = 384
PREVIEW_QUALITY = 70
PREVIEW_MAX_BYTES = 5_000_000
PREVIEW_TIMEOUT = 10.0


def wanted(job: Job) -> bool:
    """The job shows a preview we have not made yet."""
    return bool(job.preview_url) and job.preview_url != job.preview_source and job.is_in_flight


def fetch(job_id: int) -> None:
    job = Job.objects.filter(pk=job_id).first()
    if job is None or not wanted(job):
        return
    url = job.preview_url
    allowed, private = upstream.image_hosts(job.provider)
    try:
        data = downloads.download(
            url,
            allowed_hosts=allowed,
            private_hosts=private,
            max_bytes=PREVIEW_MAX_BYTES,
            timeout=PREVIEW_TIMEOUT,
        )
        picture = imaging.thumbnail(imaging.decode(data), PREVIEW_WIDTH, PREVIEW_QUALITY)
    except downloads.ImageFetchError as exc:
        logger.info("preview of %s skipped: %s", job.code, exc)
        Job.objects.filter(pk=job.pk, preview_url=url).update(preview_source=url)
        return
    keep(job, url, picture.data)


def keep(job: Job, url: str, data: bytes) -> bool:
    """Store the preview made from `url` as the job's, replacing the one before. Two runs at
    once: the first to record its file wins, the other deletes its own."""
    field = job.preview_image
    before = field.name or ""
    storage = field.storage
    name = storage.save(
        field.field.generate_filename(job, f"{zlib.crc32(url.encode()):08x}.webp"),
        ContentFile(data),
    )
    recorded = Job.objects.filter(pk=job.pk, preview_image=before).update(
        preview_image=name, preview_source=url
    )
    if not recorded:
        _delete(storage, name)
    elif before and before != name:
        _delete(storage, before)
    return recorded == 1


def _delete(storage: object, name: str) -> None:
    try:
        storage.delete(name)  # type: ignore[attr-defined]
    except Exception:  # best effort: an orphan file is better than a failed task
        logger.exception("could not delete the preview %s", name)


def purge(job: Job) -> None:
    """Remove a deleted job's preview (idempotent)."""
    if job.preview_image:
        _delete(job.preview_image.storage, job.preview_image.name)
        Job.objects.filter(pk=job.pk).update(preview_image="")
