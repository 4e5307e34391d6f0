"""Provider adapters, built from settings at call time (never at import)."""

from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings

from gallery import webhooks
from gallery.providers.base import Provider, ProviderError, Recorder
from gallery.providers.cometapi import CometAPI
from gallery.providers.piapi import PiAPI

__all__ = ["Provider", "ProviderError", "current_name", "get_provider"]


def current_name() -> str:
    return settings.MJ_PROVIDER


def remix_asks_first(name: str) -> bool:
    """Whether Remix must ask for the prompt before the press (PiAPI takes it with the press),
    rather than after it, when the provider parks the new task in MODAL (midjourney-proxy)."""
    if name == "simulator":
        return settings.MJ_SIMULATOR_PROTOCOL == "piapi"
    return name == "piapi"


def simulator_base_url() -> str:
    return f"http://{settings.MJ_SIMULATOR_HOST}:{settings.MJ_SIMULATOR_PORT}"


def get_provider(
    name: str | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    recorder: Recorder | None = None,
) -> Provider:
    name = name or current_name()
    seams = {"transport": transport, "recorder": recorder}
    if name == "simulator":
        # The simulator speaks both protocols on one port, byte for byte like the real services:
        # the same adapters drive it.
        key = settings.MJ_SIMULATOR_API_KEY
        if settings.MJ_SIMULATOR_PROTOCOL == "piapi":
            return _piapi(name, simulator_base_url(), key, **seams)
        return _cometapi(name, simulator_base_url(), key, **seams)
    if name == "cometapi":
        return _cometapi(name, settings.COMETAPI_BASE_URL, settings.COMETAPI_API_KEY, **seams)
    if name == "piapi":
        return _piapi(name, settings.PIAPI_BASE_URL, settings.PIAPI_API_KEY, **seams)
    raise ProviderError(f"Provider {name!r} is not available in this build.", permanent=True)


def _cometapi(name: str, base_url: str, api_key: str, **seams: Any) -> CometAPI:
    return CometAPI(
        name=name,
        base_url=base_url,
        api_key=api_key,
        mode_prefixes=settings.COMETAPI_MODE_PREFIXES,
        timeout=settings.MJ_HTTP_TIMEOUT,
        notify_hook=webhooks.url("cometapi"),
        **seams,
    )


def _piapi(name: str, base_url: str, api_key: str, **seams: Any) -> PiAPI:
    endpoint = webhooks.url("piapi")
    return PiAPI(
        name=name,
        base_url=base_url,
        api_key=api_key,
        api=settings.PIAPI_API,
        timeout=settings.MJ_HTTP_TIMEOUT,
        webhook_endpoint=endpoint,
        webhook_secret=webhooks.piapi_secret() if endpoint else "",
        **seams,
    )
