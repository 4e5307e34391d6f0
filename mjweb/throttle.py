"""Throttles: logins (django-axes locks a username at an address out after failures) and
rates per address and per account (django-ratelimit, on the shared cache): sign-ups,
logins, password resets and job submits. Which address a request comes from, for both.

`limited(request, group)` counts the request against each rate of its group
(settings.MJWEB_RATES: "5/h" means five an hour) and returns the refusal to show when one
is spent, else None.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage

log = logging.getLogger(__name__)

# What a spent rate's key counts, in the words of the refusal.
_WHOSE = {
    "ip": "from your address",
    "user": "from your account",
    "post:email": "for this email",
    "mjweb.tokens.rate_key": "with this token",
}
_WHAT = {
    "signup": "sign-ups",
    "login": "login attempts",
    "password_reset": "password reset requests",
    "submit": "jobs submitted",
    "verify": "verification emails",
    "otp": "codes tried",
    "api": "API calls",
}


@dataclass(frozen=True)
class Limit:
    message: str
    retry_after: int  # seconds


def limited(request: HttpRequest, group: str) -> Limit | None:
    """Count this request in each of `group`'s rates; the refusal when one is spent."""
    if not settings.MJWEB_THROTTLE:
        return None
    for key, rate in settings.MJWEB_RATES[group]:
        if key == "user" and not request.user.is_authenticated:
            continue
        try:
            usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
        except Exception:  # the cache is down: the site goes on without throttles meanwhile
            log.warning("throttle %s not counted: the cache failed", group, exc_info=True)
            return None
        if usage is not None and usage["should_limit"]:
            wait = max(1, int(usage["time_left"]))
            return Limit(
                f"Too many {_WHAT[group]} {_WHOSE.get(key, '')} ({rate.replace('/', ' per ')}"
                f"). Try again in {_in_words(wait)}.",
                wait,
            )
    return None


def _in_words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    minutes = round(seconds / 60)
    return f"{minutes} minutes"


def refused(request: HttpRequest, limit: Limit) -> HttpResponse:
    """The page a throttled sign-up, login or reset gets: 429, saying why and for how long."""
    response = render(request, "registration/throttled.html", {"limit": limit}, status=429)
    response["Retry-After"] = str(limit.retry_after)
    return response


@register()
def shared_cache(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Rates are counted in the cache: several processes need a shared one (REDIS_URL)."""
    if not settings.MJWEB_THROTTLE or settings.DEBUG or settings.REDIS_URL:
        return []
    return [
        Error(
            "The throttles count in the cache, and this one is each process's own.",
            hint="Set REDIS_URL (or MJWEB_THROTTLE=0 to run without throttles).",
            id="mjweb.E002",
        )
    ]


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, or behind our reverse proxy the address it appended to X-Forwarded-For.

    Only the last entry is the proxy's own: the ones before it are whatever the client sent.
    """
    if getattr(settings, "TRUST_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return str(request.META.get("REMOTE_ADDR") or "")


# axes keeps the username of a failed login in a 255-character column.
USERNAME_KEPT = 150  # the longest username an account may have (AbstractUser)


def username(request: HttpRequest, credentials: dict | None = None) -> str:
    """The username a login attempt is counted under (AXES_USERNAME_CALLABLE): what was
    typed, cut to the longest an account may have. A longer one cannot be anybody's, and
    whole it would not fit axes' column (a 500 on PostgreSQL)."""
    given = (credentials or {}).get("username") or request.POST.get("username", "")
    return str(given)[:USERNAME_KEPT]


def lockout(
    request: HttpRequest, response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """What a locked-out login gets (django-axes' AXES_LOCKOUT_CALLABLE): a 429 page that
    says why and for how long."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    context = {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "username": username(request, credentials),
        "minutes": minutes,
    }
    return render(request, "registration/locked_out.html", context, status=429)
