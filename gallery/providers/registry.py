"""Every provider the product can talk to: name -> label, adapter, and how it is configured.

Adding a provider is one row here plus its adapter module (as healthchecks keeps its
TRANSPORTS). A name is what `MJ_PROVIDER` holds and what each job records; the protocol its
adapter speaks decides the rest (the simulator speaks either).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

from gallery.providers.base import Hooks, HTTPProvider, Provider, ProviderError, Recorder
from gallery.providers.cometapi import CometAPI
from gallery.providers.piapi import PiAPI


@dataclass(frozen=True)
class Entry:
    label: str
    # The adapter class this provider is spoken to with, read from settings at call time.
    adapter: Callable[[], type[HTTPProvider]]
    base_url: Callable[[], str]
    api_key: Callable[[], str]


def _simulator_adapter() -> type[HTTPProvider]:
    # The simulator answers both protocols on one port, byte for byte like the real services.
    return PiAPI if settings.MJ_SIMULATOR_PROTOCOL == "piapi" else CometAPI


PROVIDERS: dict[str, Entry] = {
    "simulator": Entry(
        label="Simulator",
        adapter=_simulator_adapter,
        base_url=lambda: f"http://{settings.MJ_SIMULATOR_HOST}:{settings.MJ_SIMULATOR_PORT}",
        api_key=lambda: settings.MJ_SIMULATOR_API_KEY,
    ),
    "cometapi": Entry(
        label="CometAPI",
        adapter=lambda: CometAPI,
        base_url=lambda: settings.COMETAPI_BASE_URL,
        api_key=lambda: settings.COMETAPI_API_KEY,
    ),
    "piapi": Entry(
        label="PiAPI",
        adapter=lambda: PiAPI,
        base_url=lambda: settings.PIAPI_BASE_URL,
        api_key=lambda: settings.PIAPI_API_KEY,
    ),
}


def current_name() -> str:
    return settings.MJ_PROVIDER


def _entry(name: str) -> Entry:
    entry = PROVIDERS.get(name)
    if entry is None:
        raise ProviderError(f"Provider {name!r} is not available in this build.", permanent=True)
    return entry


def remix_asks_first(name: str) -> bool:
    """Whether Remix must ask for the prompt before the press (the protocol takes it with the
    press), rather than after it, when the provider parks the new task in MODAL. A name
    this build does not know asks after (its jobs fail at dispatch with a clear error)."""
    entry = PROVIDERS.get(name)
    return bool(entry and entry.adapter().REMIX_ASKS_FIRST)


def get_provider(
    name: str | None = None,
    *,
    protocol: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    options: dict[str, Any] | None = None,
    hooks: Hooks | None = None,
    transport: httpx.BaseTransport | None = None,
    recorder: Recorder | None = None,
) -> Provider:
    """An adapter for account `name`. Its `protocol` (a key of PROVIDERS) decides the
    adapter, and the connection given overrides that protocol's environment variables; with
    neither, `name` is one of PROVIDERS configured by the environment alone. `options`
    override the protocol's own settings (PiAPI's dialect)."""
    name = name or current_name()
    entry = _entry(protocol or name)
    seams: dict[str, Any] = {"transport": transport, "recorder": recorder}
    return entry.adapter().from_settings(
        name=name,
        base_url=base_url or entry.base_url(),
        api_key=entry.api_key() if api_key is None else api_key,
        hooks=hooks or Hooks(),
        overrides=options or {},
        **seams,
    )
