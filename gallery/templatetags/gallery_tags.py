from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django import template
from django.urls import reverse

from billing import prices
from gallery.models import Job

register = template.Library()

_ARROWS = {"left": "←", "right": "→", "up": "↑", "down": "↓"}


@dataclass(frozen=True)
class OfferedButton:
    url: str
    label: str
    title: str
    group: str
    # Credits one press costs (None: no price set, the press would be refused).
    price: int | None = None

    @property
    def name(self) -> str:
        """Accessible name: starts with the visible label (WCAG "label in name")."""
        visible = self.label.lstrip("↻ ").strip() or self.title
        name = self.title if visible in _ARROWS.values() else visible
        if visible not in _ARROWS.values() and visible != self.title:
            name = f"{visible}: {self.title}"
        return f"{name}, {self.cost_text}"

    @property
    def cost_text(self) -> str:
        if self.price is None:
            return "no price set"
        return f"{self.price} credit{'' if self.price == 1 else 's'}"


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


def price_table(context: template.Context) -> dict[tuple[str, str], int]:
    """All prices, read once per request however many cards a page shows."""
    request = context.get("request")
    cached = getattr(request, "_mjweb_prices", None)
    if cached is None:
        cached = prices.table()
        if request is not None:
            request._mjweb_prices = cached  # type: ignore[attr-defined]
    return cached


@register.simple_tag(takes_context=True)
def offered_buttons(context: template.Context, job: Job) -> list[OfferedButton]:
    if job.status != Job.Status.SUCCEEDED:
        return []
    table = price_table(context)
    offered = []
    for button in job.buttons:
        route = _route(job, button)
        if route is not None:
            price = table.get((button["action"], job.mode))
            offered.append(OfferedButton(*route, price=price))
    return offered


@register.simple_tag(takes_context=True)
def mode_prices(context: template.Context) -> dict[str, int | None]:
    """What an imagine costs in each speed mode, for the composer."""
    table = price_table(context)
    return {mode: table.get((Job.Action.IMAGINE, mode)) for mode in Job.Mode.values}


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
def image_srcset(job: Job, image: Any) -> str:
    """`srcset` over the stored thumbnail widths of an image (and the original, largest)."""
    sources = [
        f"{reverse('gallery:image', args=[job.code, image.kind, image.index, size])} {width}w"
        for size, width, _ in image.thumbnail_sizes
    ]
    full = reverse("gallery:image", args=[job.code, image.kind, image.index, "full"])
    sources.append(f"{full} {image.width}w")
    return ", ".join(sources)


@register.filter
def get_item(mapping: dict, key: Any) -> Any:
    return mapping.get(key)


@register.simple_tag
def new_submit_key() -> str:
    """A fresh idempotency key for one rendered button or form."""
    return str(uuid.uuid4())
