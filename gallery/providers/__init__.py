"""Provider adapters, built from settings at call time (never at import)."""

from __future__ import annotations

import httpx
from django.conf import settings

from gallery.providers.base import Provider, ProviderError
from gallery.providers.cometapi import CometAPI, Recorder
from gallery.providers.piapi import PiAPI

__all__ = ["Provider", "ProviderError", "current_name", "get_provider"]


def current_name() -> str:
    return settings.MJ_PROVIDER


def simulator_base_url() -> str:
    return f"http://{settings.MJ_SIMULATOR_HOST}:{settings.MJ_SIMULATOR_PORT}"


def get_provider(
    name: str | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    recorder: Recorder | None = None,
) -> Provider:
    name = name or current_name()
    if name == "simulator" and settings.MJ_SIMULATOR_PROTOCOL == "piapi":
        # The simulator also speaks PiAPI (both dialects) on the same port.
        return PiAPI(
            name="simulator",
            base_url=simulator_base_url(),
            api_key=settings.MJ_SIMULATOR_API_KEY,
            api=settings.PIAPI_API,
            timeout=settings.MJ_HTTP_TIMEOUT,
            transport=transport,
            recorder=recorder,
        )
    if name == "simulator":
        # The simulator speaks CometAPI's protocol byte for byte: the same adapter drives it.
        return CometAPI(
            name="simulator",
            base_url=simulator_base_url(),
            api_key=settings.MJ_SIMULATOR_API_KEY,
            mode_prefixes=settings.COMETAPI_MODE_PREFIXES,
            timeout=settings.MJ_HTTP_TIMEOUT,
            transport=transport,
            recorder=recorder,
        )
    if name == "cometapi":
        return CometAPI(
            name="cometapi",
            base_url=settings.COMETAPI_BASE_URL,
            api_key=settings.COMETAPI_API_KEY,
            mode_prefixes=settings.COMETAPI_MODE_PREFIXES,
            timeout=settings.MJ_HTTP_TIMEOUT,
            transport=transport,
            recorder=recorder,
        )
    if name == "piapi":
        return PiAPI(
            name="piapi",
            base_url=settings.PIAPI_BASE_URL,
            api_key=settings.PIAPI_API_KEY,
            api=settings.PIAPI_API,
            timeout=settings.MJ_HTTP_TIMEOUT,
            transport=transport,
            recorder=recorder,
        )
    raise ProviderError(f"Provider {name!r} is not available in this build.", permanent=True)
