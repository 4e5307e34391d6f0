"""Start-up checks of the gallery's settings against what this build has."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from gallery.providers import PROVIDERS


@register()
def provider_is_known(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    if settings.MJ_PROVIDER in PROVIDERS:
        return []
    return [
        Error(
            f"MJ_PROVIDER is {settings.MJ_PROVIDER!r}; this build knows "
            f"{', '.join(sorted(PROVIDERS))}.",
            id="gallery.E001",
        )
    ]
