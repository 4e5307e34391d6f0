"""What each press costs: `Price` rows per (action, speed mode), set by the operator."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from billing.models import Price
from mjweb import catalogue


def default_prices() -> dict[tuple[str, str], int]:
    """The price table a new install starts with (mjweb.catalogue: a mode's generation price
    times the action's factor), the operator's to change in the admin."""
    prices = {}
    for action in catalogue.PRICED_ACTIONS:
        for mode in catalogue.MODE_NAMES:
            credits = catalogue.default_price(action, mode)
            if credits is not None:
                prices[(action, mode)] = credits
    return prices


def seed_defaults(model: Any = Price) -> int:
    """Create the default price of every (action, mode) that has none; returns how many.
    Only actions `model` knows (a migration's historical model knows those of its time)."""
    created = 0
    known = {value for value, _ in model._meta.get_field("action").choices}
    for (action, mode), credits in default_prices().items():
        if action not in known:
            continue
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
    if action not in catalogue.PRICED_ACTIONS and action in catalogue.ACTION_NAMES:
        return 0
    if prices is not None:
        found = prices.get((action, mode))
    else:
        found = (
            Price.objects.filter(action=action, mode=mode).values_list("credits", flat=True).first()
        )
    if found is None:
        label = catalogue.label(action)
        raise Unpriced(
            _("No price is set for %(action)s in %(mode)s mode yet; ask the operator.")
            % {"action": label, "mode": mode}
        )
    return found
