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
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy
from django_ratelimit.core import get_usage

log = logging.getLogger(__name__)

# What a spent rate's key counts, in the words of the refusal.
_WHOSE = {
    "ip": gettext_lazy("from your address"),
    "user": gettext_lazy("from your account"),
    "post:email": gettext_lazy("for this email"),
    "mjweb.tokens.rate_key": gettext_lazy("with this token"),
}
_WHAT = {
    "signup": gettext_lazy("sign-ups"),
    "login": gettext_lazy("login attempts"),
    "password_reset": gettext_lazy("password reset requests"),
    "submit": gettext_lazy("jobs submitted"),
    "verify": gettext_lazy("verification emails"),
    "otp": gettext_lazy("codes tried"),
    "api": gettext_lazy("API calls"),
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
            message = _("Too many %(what)s %(whose)s (%(rate)s). Try again in %(wait)s.") % {
                "what": _WHAT[group],
                "whose": _WHOSE.get(key, ""),
                "rate": _rate_in_words(rate),
                "wait": _in_words(wait),
            }
            return Limit(message, wait)
    return None


# django-ratelimit's periods ("5/h", "10/5m"), as the refusal names them.
_PERIODS = {
    "s": pgettext_lazy("rate period", "s"),
    "m": pgettext_lazy("rate period", "m"),
    "h": pgettext_lazy("rate period", "h"),
    "d": pgettext_lazy("rate period", "d"),
}


def _rate_in_words(rate: str) -> str:
    count, _slash, period = rate.partition("/")
    unit = period.lstrip("0123456789")
    words = period[: len(period) - len(unit)] + str(_PERIODS.get(unit, unit))
    return _("%(count)s per %(period)s") % {"count": count, "period": words}


def _in_words(seconds: int) -> str:
    if seconds < 90:
        return ngettext("%(n)d second", "%(n)d seconds", seconds) % {"n": seconds}
    minutes = round(seconds / 60)
    return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}


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
