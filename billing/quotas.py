"""What a user may do: the site default, overridden per user by a Quota row."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.formats import date_format

from billing.models import MODES, Quota
from gallery.models import Job


class QuotaExceeded(Exception):
    """A submit over one of the user's limits; the message says which and until when."""


@dataclass(frozen=True)
class Limits:
    modes: list[str]
    # 0 = no limit.
    jobs_per_day: int
    jobs_at_once: int


def limits(user: Any) -> Limits:
    quota = Quota.objects.filter(user=user).first()
    raw_modes = (quota.allowed_modes if quota else "") or ",".join(settings.MJ_ALLOWED_MODES)
    chosen = {mode.strip() for mode in raw_modes.split(",")}
    per_day = quota.jobs_per_day if quota and quota.jobs_per_day is not None else None
    at_once = quota.jobs_at_once if quota and quota.jobs_at_once is not None else None
    return Limits(
        modes=[mode for mode in MODES if mode in chosen],
        jobs_per_day=settings.MJ_JOBS_PER_DAY if per_day is None else per_day,
        jobs_at_once=settings.MJ_JOBS_AT_ONCE if at_once is None else at_once,
    )


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


def jobs_today(user: Any, now: dt.datetime | None = None) -> int:
    """Jobs that count against the daily limit: not failed, not cancelled, not imports."""
    start, _ = day_window(now)
    return (
        Job.objects.filter(owner=user, created_at__gte=start)
        .exclude(status__in=[Job.Status.FAILED, Job.Status.CANCELLED])
        .exclude(action=Job.Action.IMPORT)
        .count()
    )


def is_suspended(user: Any) -> bool:
    """Read from the database, not from `user`: the request's copy may predate a suspension."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk=user.pk, suspended_at__isnull=False).exists()


def check(user: Any, mode: str) -> None:
    """Refuse a new job over the user's limits. Call it with the user's account locked, so
    that concurrent submits are counted one after another."""
    if is_suspended(user):
        raise QuotaExceeded(
            "Your account is suspended: new jobs are refused. Jobs already running will "
            "finish, and your gallery stays open. Ask the site's operator why."
        )
    limit = limits(user)
    if mode not in limit.modes:
        names = ", ".join(limit.modes) or "none"
        raise QuotaExceeded(f"Your account cannot use {mode} mode (allowed: {names}).")
    if limit.jobs_at_once:
        running = Job.objects.filter(owner=user).in_flight().count()
        if running >= limit.jobs_at_once:
            raise QuotaExceeded(
                f"You already have {running} jobs in progress, your limit at once: wait until "
                "one finishes."
            )
    if limit.jobs_per_day:
        _, resets = day_window()
        if jobs_today(user) >= limit.jobs_per_day:
            when = date_format(timezone.localtime(resets), "DATETIME_FORMAT")
            raise QuotaExceeded(
                f"You have used your {limit.jobs_per_day} jobs for today; the count resets "
                f"at {when} ({settings.TIME_ZONE})."
            )
