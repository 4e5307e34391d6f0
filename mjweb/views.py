from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import check_for_language
from django.utils.translation import gettext as _
from django.views import i18n
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from mjweb import signups, throttle, tokens
from mjweb.forms import ApiTokenForm, InviteTaken, PreferencesForm, SignupForm
from mjweb.models import Invite


def own_url(request: HttpRequest, url: str | None) -> str | None:
    """`url` if it stays on this site (a `next` field must never send anyone elsewhere)."""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return None


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("gallery:home")
    if settings.MJWEB_SIGNUP_MODE == "closed":
        return render(request, "registration/signup_closed.html", status=403)
    if request.method == "POST" and (limit := throttle.limited(request, "signup")):
        return throttle.refused(request, limit)
    invite = None
    if settings.MJWEB_SIGNUP_MODE == "invite":
        code = (request.POST.get("invite") or request.GET.get("invite") or "").strip()
        invite = Invite.objects.filter(code=code[:32]).first() if code else None
        reason = invite.refusal(invite.email) if invite else None
        if invite is None or reason is not None:
            context = {"reason": reason, "code": code}
            return render(request, "registration/signup_invite_only.html", context, status=403)
    form = SignupForm(request.POST or None, invite=invite)
    if request.method == "POST" and form.is_valid():
        form.instance.signup_ip = throttle.client_ip(request) or None
        try:
            user = form.save()
        except InviteTaken:
            context = {"reason": Invite.USED, "code": invite.code if invite else ""}
            return render(request, "registration/signup_invite_only.html", context, status=403)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        if user.awaits_verification:
            signups.send_verification(request, user)
        return redirect("gallery:home")
    return render(request, "registration/signup.html", {"form": form, "invite": invite})


@require_http_methods(["GET"])
def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    """The link mailed at sign-up: the email is confirmed, the welcome credits arrive."""
    user = signups.user_for(token)
    if user is None:
        return render(request, "registration/verify_failed.html", status=400)
    if user.verify_email():
        messages.success(request, _("Your email is confirmed: your welcome credits are here."))
    else:
        messages.info(request, _("Your email was already confirmed."))
    return redirect("gallery:home" if request.user.is_authenticated else "login")


@require_POST
@login_required
def resend_verification(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not user.awaits_verification:  # type: ignore[union-attr]
        return redirect("gallery:home")
    if limit := throttle.limited(request, "verify"):
        return throttle.refused(request, limit)
    signups.send_verification(request, user)  # type: ignore[arg-type]
    messages.info(
        request,
        _("We sent the link again to %(email)s.") % {"email": user.email},  # type: ignore[union-attr]
    )
    return redirect("gallery:home")


class LoginView(auth_views.LoginView):
    """Django's login, its attempts counted per address (mjweb.throttle) on top of axes'
    lockout of a username at an address."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if limit := throttle.limited(request, "login"):
            return throttle.refused(request, limit)
        return super().post(request, *args, **kwargs)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's password reset, its requests counted per address and per email."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if limit := throttle.limited(request, "password_reset"):
            return throttle.refused(request, limit)
        return super().post(request, *args, **kwargs)


# Tokens a user may hold at once (revoked and expired ones do not count).
MAX_TOKENS = 20


@require_http_methods(["GET", "POST"])
@login_required
@never_cache
def api_tokens(request: HttpRequest) -> HttpResponse:
    """The user's API tokens: a new one is shown once, here, and never again."""
    form = ApiTokenForm(request.POST or None)
    created = ""
    if request.method == "POST" and form.is_valid():
        if request.user.api_tokens.usable().count() >= MAX_TOKENS:
            form.add_error(
                None,
                _("You have %(count)d tokens already; revoke one first.") % {"count": MAX_TOKENS},
            )
        else:
            _token, created = tokens.create(
                request.user, form.cleaned_data["name"], days=form.cleaned_data["expires"]
            )
            form = ApiTokenForm()
    context = {
        "form": form,
        "created": created,
        "tokens": request.user.api_tokens.all()[:100],
        "notify_secret": tokens.notify_secret(request.user),
    }
    return render(request, "registration/api_tokens.html", context, status=200)


@require_POST
@login_required
def revoke_api_token(request: HttpRequest, pk: int) -> HttpResponse:
    token = request.user.api_tokens.filter(pk=pk).first()
    if token is not None:
        tokens.revoke(token)
        messages.success(
            request,
            _("“%(name)s” is revoked: calls with it are refused.") % {"name": token.name},
        )
    return redirect("api_tokens")


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """The header's language switch: Django's set_language (the cookie, back to `next`),
    and for a signed-in user the choice saved on the account, so it follows them."""
    code = request.POST.get("language", "")
    if code not in dict(settings.LANGUAGES) or not check_for_language(code):
        # Django's view would set any language it has a catalogue for.
        return HttpResponseBadRequest(
            _("“%(code)s” is not a language of this site.") % {"code": code[:20]},
            content_type="text/plain; charset=utf-8",
        )
    response = i18n.set_language(request)
    user = request.user
    if user.is_authenticated and user.language != code:  # type: ignore[union-attr]
        user.language = code  # type: ignore[union-attr]
        user.save(update_fields=["language"])  # type: ignore[union-attr]
    return response


@require_http_methods(["GET", "POST"])
@login_required
def preferences(request: HttpRequest) -> HttpResponse:
    """The account's language and time zone."""
    form = PreferencesForm(request.POST or None, instance=request.user)
    if request.method == "POST":
        if form.is_valid():
            user = form.save()
            response = redirect("preferences")
            # The switch's cookie follows, so the choice holds after logging out too.
            if user.language:
                response.set_cookie(
                    settings.LANGUAGE_COOKIE_NAME,
                    user.language,
                    max_age=settings.LANGUAGE_COOKIE_AGE,
                    samesite=settings.LANGUAGE_COOKIE_SAMESITE,
                    secure=settings.LANGUAGE_COOKIE_SECURE,
                    httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
                )
            else:
                response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
            # The message is read on the next page: in the language just chosen.
            with translation.override(user.language or translation.get_language()):
                messages.success(request, _("Your language and time zone are saved."))
            return response
        return render(request, "registration/preferences.html", {"form": form}, status=400)
    return render(request, "registration/preferences.html", {"form": form})
