"""What Vary (Region) and Custom Zoom ask for before their press goes to the provider.

Vary (Region) repaints the part of an upscale the user marks: a mask the size of the
picture, white where it is repainted and black where it is kept (docs/provider-protocols.md
2.3, CometAPI's `maskBase64`). The studio's editor (static/js/region.js) draws it over the
picture at whatever size the screen shows; `mask` checks it like any picture we are sent,
flattens it to black and white at the picture's own size, and refuses one that marks
nothing or everything.

Custom Zoom zooms out by a factor from 1 to 2 (catalogue.ZOOM_RANGE), sent as `--zoom N` in
the prompt; `zoom` reads the factor the user typed and `zoomed_prompt` puts it there.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from PIL import Image as PILImage

from gallery import imaging
from gallery.downloads import ImageFetchError
from gallery.providers.base import InputImage
from mjweb import catalogue

# A pixel counts as marked from half brightness (and half opacity) up.
THRESHOLD = 128
# Less than this share of the picture marked is too small a region to repaint.
SMALLEST_SHARE = 0.001
_DATA_URL = re.compile(r"^data:image/(?:png|jpeg|webp);base64,", re.IGNORECASE)
_ZOOM = re.compile(r"(?:^|\s)--zoom(?:\s+(\S+))?(?=\s|$)", re.IGNORECASE)


class Refused(Exception):
    """A region or zoom we do not send; the message says why, for the user."""


def mask(text: str, size: tuple[int, int]) -> bytes:
    """The marked region as a black-and-white PNG of `size` (the parent picture's), from
    the editor's data URL (or bare base64, as API callers send `maskBase64`)."""
    text = (text or "").strip()
    if not text:
        raise Refused(_("Mark the region to repaint first."))
    encoded = _DATA_URL.sub("", text, count=1)
    limit = settings.MJWEB_UPLOAD_MAX_BYTES
    if len(encoded) > limit * 4 // 3 + 4:
        raise Refused(_("The region is larger than %(limit)s MB.") % {"limit": limit // 2**20})
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(_("The region is not a picture we can read.")) from None
    try:
        picture = imaging.decode(data)
    except ImageFetchError:
        raise Refused(_("The region is not a picture we can read.")) from None
    pixels = picture.pixels  # decode() always gives the cleaned pixels
    assert pixels is not None
    # Transparent is unmarked: what the editor leaves undrawn.
    flat = PILImage.new("RGB", pixels.size, (0, 0, 0))
    flat.paste(
        pixels.convert("RGB"), (0, 0), pixels.getchannel("A") if "A" in pixels.mode else None
    )
    grey = flat.convert("L").resize(size, PILImage.Resampling.BILINEAR)
    marked = grey.point(lambda value: 255 if value >= THRESHOLD else 0)
    histogram = marked.histogram()
    white, total = histogram[255], size[0] * size[1]
    if white < max(1, total * SMALLEST_SHARE):
        raise Refused(_("Mark a larger region to repaint."))
    if white == total:
        raise Refused(
            _("The region covers the whole picture: leave some of it unmarked, or use Vary.")
        )
    out = io.BytesIO()
    marked.save(out, format="PNG", optimize=True)
    return out.getvalue()


def zoom(text: Any) -> str:
    """The zoom factor the user typed, within catalogue.ZOOM_RANGE, as `--zoom` takes it
    ("1.5", "2"; two decimals at most)."""
    low, high = catalogue.ZOOM_RANGE
    bad = Refused(
        _("Zoom out by a factor from %(low)s to %(high)s.")
        % {"low": f"{low:g}", "high": f"{high:g}"}
    )
    try:
        factor = Decimal(str(text).strip().replace(",", "."))
    except (InvalidOperation, ValueError):
        raise bad from None
    if not factor.is_finite() or not Decimal(str(low)) <= factor <= Decimal(str(high)):
        raise bad
    if factor != factor.quantize(Decimal("0.01")):
        raise bad
    return format(factor.normalize(), "f")


def zoom_in_prompt(prompt: str) -> str | None:
    """The factor a prompt's `--zoom` asks for (checked), or None when it has none."""
    found = _ZOOM.findall(prompt)
    if not found:
        return None
    if len(found) > 1:
        raise Refused(_("Give --zoom once."))
    return zoom(found[0])


def zoomed_prompt(prompt: str, factor: str) -> str:
    """The prompt with `--zoom factor`, in place of any --zoom it had."""
    bare = " ".join(_ZOOM.sub(" ", prompt).split())
    return f"{bare} --zoom {factor}".strip()


def stored_mask(job: Any) -> InputImage | None:
    """The job's mask as a provider takes it, or None when it has none."""
    if not job.mask:
        return None
    with job.mask.open("rb") as stored:
        return InputImage(data=stored.read(), content_type="image/png")
