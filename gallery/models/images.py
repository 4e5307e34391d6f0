"""Pictures we keep of finished jobs: copied from the provider, never linked to it."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from gallery.models.jobs import Job


class ImageKind(models.TextChoices):
    GRID = "grid", gettext_lazy("Grid")
    SINGLE = "single", gettext_lazy("Single image")
    TILE = "tile", gettext_lazy("Tile")


def image_path(instance: Image, filename: str) -> str:
    code = instance.job.code.hex
    return f"jobs/{code[:2]}/{code}/{filename}"


class ImageQuerySet(models.QuerySet["Image"]):
    def incomplete(self, ended_after: datetime, ended_before: datetime) -> ImageQuerySet:
        """Whole pictures of finished, kept jobs still waiting for their large thumbnail (and
        a grid for its tiles: gallery.ingest.complete records the large thumbnail last),
        among jobs that ended in the window given."""
        return self.filter(
            kind__in=(ImageKind.GRID, ImageKind.SINGLE),
            index=0,
            thumbnail_large="",
            job__status=Job.Status.SUCCEEDED,
            job__deleted_at__isnull=True,
            job__finished_at__gt=ended_after,
            job__finished_at__lt=ended_before,
        )


class Image(models.Model):
    """A stored picture of a job and its WebP thumbnails.

    A grid job has its grid (index 0) and its four tiles (index 1-4); an upscale has one
    single image. Every row has the picture as a metadata-free PNG (`file`) and two WebP
    thumbnails for a srcset: `thumbnail` (imaging.THUMB_WIDTH wide, the small one, as before)
    and `thumbnail_large` (imaging.THUMB_LARGE_WIDTH). Neither is wider than the picture.
    A job ends as soon as its whole picture and small thumbnail are stored; the large
    thumbnail and a grid's tiles follow (gallery.ingest.complete), so for a moment, and in
    rows stored before the large size existed, there is no `thumbnail_large` (width 0).
    A tile's own PNG is cut from the grid when first asked for (gallery.ingest.full_picture):
    until then its `file` is empty, with `bytes` 0 and no `sha256`.
    """

    # Names of the stored sizes, as the image view's URL spells them.
    SIZE_FULL = "full"
    SIZE_THUMB = "thumb"
    SIZE_THUMB_LARGE = "thumb-large"

    Kind = ImageKind

    # The whole picture of a job, as opposed to one of a grid's tiles.
    WHOLE_KINDS = (Kind.GRID, Kind.SINGLE)
    SIZES = (SIZE_FULL, SIZE_THUMB_LARGE, SIZE_THUMB)

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="images")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Tile position 1-4 (left to right, top to bottom) for tiles; 0 for a whole image.
    index = models.PositiveSmallIntegerField(default=0)
    file = models.FileField(upload_to=image_path, max_length=300, blank=True)
    thumbnail = models.FileField(upload_to=image_path, max_length=300, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    thumb_width = models.PositiveIntegerField(default=0)
    thumb_height = models.PositiveIntegerField(default=0)
    thumbnail_large = models.FileField(upload_to=image_path, max_length=300, blank=True)
    thumb_large_width = models.PositiveIntegerField(default=0)
    thumb_large_height = models.PositiveIntegerField(default=0)
    bytes = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=40, default="image/png")
    created_at = models.DateTimeField(default=timezone.now)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "index"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ImageKind.values), name="image_kind_valid"),
            models.UniqueConstraint(
                fields=["job", "kind", "index"], name="image_job_kind_index_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.job_id}"

    def file_for(self, size: str) -> models.fields.files.FieldFile | None:
        """The stored file of a size (`SIZE_*`), or None when this row has none of it."""
        field = {
            self.SIZE_FULL: self.file,
            self.SIZE_THUMB: self.thumbnail,
            self.SIZE_THUMB_LARGE: self.thumbnail_large,
        }.get(size)
        return field if field else None

    def content_type_for(self, size: str) -> str:
        return self.content_type if size == self.SIZE_FULL else "image/webp"

    @property
    def thumbnail_sizes(self) -> list[tuple[str, int, int]]:
        """(size, width, height) of each stored thumbnail, smallest first, for a srcset."""
        sizes = [
            (self.SIZE_THUMB, self.thumbnail, self.thumb_width, self.thumb_height),
            (
                self.SIZE_THUMB_LARGE,
                self.thumbnail_large,
                self.thumb_large_width,
                self.thumb_large_height,
            ),
        ]
        return [(size, width, height) for size, field, width, height in sizes if field]
