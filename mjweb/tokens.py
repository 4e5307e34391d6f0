"""Personal API tokens: made (the plain token returned once), found by their SHA-256,
revoked; and the API's rate per token (settings.MJWEB_RATES["api"])."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from mjweb.models import ApiToken

# A token's last use is written at most this often (not on every call).
TOUCH_EVERY = timedelta(minutes=1)


def digest(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def create(user: Any, name: str, *, days: int | None = None) -> tuple[ApiToken, str]:
    """A new token for `user`; returns it and its plain text, which is never stored."""
    body = secrets.token_urlsafe(32)
    plain = f"{ApiToken.PREFIX}{body}"
    token = ApiToken.objects.create(
        user=user,
        name=name.strip()[:80] or "API token",
        hint=body[:8],
        digest=digest(plain),
        expires_at=timezone.now() + timedelta(days=days) if days else None,
    )
    return token, plain


def bearer(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "").strip()
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    # midjourney-proxy clients send the secret in mj-api-secret.
    return request.headers.get("mj-api-secret", "").strip()


def authenticate(request: HttpRequest) -> ApiToken | None:
    """The usable token the request carries, its user active and not suspended; None
    otherwise. Records its use."""
    plain = bearer(request)
    if not plain.startswith(ApiToken.PREFIX) or len(plain) > 200:
        return None
    token = ApiToken.objects.usable().select_related("user").filter(digest=digest(plain)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at < now - TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    request.api_token = token  # type: ignore[attr-defined]
    return token


def notify_secret(user: Any) -> str:
    """The key the API's notifyHook deliveries to this user's hooks are signed with."""
    return salted_hmac("mjweb.api.notify", str(user.pk), algorithm="sha256").hexdigest()


def revoke(token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def rate_key(group: str, request: HttpRequest) -> str:
    """django-ratelimit's key for the API's rate: the token the request was made with."""
    token = getattr(request, "api_token", None)
    return f"token:{token.pk}" if token is not None else f"anonymous:{bearer(request)[:12]}"
