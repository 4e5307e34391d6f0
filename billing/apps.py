from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_save


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from mjweb.models import email_verified

        post_save.connect(
            _open_account, sender=settings.AUTH_USER_MODEL, dispatch_uid="billing_open_account"
        )
        email_verified.connect(_verified, dispatch_uid="billing_email_verified")


def _open_account(sender: Any, instance: Any, created: bool, raw: bool = False, **_: Any) -> None:
    """A new user starts with the welcome grant, in the transaction that creates them;
    one who must verify their email first gets it then (`_verified`)."""
    if created and not raw and not instance.awaits_verification:
        from billing import ledger

        ledger.welcome(instance)


def _verified(sender: Any, user: Any, **_: Any) -> None:
    from billing import ledger

    ledger.welcome(user)  # once per user, whatever calls it: keyed by the user
