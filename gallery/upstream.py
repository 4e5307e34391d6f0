"""The one way the product opens a provider: as one of the operator's accounts, with our
webhook URLs for it, and every exchange recorded for the audit trail (linked to the job it
was about, when there is one)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from gallery import audit, webhooks
from gallery.models import ProviderAccount
from gallery.providers import Provider, get_provider


def connect(
    name: str, job: Any = None, *, audited: bool = True, account: ProviderAccount | None = None
) -> Provider:
    """An adapter for provider account `name`; use it as a context manager."""
    account = account or ProviderAccount.objects.named(name)
    recorder = audit.recorder(name, job) if audited else None
    connection = account.connection()
    return get_provider(
        name,
        protocol=connection.adapter,
        base_url=connection.base_url,
        api_key=connection.api_key,
        options=connection.options,
        hooks=webhooks.hooks(name),
        recorder=recorder,
    )


def image_hosts(name: str) -> tuple[set[str], set[str]]:
    """Where account `name`'s images may come from, and which of those hosts may be private
    addresses (a self-hosted proxy the operator allowed, or a simulator)."""
    account = ProviderAccount.objects.named(name)
    connection = account.connection()
    with connect(name, audited=False, account=account) as provider:
        allowed = set(settings.MJ_IMAGE_HOSTS) | provider.image_hosts()
    private: set[str] = set()
    if connection.protocol == "simulator" or connection.private_network:
        private = {connection.host}
    if connection.private_network:
        private |= set(settings.MJ_IMAGE_HOSTS)
    return allowed, {host for host in private if host}
