"""Pictures a user gives us: image prompts, a blend's inputs, a picture to describe.

Each is checked as a downloaded picture is (gallery.imaging.decode: format, pixel cap) and
kept re-encoded as a metadata-free PNG, once per owner and content. A job names the ones it
was made from, in order (`JobInput`); a reference is kept while a job uses it.
"""

from __future__ import annotations

import uuid
from math import gcd

from django.conf import settings
from django.db import models

from gallery.models.jobs import Job


def reference_path(instance: Reference, filename: str) -> str:
    code = instance.code.hex
    return f"references/{code[:2]}/{code}.png"


class Reference(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="references"
    )
    file = models.FileField(upload_to=reference_path, max_length=300)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveIntegerField()
    # Of the stored PNG: the same picture given twice is kept once.
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "sha256"], name="reference_owner_sha_unique")
        ]

    def __str__(self) -> str:
        return f"reference {self.code} of {self.owner_id}"

    @property
    def shape(self) -> str:
        """Its aspect ratio in lowest terms, as `--ar` spells it ("3:2")."""
        divisor = gcd(self.width, self.height) or 1
        return f"{self.width // divisor}:{self.height // divisor}"


class JobInput(models.Model):
    """One of the user's pictures a job was made from, at its place in the job's list."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="inputs")
    reference = models.ForeignKey(Reference, on_delete=models.PROTECT, related_name="uses")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="job_input_position_unique")
        ]

    def __str__(self) -> str:
        return f"picture {self.position + 1} of job {self.job_id}"
