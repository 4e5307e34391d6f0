"""What a user may do: the site default, overridden per user by a Quota row.

Only the limits themselves live here; counting a user's jobs against them is the jobs' own
business (gallery.limits).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from billing.models import MODES, Quota


@dataclass(frozen=True)
class Limits:
    modes: list[str]
    # 0 = no limit.
    jobs_per_day: int
    jobs_at_once: int
    # Which of the three come from the site default (the user's Quota leaves them empty).
    inherited: frozenset[str] = frozenset()


def effective(quota: Quota | None) -> Limits:
    """What a Quota row (or none) comes to with the site defaults filled in; no query."""
    own_modes = quota.allowed_modes if quota else ""
    chosen = {
        mode.strip() for mode in (own_modes or ",".join(settings.MJ_ALLOWED_MODES)).split(",")
    }
    per_day = quota.jobs_per_day if quota else None
    at_once = quota.jobs_at_once if quota else None
    inherited = {
        name
        for name, own in (
            ("modes", own_modes or None),
            ("jobs_per_day", per_day),
            ("jobs_at_once", at_once),
        )
        if own is None
    }
    return Limits(
        modes=[mode for mode in MODES if mode in chosen],
        jobs_per_day=settings.MJ_JOBS_PER_DAY if per_day is None else per_day,
        jobs_at_once=settings.MJ_JOBS_AT_ONCE if at_once is None else at_once,
        inherited=frozenset(inherited),
    )


def limits(user: Any) -> Limits:
    return effective(Quota.objects.filter(user=user).first())


def allowed_modes(user: Any) -> list[str]:
    """The speed modes this user may choose, in a stable order."""
    return limits(user).modes


def day_window(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """Today in the site's time zone (TIME_ZONE): when the daily count started and resets."""
    local = timezone.localtime(now or timezone.now())
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = timezone.make_aware(
        dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time()), local.tzinfo
    )
    return start, end


def is_suspended(user: Any) -> bool:
    """Read from the database, not from `user`: the request's copy may predate a suspension."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk=user.pk, suspended_at__isnull=False).exists()
