"""A second factor for staff (django-otp): an authenticator app's codes, and recovery codes.

With MJWEB_STAFF_2FA on (the default unless DEBUG), a staff account's session reaches no
page but these and log out until it has passed a code: the first time it enrols an
authenticator app (a QR code, its secret written out for typing in) and is given ten
recovery codes, each good once; afterwards every login asks for a code. A staff member
who lost their phone uses a recovery code; one who lost both has their devices removed by
another operator (the admin's OTP device lists) or with `manage.py reset_2fa <username>`.
"""

from __future__ import annotations

import io
from base64 import b32encode
from collections.abc import Callable

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from mjweb import throttle
from mjweb.models import User
from mjweb.views import own_url

RECOVERY_CODES = 10
# django-otp waits 1, 2, 4... seconds after each wrong code before it checks another.
WAIT = gettext_lazy(
    "Too many wrong codes just now: wait a few seconds, then enter the code your app shows."
)
OPEN_PATHS = ("twofactor_setup", "twofactor_verify", "logout")


def required(user: User) -> bool:
    """Whether this session must pass a code before it goes on."""
    return (
        settings.MJWEB_STAFF_2FA
        and user.is_authenticated
        and user.is_staff
        and not user.is_verified()  # type: ignore[attr-defined]  (django-otp's middleware)
    )


def enrolled(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).first()


def require_for_staff(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """Middleware, after django-otp's: a staff session without a passed code is sent to
    enrol or to give one, whatever it asked for."""
    open_paths = None

    def middleware(request: HttpRequest) -> HttpResponse:
        nonlocal open_paths
        if open_paths is None:
            open_paths = {reverse(name) for name in OPEN_PATHS}
        user = request.user
        if required(user) and request.path not in open_paths:  # type: ignore[arg-type]
            target = "twofactor_verify" if enrolled(user) else "twofactor_setup"  # type: ignore[arg-type]
            url = f"{reverse(target)}?next={request.get_full_path()}"
            if request.headers.get("HX-Request"):
                return HttpResponse(status=204, headers={"HX-Redirect": url})
            return redirect(url)
        return get_response(request)

    return middleware


def _next(request: HttpRequest) -> str:
    """Where to go once a code is passed: a page of this site, the admin by default."""
    wanted = own_url(request, request.POST.get("next") or request.GET.get("next"))
    return wanted if wanted and wanted.startswith("/") else resolve_url("admin:index")


def _pending(user: User) -> TOTPDevice:
    """The authenticator being enrolled: the same secret until it is confirmed."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name="Authenticator", confirmed=False)


def _recovery_codes(user: User) -> list[str]:
    """Ten new recovery codes (the old ones stop working)."""
    device, _created = StaticDevice.objects.get_or_create(user=user, name="Recovery codes")
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def _code(request: HttpRequest) -> str:
    return "".join(request.POST.get("code", "").split())[:32]


@never_cache  # the secret and the recovery codes are never kept by a cache
@require_http_methods(["GET", "POST"])
@login_required
def setup(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if enrolled(user):
        return redirect(f"{reverse('twofactor_verify')}?next={_next(request)}")
    device = _pending(user)
    error = ""
    if request.method == "POST":
        if limit := throttle.limited(request, "otp"):
            return throttle.refused(request, limit)
        if not device.verify_is_allowed()[0]:
            error = WAIT
        elif device.verify_token(_code(request)):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            otp_login(request, device)
            context = {"codes": _recovery_codes(user), "next": _next(request)}
            return render(request, "registration/twofactor_codes.html", context)
        else:
            error = _("That code is not the one your app shows now: check the app and try again.")
    svg = io.BytesIO()
    segno.make(device.config_url).save(
        svg, kind="svg", scale=5, border=3, light="white", xmldecl=False, svgns=True
    )
    context = {
        "qr": svg.getvalue().decode(),
        "secret": _secret(device),
        "error": error,
        "next": _next(request),
    }
    return render(
        request, "registration/twofactor_setup.html", context, status=400 if error else 200
    )


def _secret(device: TOTPDevice) -> str:
    key = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def verify(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    authenticator = enrolled(user)
    if authenticator is None:
        return redirect(f"{reverse('twofactor_setup')}?next={_next(request)}")
    error = ""
    if request.method == "POST":
        if limit := throttle.limited(request, "otp"):
            return throttle.refused(request, limit)
        code = _code(request)
        # Six digits are the app's; anything else may be a recovery code (used up here).
        devices = [authenticator] if code.isdigit() else StaticDevice.objects.filter(user=user)
        if not all(d.verify_is_allowed()[0] for d in devices):
            error, device = WAIT, None
        else:
            device = next((d for d in devices if d.verify_token(code)), None)
        if device is not None:
            otp_login(request, device)
            if isinstance(device, StaticDevice):
                left = device.token_set.count()
                messages.warning(
                    request,
                    ngettext(
                        "Recovery code used: %(left)d left.",
                        "Recovery code used: %(left)d left.",
                        left,
                    )
                    % {"left": left},
                )
            return redirect(_next(request))
        error = error or _(
            "That code is not right, or it has been used: try the one your app shows now."
        )
    context = {"error": error, "next": _next(request)}
    return render(
        request, "registration/twofactor_verify.html", context, status=400 if error else 200
    )
