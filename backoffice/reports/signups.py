"""Sign-ups per address: where accounts are being made from, most first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Max, Min
from django.utils import timezone

from mjweb.models import User

SHOWN = 200


def signups_by_address(days: int) -> list[dict[str, Any]]:
    """Addresses that signed accounts up in the last `days` days: each one's count, first
    and last sign-up, and how many confirmed their email; the busiest SHOWN addresses."""
    since = timezone.now() - timedelta(days=days)
    return list(
        User.objects.filter(signup_ip__isnull=False, date_joined__gte=since)
        .values("signup_ip")
        .annotate(
            accounts=Count("id"),
            verified=Count("id", filter=~User.unverified_q()),
            first=Min("date_joined"),
            last=Max("date_joined"),
        )
        .order_by("-accounts", "-last")[:SHOWN]
    )
