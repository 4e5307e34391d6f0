"""What each press costs: `Price` rows per (action, speed mode), set by the operator."""

from __future__ import annotations

from billing.models import Price
from gallery.models import Job


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
