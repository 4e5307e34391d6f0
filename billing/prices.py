"""What each press costs: `Price` rows per (action, speed mode), set by the operator."""

from __future__ import annotations

from typing import Any

from billing.models import Price
from gallery.models import Job

# The defaults a new install starts with (1 credit = $0.001), the operator's to change in the
# admin. The anchor is CometAPI's `mj-fast-reroll` at $0.056 a request: 56 credits. Turbo is
# three times fast (CometAPI's turbo models cost 3x), relax 3/8 of fast (a reseller sheet of
# the same protocol: relax $0.015 against fast $0.04). A plain upscale (U1-U4, a crop of the
# grid) costs a quarter of a generation; the v6 upscalers (Subtle, Creative) twice.
GENERATIONS = ("imagine", "reroll", "variation", "vary_subtle", "vary_strong", "zoom_out", "pan")
BASE = {"relax": 21, "fast": 56, "turbo": 168}
SCALE = {"upscale": 0.25, "upscale_subtle": 2.0, "upscale_creative": 2.0}


def default_prices() -> dict[tuple[str, str], int]:
    prices = {}
    for mode, credits in BASE.items():
        for action in GENERATIONS:
            prices[(action, mode)] = credits
        for action, factor in SCALE.items():
            prices[(action, mode)] = round(credits * factor)
    return prices


def seed_defaults(model: Any = Price) -> int:
    """Create the default price of every (action, mode) that has none; returns how many."""
    created = 0
    for (action, mode), credits in default_prices().items():
        _, made = model.objects.get_or_create(
            action=action, mode=mode, defaults={"credits": credits}
        )
        created += made
    return created


class Unpriced(Exception):
    """No price is set for a press; it is refused rather than given away."""


def table() -> dict[tuple[str, str], int]:
    """Every price, keyed by (action, mode): one query for a whole page of buttons."""
    return {(p.action, p.mode): p.credits for p in Price.objects.all()}


def price_of(action: str, mode: str, prices: dict[tuple[str, str], int] | None = None) -> int:
    """Credits for one press; imports are free (they fetch a task that was already paid)."""
    if action == Job.Action.IMPORT:
        return 0
    if prices is not None:
        found = prices.get((action, mode))
    else:
        found = (
            Price.objects.filter(action=action, mode=mode).values_list("credits", flat=True).first()
        )
    if found is None:
        label = Job.Action(action).label if action in Job.Action.values else action
        raise Unpriced(f"No price is set for {label} in {mode} mode yet; ask the operator.")
    return found
