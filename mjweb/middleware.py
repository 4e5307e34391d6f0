from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

# No inline script and no eval anywhere: htmx runs with allowEval off (see base.html).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def security_headers(get_response: Callable[[HttpRequest], HttpResponse]):
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=()"
        )
        return response

    return middleware


def user_preferences(get_response: Callable[[HttpRequest], HttpResponse]):
    """A signed-in user's saved language (over the switch's cookie and the browser's
    Accept-Language, which LocaleMiddleware has applied) and time zone (over the server's)
    for this request. After AuthenticationMiddleware, which gives the user."""

    def middleware(request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            timezone.deactivate()
            return get_response(request)
        before = translation.get_language()
        if user.language:
            translation.activate(user.language)
            request.LANGUAGE_CODE = translation.get_language()  # type: ignore[attr-defined]
        zone = user.zone()
        if zone is not None:
            timezone.activate(zone)
        else:
            timezone.deactivate()
        try:
            return get_response(request)
        finally:
            timezone.deactivate()
            # The thread goes on to other work (another request, a task run in-process):
            # this user's language stays with this request.
            translation.activate(before) if before else translation.deactivate()

    return middleware
