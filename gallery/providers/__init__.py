"""Provider adapters, one module per wire protocol, and the registry that builds them.

Adapters are built from settings at call time (never at import). This package imports
nothing else of gallery: what it must know of the product (where our webhooks are) is handed
to `get_provider`.
"""

from __future__ import annotations

from gallery.providers.base import Hooks, Provider, ProviderError
from gallery.providers.registry import (
    PROVIDERS,
    current_name,
    get_provider,
    remix_asks_first,
)

__all__ = [
    "PROVIDERS",
    "Hooks",
    "Provider",
    "ProviderError",
    "current_name",
    "get_provider",
    "remix_asks_first",
]
