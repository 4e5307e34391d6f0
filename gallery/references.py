"""The user's own pictures: taken in (checked, re-encoded, kept once), and handed to a
provider, inline or behind an expiring signed link it may fetch.

A picture is checked as a downloaded one is (gallery.imaging.decode: PNG, JPEG or WebP,
within the pixel cap), and kept as a metadata-free PNG: what the user's camera wrote into
it (EXIF, GPS) never reaches a provider.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.translation import gettext as _

from gallery import imaging
from gallery.downloads import ImageFetchError
from gallery.models import Job, JobInput, Reference
from gallery.providers.base import InputImage

LINK_SALT = "mjweb.references.link"


class Refused(Exception):
    """A picture we do not take; the message says why, for the user."""


def take(owner: Any, data: bytes, *, name: str = "") -> Reference:
    """The user's picture, checked and kept (the same picture again: the one kept before)."""
    label = name or _("The picture")
    if not data:
        raise Refused(_("%(name)s is empty.") % {"name": label})
    limit = settings.MJWEB_UPLOAD_MAX_BYTES
    if len(data) > limit:
        raise Refused(
            _("%(name)s is larger than %(limit)s MB.") % {"name": label, "limit": limit // 2**20}
        )
    try:
        picture = imaging.reencode_png(imaging.decode(data))
    except ImageFetchError as exc:
        raise Refused(
            _("%(name)s is not a picture we can use: %(why)s")
            % {
                "name": label,
                "why": exc,
            }
        ) from None
    sha256 = hashlib.sha256(picture.data).hexdigest()
    kept = Reference.objects.filter(owner=owner, sha256=sha256).first()
    if kept is not None:
        return kept
    reference = Reference(
        owner=owner,
        width=picture.width,
        height=picture.height,
        bytes=len(picture.data),
        sha256=sha256,
    )
    reference.file.save("picture.png", ContentFile(picture.data), save=False)
    try:
        with transaction.atomic():
            reference.save()
    except IntegrityError:
        # The same picture, taken by a concurrent request a moment ago.
        reference.file.delete(save=False)
        return Reference.objects.get(owner=owner, sha256=sha256)
    return reference


def attach(job: Job, references: list[Reference]) -> None:
    JobInput.objects.bulk_create(
        JobInput(job=job, reference=reference, position=position)
        for position, reference in enumerate(references)
    )


def of(job: Job) -> list[Reference]:
    """The pictures a job was made from, in order."""
    return [row.reference for row in JobInput.objects.filter(job=job).select_related("reference")]


def link(reference: Reference) -> str:
    """An absolute link a provider may fetch the picture from, for a day."""
    token = signing.dumps({"r": str(reference.code)}, salt=LINK_SALT, compress=True)
    return settings.SITE_URL + reverse("gallery:reference_link", args=[token])


def from_link(token: str) -> Reference | None:
    """The picture behind a link made by `link`, while it is valid; None otherwise."""
    try:
        found = signing.loads(token, salt=LINK_SALT, max_age=settings.MJWEB_REFERENCE_LINK_SECONDS)
        return Reference.objects.get(code=found["r"])
    except (signing.BadSignature, KeyError, TypeError, ValueError, Reference.DoesNotExist):
        return None


def inputs(job: Job) -> tuple[InputImage, ...]:
    """The job's pictures as a provider takes them: their bytes and their links."""
    sent = []
    for reference in of(job):
        with reference.file.open("rb") as stored:
            data = stored.read()
        sent.append(InputImage(data=data, content_type="image/png", url=link(reference)))
    return tuple(sent)
