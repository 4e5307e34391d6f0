"""Where providers call us back, and how we know it is them.

A webhook is only a hint: one saying a job ended makes us read that job now instead of at
the next poll, a progress one wakes the poll chain (gallery.sync.hint). State changes still
come from the provider's own answers to our reads, so a duplicate, a replay or an
out-of-order delivery cannot move a job anywhere the provider did not say.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from django.utils.crypto import salted_hmac

from gallery import providers


def path_token() -> str:
    """The unguessable path segment of our webhook URLs (CometAPI's hook is unsigned)."""
    if settings.MJ_WEBHOOK_TOKEN:
        return settings.MJ_WEBHOOK_TOKEN
    return salted_hmac("mjweb.webhooks.path", "v1", algorithm="sha256").hexdigest()[:40]


def piapi_secret() -> str:
    """What PiAPI sends back in x-webhook-secret."""
    if settings.PIAPI_WEBHOOK_SECRET:
        return settings.PIAPI_WEBHOOK_SECRET
    return salted_hmac("mjweb.webhooks.piapi", "v1", algorithm="sha256").hexdigest()[:40]


def url(protocol: str, account: str = "") -> str:
    """Our webhook URL for a provider protocol ("cometapi" or "piapi") and account, or ""
    when disabled. A provider's task ids belong to one account, so each account's hooks name
    it; the environment's account keeps the URL it had before accounts existed."""
    if not settings.MJ_WEBHOOKS:
        return ""
    if not account or account == settings.MJ_PROVIDER:
        path = reverse(f"gallery:hook_{protocol}", args=[path_token()])
    else:
        path = reverse(f"gallery:hook_{protocol}_account", args=[path_token(), account])
    return settings.SITE_URL + path


def hooks(account: str = "") -> providers.Hooks:
    """Our webhook URLs for one account as the adapters take them."""
    piapi = url("piapi", account)
    return providers.Hooks(
        cometapi=url("cometapi", account),
        piapi=piapi,
        piapi_secret=piapi_secret() if piapi else "",
    )
