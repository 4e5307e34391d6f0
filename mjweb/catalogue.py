"""The product's vocabulary: every action a job can be, and every speed mode.

One row per action. Everything that names actions reads it: the Job model's choices, the
press URLs and the buttons on a card, prices and billing's choices, and the providers' button
parsing. Adding an action is one row here, its URL, and its mapping in each adapter.

A leaf module of plain data: it imports nothing of the product, so every layer may read it.
Labels and titles are translated lazily (in the reader's language when shown); what goes to
a provider (`Action.button_label`) is always Midjourney's English.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import translation
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

GRID = "grid"
SINGLE = "single"
# Describe: four prompts written from a picture, which the job shows beside them.
PROMPTS = "prompts"


@dataclass(frozen=True)
class Mode:
    name: str
    label: Any  # a lazily translated str
    # Credits of one generation in this mode in a new install's price table (1 credit =
    # $0.001). The anchor is CometAPI's `mj-fast-reroll` at $0.056 a request; turbo is three
    # times fast (CometAPI's turbo models cost 3x), relax 3/8 of fast (a reseller sheet of the
    # same protocol: relax $0.015 against fast $0.04).
    generation_price: int


MODES: tuple[Mode, ...] = (
    Mode("fast", _("Fast"), 56),
    Mode("relax", _("Relax"), 21),
    Mode("turbo", _("Turbo"), 168),
)
MODE_NAMES: tuple[str, ...] = tuple(mode.name for mode in MODES)


@dataclass(frozen=True)
class Action:
    name: str
    # What the action is called (choices, filters, reports); lazily translated, as are
    # `short` and `title`.
    label: Any
    # A job's name for it, "{index}" and "{variant}" filled in ("U2", "Pan left"); the label
    # where empty, or where the job lacks what the pattern names.
    short: Any = ""
    # Midjourney's own text on the button (never translated: providers match it), and what
    # a press does (the button's tooltip).
    button: str = ""
    title: Any = ""
    # Which row of buttons on a card it sits in; "" where it is not a button.
    group: str = ""
    # What the press URL takes besides the job: "index" (1-4), "variant", or nothing.
    takes: str = ""
    variants: tuple[str, ...] = ()
    # Shown on the card's button instead of the text, per variant ("" for all of them).
    glyphs: dict[str, str] = field(default_factory=dict)
    # Midjourney's Remix mode opens the prompt box for this press.
    remix: bool = False
    # What the provider answers with: a 2x2 grid or one picture.
    result: str = GRID
    # The default price: times the mode's generation price; None: free (an import).
    price_factor: float | None = 1.0
    # What the user gives before the press is sent: "region" (a mask and a prompt, drawn on
    # the job's page), "zoom" (a factor and a prompt); "" for a plain press.
    asks: str = ""
    # Made from the user's own pictures rather than from a job: how many it takes.
    inputs: tuple[int, int] = (0, 0)

    @property
    def is_button(self) -> bool:
        return bool(self.group)

    @property
    def url_name(self) -> str:
        """The gallery URL of the press ("gallery:<url_name>")."""
        return self.name

    def accepts(self, index: int | None, variant: str) -> bool:
        """Whether (index, variant) names one of this action's buttons."""
        if self.takes == "index":
            return index in (1, 2, 3, 4) and not variant
        if self.takes == "variant":
            return index is None and variant in self.variants
        return index is None and not variant

    def job_label(self, index: int | None = None, variant: str = "") -> str:
        # Custom Zoom keeps its factor in `variant` without taking one in its URL: until the
        # factor is known (the API's press waits for it) it is plain "Custom Zoom".
        lacking = (
            (self.takes == "index" and not index)
            or (self.takes == "variant" and not variant)
            or ("{variant}" in str(self.short) and not variant)
        )
        if not self.short or lacking:
            return str(self.label)
        return _fill(self.short, index, variant)

    def button_label(self, index: int | None = None, variant: str = "") -> str:
        """Midjourney's English text on the button, whatever language is active: the
        providers' buttons are matched and sent by it."""
        with translation.override(None):
            return _fill(self.button or self.short or self.label, index, variant)

    def button_title(self, index: int | None = None, variant: str = "") -> str:
        return _fill(self.title, index, variant)

    def button_text(self, index: int | None = None, variant: str = "") -> str:
        """What the card's button shows, in the reader's language: a glyph where Midjourney
        draws one."""
        if variant and variant in self.glyphs:
            return self.glyphs[variant]
        # `button` is marked with gettext_noop: English where it is used as the wire text.
        pattern = gettext(self.button) if self.button else (self.short or self.label)
        text = _fill(pattern, index, variant)
        glyph = self.glyphs.get("")
        return f"{glyph} {text}" if glyph else text


def _fill(pattern: Any, index: int | None, variant: str) -> str:
    word = str(VARIANT_WORDS.get(variant, variant))
    return str(pattern).format(index=index or "", variant=word, Variant=word.capitalize())


# A pan's direction in the reader's language ("2x" and "1.5x" read the same in all).
VARIANT_WORDS = {"left": _("left"), "right": _("right"), "up": _("up"), "down": _("down")}


