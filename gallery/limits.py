"""A new job against the user's limits (billing.quotas says what they are; the jobs count)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.formats import date_format

from billing import quotas
from gallery.models import Job


class QuotaExceeded(Exception):
    """A submit over one of the user's limits; the message says which and until when."""


def jobs_today(user: Any) -> int:
    start, _ = quotas.day_window()
    return Job.objects.for_user(user).counted_against_day(start).count()


def check(user: Any, mode: str) -> None:
    """Refuse a new job over the user's limits. Call it with the user's account locked, so
    that concurrent submits are counted one after another."""
    if quotas.is_suspended(user):
        raise QuotaExceeded(
            "Your account is suspended: new jobs are refused. Jobs already running will "
            "finish, and your gallery stays open. Ask the site's operator why."
        )
    if user.awaits_verification:
        raise QuotaExceeded(
            f"Confirm your email first: follow the link we sent to {user.email}. Your "
            "welcome credits arrive with it."
        )
    limit = quotas.limits(user)
    if mode not in limit.modes:
        names = ", ".join(limit.modes) or "none"
        raise QuotaExceeded(f"Your account cannot use {mode} mode (allowed: {names}).")
    if limit.jobs_at_once:
        running = Job.objects.for_user(user).in_flight().count()
        if running >= limit.jobs_at_once:
            raise QuotaExceeded(
                f"You already have {running} jobs in progress, your limit at once: wait until "
                "one finishes."
            )
    if limit.jobs_per_day and jobs_today(user) >= limit.jobs_per_day:
        _, resets = quotas.day_window()
        when = date_format(timezone.localtime(resets), "DATETIME_FORMAT")
        raise QuotaExceeded(
            f"You have used your {limit.jobs_per_day} jobs for today; the count resets "
            f"at {when} ({settings.TIME_ZONE})."
        )
