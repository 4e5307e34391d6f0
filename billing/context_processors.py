from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from billing import ledger, payments


def credits(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user's account for the header, read only when a template shows it, and
    the welcome grant an account waiting for its email confirmation is promised."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "credit_account": SimpleLazyObject(lambda: ledger.account_for(user)),
        "welcome_credits": settings.MJ_WELCOME_CREDITS,
        "can_buy_credits": payments.enabled(),
    }
