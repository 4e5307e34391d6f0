"""The one way the product opens a provider: with our webhook URLs, and every exchange
recorded for the audit trail (linked to the job it was about, when there is one)."""

from __future__ import annotations

from typing import Any

from gallery import audit, webhooks
from gallery.providers import Provider, get_provider


def connect(name: str, job: Any = None, *, audited: bool = True) -> Provider:
    """An adapter for provider `name`; use it as a context manager."""
    recorder = audit.recorder(name, job) if audited else None
    return get_provider(name, hooks=webhooks.hooks(), recorder=recorder)
