from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django import template
from django.urls import reverse

from gallery.models import Job

register = template.Library()

_ARROWS = {"left": "←", "right": "→", "up": "↑", "down": "↓"}


@dataclass(frozen=True)
class OfferedButton:
    url: str
    label: str
    title: str
    group: str

    @property
    def name(self) -> str:
        """Accessible name: starts with the visible label (WCAG "label in name")."""
        visible = self.label.lstrip("↻ ").strip() or self.title
        if visible in _ARROWS.values():
            return self.title
        return visible if visible == self.title else f"{visible}: {self.title}"


def _route(job: Job, button: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """(url, label, title, group) for a normalized provider button we can press."""
    code = job.code
    action, index, variant = button.get("action"), button.get("index"), button.get("variant", "")
    if action == Job.Action.UPSCALE and index:
        return (
            reverse("gallery:upscale", args=[code, index]),
            f"U{index}",
            f"Upscale image {index}",
            "upscale",
        )
    if action == Job.Action.VARIATION and index:
        return (
            reverse("gallery:variation", args=[code, index]),
            f"V{index}",
            f"Make variations of image {index}",
            "variation",
        )
    if action == Job.Action.REROLL:
        return (
            reverse("gallery:reroll", args=[code]),
            "↻ Reroll",
            "run the same prompt again",
            "variation",
        )
    if action == Job.Action.VARY_SUBTLE:
        return (
            reverse("gallery:vary_subtle", args=[code]),
            "Vary (Subtle)",
            "A close variation",
            "vary",
        )
    if action == Job.Action.VARY_STRONG:
        return (
            reverse("gallery:vary_strong", args=[code]),
            "Vary (Strong)",
            "A bolder variation",
            "vary",
        )
    if action == Job.Action.UPSCALE_SUBTLE:
        return (
            reverse("gallery:upscale_subtle", args=[code]),
            "Upscale (Subtle)",
            "Upscale 2x, faithful",
            "vary",
        )
    if action == Job.Action.UPSCALE_CREATIVE:
        return (
            reverse("gallery:upscale_creative", args=[code]),
            "Upscale (Creative)",
            "Upscale 2x, adding detail",
            "vary",
        )
    if action == Job.Action.ZOOM_OUT and variant in ("2x", "1.5x"):
        return (
            reverse("gallery:zoom_out", args=[code, variant]),
            f"Zoom Out {variant}",
            f"Zoom out {variant}",
            "zoom",
        )
    if action == Job.Action.PAN and variant in _ARROWS:
        return (
            reverse("gallery:pan", args=[code, variant]),
            _ARROWS[variant],
            f"Pan {variant}",
            "zoom",
        )
    return None


@register.simple_tag
def offered_buttons(job: Job) -> list[OfferedButton]:
    if job.status != Job.Status.SUCCEEDED:
        return []
    offered = []
    for button in job.buttons:
        route = _route(job, button)
        if route is not None:
            offered.append(OfferedButton(*route))
    return offered


@register.filter
def images_of_kind(job: Job, kind: str) -> Any:
    return [image for image in job.images.all() if image.kind == kind]


@register.filter
def main_image(job: Job) -> Any:
    """The grid or single image of a finished job (from the prefetched images)."""
    for image in job.images.all():
        if image.kind in ("grid", "single"):
            return image
    return None


@register.simple_tag
def new_submit_key() -> str:
    """A fresh idempotency key for one rendered button or form."""
    return str(uuid.uuid4())
