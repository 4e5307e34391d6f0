"""Who may sign up, and how an account proves its email (MJWEB_SIGNUP_MODE).

- `open`: anyone signs up and starts at once with the welcome credits.
- `verified`: anyone signs up; a link is mailed to the address, and the welcome credits
  and the first job wait until it is followed (a farmed account costs nothing).
- `invite`: only with an invitation staff made in the admin (`Invite`: good once, until it
  expires, for one address when it names one); the account starts at once, as in `open`.
- `closed`: the sign-up page says so; staff make accounts in the admin.

Emails of disposable-address services (the disposable-email-domains list) and of the
domains in MJWEB_BLOCKED_EMAIL_DOMAINS are refused at sign-up.
"""

from __future__ import annotations

from typing import Any

from disposable_email_domains import blocklist
from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _

from mjweb.models import User

VERIFY_SALT = "mjweb.signups.verify"
VERIFY_MAX_AGE = 3 * 24 * 3600  # seconds a link stays good


def blocked_domain(email: str) -> str | None:
    """The blocked domain `email` is at (or under), if any."""
    domain = email.rpartition("@")[2].strip().lower().rstrip(".")
    parts = domain.split(".")
    candidates = {".".join(parts[i:]) for i in range(len(parts) - 1)}
    blocked = set(settings.MJWEB_BLOCKED_EMAIL_DOMAINS)
    if settings.MJWEB_BLOCK_DISPOSABLE_EMAIL:
        blocked |= blocklist
    found = sorted(candidates & blocked, key=len)
    return found[0] if found else None


def token_for(user: User) -> str:
    # The address is in the token: a link stops working once the email is changed.
    return signing.dumps({"u": user.pk, "e": user.email.lower()}, salt=VERIFY_SALT)


def user_for(token: str) -> User | None:
    """The user a link is for, if it is genuine, not expired and still their address."""
    try:
        data: Any = signing.loads(token, salt=VERIFY_SALT, max_age=VERIFY_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    user = User.objects.filter(pk=data.get("u")).first()
    if user is None or user.email.lower() != data.get("e"):
        return None
    return user


def send_verification(request: HttpRequest, user: User) -> None:
    link = request.build_absolute_uri(reverse("verify_email", args=[token_for(user)]))
    context = {"user": user, "link": link, "credits": settings.MJ_WELCOME_CREDITS}
    send_mail(
        _("Confirm your email for mjweb"),
        render_to_string("registration/verify_email.txt", context),
        None,
        [user.email],
    )
