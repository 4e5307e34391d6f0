from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext, ngettext

from billing import prices, quotas
from gallery import push
from gallery.models import Image, Job
from mjweb import catalogue

register = template.Library()


@dataclass(frozen=True)
class OfferedButton:
    url: str
    label: str
    title: str
    group: str
    # Credits one press costs (None: no price set, the press would be refused).
    price: int | None = None
    # What it costs in each speed mode the user may press it in, "mode:credits" words for
    # the page's script, which shows the price of the speed chosen on the card.
    prices: str = ""
    # What the press asks first (catalogue.Action.asks): the card links to the job page's
    # form for it (#vary-region, #custom-zoom) instead of pressing.
    asks: str = ""
    # The job's page, for `link`.
    page: str = ""

    @property
    def anchor(self) -> str:
        return {"region": "vary-region", "zoom": "custom-zoom"}.get(self.asks, "")

    @property
    def link(self) -> str:
        """Where the card's link for an asking press goes: its form on the job's page."""
        return f"{self.page}#{self.anchor}" if self.asks else ""

    @property
    def name(self) -> str:
        """Accessible name: starts with the visible label (WCAG "label in name")."""
        glyphs = set(catalogue.PAN_GLYPHS.values())
        visible = self.label.lstrip("↻ ").strip() or self.title
        name = self.title if visible in glyphs else visible
        if visible not in glyphs and visible != self.title:
            name = f"{visible}: {self.title}"
        return f"{name}, {self.cost_text}"

    @property
    def cost_text(self) -> str:
        if self.price is None:
            return gettext("no price set")
        return ngettext("%(credits)d credit", "%(credits)d credits", self.price) % {
            "credits": self.price
        }


def _route(job: Job, button: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """(url, text, title, group) for a normalized provider button we can press."""
    action = catalogue.BY_NAME.get(str(button.get("action")))
    index, variant = button.get("index"), str(button.get("variant", ""))
    if action is None or not action.is_button or not action.accepts(index, variant):
        return None
    args: list[Any] = [job.code]
    if action.takes == "index":
        args.append(index)
    elif action.takes == "variant":
        args.append(variant)
    return (
        reverse(f"gallery:{action.url_name}", args=args),
        action.button_text(index, variant),
        action.button_title(index, variant),
        action.group,
    )


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
    modes = press_modes(context, job)
    offered = []
    page = job.get_absolute_url()
    for button in job.buttons:
        route = _route(job, button)
        if route is not None:
            price = table.get((button["action"], job.mode))
            each = " ".join(
                f"{mode}:{_credits(table.get((button['action'], mode)))}" for mode, _ in modes
            )
            asks = catalogue.action(button["action"]).asks
            offered.append(OfferedButton(*route, price=price, prices=each, asks=asks, page=page))
    return offered


@register.simple_tag(takes_context=True)
def asking_presses(context: template.Context, job: Job) -> dict[str, OfferedButton]:
    """The job's presses that ask first (Vary (Region), Custom Zoom), by what they ask:
    the job page's forms for them."""
    return {b.asks: b for b in offered_buttons(context, job) if b.asks}


def _credits(price: int | None) -> str:
    return "" if price is None else str(price)


@register.simple_tag(takes_context=True)
def press_modes(context: template.Context, job: Job) -> list[tuple[str, str]]:
    """The speeds a press on `job` may be sent in: the user's allowed modes, the job's own
    first (a relax grid may be upscaled in fast)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    allowed = getattr(request, "_mjweb_modes", None)
    if allowed is None:
        allowed = quotas.allowed_modes(user) if user is not None and user.is_authenticated else []
        if request is not None:
            request._mjweb_modes = allowed  # type: ignore[attr-defined]
    labels = dict(Job.Mode.choices)
    ordered = [job.mode, *(mode for mode in allowed if mode != job.mode)]
    return [(mode, str(labels[mode])) for mode in ordered if mode in labels]


@register.simple_tag(takes_context=True)
def mode_prices(context: template.Context, action: str = "imagine") -> dict[str, int | None]:
    """What `action` costs in each speed mode, for a form that makes one."""
    table = price_table(context)
    return {mode: table.get((action, mode)) for mode in Job.Mode.values}


@register.filter
def images_of_kind(job: Job, kind: str) -> Any:
    return [image for image in job.images.all() if image.kind == kind]


@register.filter
def main_image(job: Job) -> Any:
    """The grid or single image of a finished job (from the prefetched images)."""
    for image in job.images.all():
        if image.kind in Image.WHOLE_KINDS:
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


@register.simple_tag(takes_context=True)
def absolute_url(context: template.Context, path: str) -> str:
    """A path of ours as a whole URL on the host this page was asked from (a public link to
    copy, an Open Graph image)."""
    request = context.get("request")
    if request is None:
        return settings.SITE_URL + path
    return request.build_absolute_uri(path)


@register.filter
def get_item(mapping: dict, key: Any) -> Any:
    return mapping.get(key)


@register.simple_tag
def new_submit_key() -> str:
    """A fresh idempotency key for one rendered button or form."""
    return str(uuid.uuid4())


@register.simple_tag(takes_context=True)
def push_stream_url(context: template.Context) -> str:
    """The push stream's URL where this request's server can stream (ASGI), else ""."""
    request = context.get("request")
    return reverse("gallery:stream") if request is not None and push.enabled(request) else ""
