"""Login throttling (django-axes): which address a login attempt comes from."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


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
