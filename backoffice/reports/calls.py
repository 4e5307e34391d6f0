"""The provider: calls, errors and latency per endpoint (endpoint, Endpoint, endpoints)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper

from backoffice.reports.period import CHUNK, Period, calls_in
from gallery.models.records import call_failed_q

# --- the provider: latency and errors per endpoint ----------------------------------------

# A path segment that names one task (numbers, UUIDs, long tokens) rather than an endpoint.
_ID_SEGMENT = re.compile(
    r"(?<=/)(?:\d{3,}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|(?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{12,})(?:\.\w{2,5})?(?=/|$)",
    re.IGNORECASE,
)


def endpoint(path: str) -> str:
    """The path with task ids replaced by {id} and the query string dropped:
    /mj/task/1730000000000001/fetch -> /mj/task/{id}/fetch."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    return _ID_SEGMENT.sub("{id}", path)


@dataclass
class Endpoint:
    provider: str
    method: str
    path: str
    calls: int = 0
    errors: int = 0
    total_ms: int = 0
    max_ms: int = 0
    latencies: Counter[int] = field(default_factory=Counter)

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    @property
    def error_percent(self) -> str:
        return f"{self.error_rate * 100:.1f}"

    @property
    def avg_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0

    @property
    def p95_ms(self) -> int:
        """Nearest-rank 95th percentile: the smallest latency at or below which 95% fall."""
        rank = -(-95 * self.calls // 100)  # ceil(0.95 * calls)
        seen = 0
        for latency in sorted(self.latencies):
            seen += self.latencies[latency]
            if seen >= rank:
                return latency
        return 0


def endpoints(period: Period, user: Any = None) -> list[Endpoint]:
    """Calls, errors and latency per (provider, method, endpoint).

    The percentile is computed here, not in SQL (SQLite has none): the calls are streamed
    and only a histogram of latencies per endpoint is kept.
    """
    found: dict[tuple[str, str, str], Endpoint] = {}
    calls = (
        calls_in(period, user)
        .order_by()
        .annotate(failed=ExpressionWrapper(call_failed_q(), output_field=BooleanField()))
        .values_list("provider", "method", "path", "latency_ms", "failed")
        .iterator(chunk_size=CHUNK)
    )
    for provider, method, path, latency, failed in calls:
        key = (provider, method, endpoint(path))
        item = found.get(key)
        if item is None:
            item = found[key] = Endpoint(*key)
        item.calls += 1
        if failed:
            item.errors += 1
        item.total_ms += latency
        item.max_ms = max(item.max_ms, latency)
        item.latencies[latency] += 1
    return sorted(found.values(), key=lambda item: (item.provider, -item.calls, item.path))
