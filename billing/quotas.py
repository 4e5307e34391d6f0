"""What a user may do: the site default, overridden per user by a Quota row."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from billing.models import MODES, Quota


def allowed_modes(user: Any) -> list[str]:
    """The speed modes this user may choose, in a stable order."""
    override = Quota.objects.filter(user=user).values_list("allowed_modes", flat=True).first()
    raw = override or ",".join(settings.MJ_ALLOWED_MODES)
    chosen = {mode.strip() for mode in raw.split(",")}
    return [mode for mode in MODES if mode in chosen]