PAN_GLYPHS = {"left": "←", "right": "→", "up": "↑", "down": "↓"}

ACTIONS: tuple[Action, ...] = (
    Action("imagine", _("Imagine")),
    Action(
        "reroll",
        _("Reroll"),
        title=_("run the same prompt again"),
        group="variation",
        glyphs={"": "↻"},
        remix=True,
    ),
    Action(
        "upscale",
        _("Upscale"),
        "U{index}",
        title=_("Upscale image {index}"),
        group="upscale",
        takes="index",
        result=SINGLE,
        price_factor=0.25,
    ),
    Action(
        "variation",
        _("Variation"),
        "V{index}",
        title=_("Make variations of image {index}"),
        group="variation",
        takes="index",
        remix=True,
    ),
    Action("vary_subtle", _("Vary (Subtle)"), title=_("A close variation"), group="vary"),
    Action("vary_strong", _("Vary (Strong)"), title=_("A bolder variation"), group="vary"),
    Action(
        "zoom_out",
        _("Zoom out"),
        _("Zoom out {variant}"),
        button=gettext_noop("Zoom Out {variant}"),
        title=_("Zoom out {variant}"),
        group="zoom",
        takes="variant",
        variants=("2x", "1.5x"),
    ),
    Action(
        "pan",
        _("Pan"),
        _("Pan {variant}"),
        button=gettext_noop("Pan {Variant}"),
        title=_("Pan {variant}"),
        group="zoom",
        takes="variant",
        variants=tuple(PAN_GLYPHS),
        glyphs=PAN_GLYPHS,
        remix=True,
    ),
    Action(
        "upscale_subtle",
        _("Upscale (Subtle)"),
        title=_("Upscale 2x, faithful"),
        group="vary",
        result=SINGLE,
        price_factor=2.0,
    ),
    Action(
        "upscale_creative",
        _("Upscale (Creative)"),
        title=_("Upscale 2x, adding detail"),
        group="vary",
        result=SINGLE,
        price_factor=2.0,
    ),
    Action(
        "vary_region",
        _("Vary (Region)"),
        title=_("Repaint a region you mark"),
        group="vary",
        asks="region",
    ),
    Action(
        "custom_zoom",
        _("Custom Zoom"),
        _("Custom Zoom {variant}x"),
        button=_("Custom Zoom"),
        title=_("Zoom out by a factor you choose, with a new prompt"),
        group="zoom",
        glyphs={"": "🔍"},
        asks="zoom",
    ),
    Action("blend", _("Blend"), title=_("Blend 2 to 5 of your pictures"), inputs=(2, 5)),
    Action(
        "describe",
        _("Describe"),
        title=_("Four prompts written from your picture"),
        result=PROMPTS,
        price_factor=0.5,
        inputs=(1, 1),
    ),
    Action("import", _("Import"), price_factor=None),
)
BY_NAME: dict[str, Action] = {action.name: action for action in ACTIONS}
ACTION_NAMES: tuple[str, ...] = tuple(action.name for action in ACTIONS)
PRICED_ACTIONS: tuple[str, ...] = tuple(a.name for a in ACTIONS if a.price_factor is not None)
REMIX_ACTIONS: frozenset[str] = frozenset(a.name for a in ACTIONS if a.remix)
# Offered on a finished upscale (one picture) rather than on a grid.
AFTER_UPSCALE: frozenset[str] = frozenset(
    (
        "vary_subtle",
        "vary_strong",
        "vary_region",
        "zoom_out",
        "custom_zoom",
        "pan",
        "upscale_subtle",
        "upscale_creative",
    )
)
# Asked for something before the press is sent (`Action.asks`): never a one-click button.
ASKING_ACTIONS: frozenset[str] = frozenset(a.name for a in ACTIONS if a.asks)
# Blend's shapes, as Midjourney's /blend offers them: our word -> (its name, its ratio).
BLEND_DIMENSIONS: dict[str, tuple[Any, str]] = {
    "square": (_("Square"), "1:1"),
    "portrait": (_("Portrait"), "2:3"),
    "landscape": (_("Landscape"), "3:2"),
}
# Custom Zoom's factor, as Midjourney takes it in `--zoom`.
ZOOM_RANGE: tuple[float, float] = (1.0, 2.0)


def action(name: str) -> Action:
    return BY_NAME[name]


def label(name: str, index: int | None = None, variant: str = "") -> str:
    """The job's name for an action, or the name itself for one the catalogue lacks."""
    found = BY_NAME.get(name)
    return found.job_label(index, variant) if found else name


def default_price(name: str, mode: str) -> int | None:
    """The seeded price of one press, None for a free action or an unknown mode."""
    found = BY_NAME.get(name)
    credits = next((m.generation_price for m in MODES if m.name == mode), None)
    if found is None or found.price_factor is None or credits is None:
        return None
    return round(credits * found.price_factor)


def choices(names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(value, label) pairs for a model field over actions or modes."""
    labels = {a.name: a.label for a in ACTIONS} | {m.name: m.label for m in MODES}
    return [(name, labels[name]) for name in names]
