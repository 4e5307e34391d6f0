from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_save


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        post_save.connect(
            _open_account, sender=settings.AUTH_USER_MODEL, dispatch_uid="billing_open_account"
        )


def _open_account(sender: Any, instance: Any, created: bool, raw: bool = False, **_: Any) -> None:
    """A new user starts with the welcome grant, in the transaction that creates them."""
    if created and not raw:
        from billing import ledger

        ledger.welcome(instance)
