"""new-api's console API, as CometAPI serves it: the account's balance and its task log.

docs/provider-protocols.md section 7 (read from CometAPI's own client, cometapi-cli):
- auth: `Authorization: Bearer <console access token>` (not the API key);
- `GET /api/user/self` -> {"success", "message", "data": {"quota", "used_quota", ...}};
- `GET /api/task/self?p=&page_size=&platform=mj` -> a page of tasks, as `data.items` or as a
  flat list in `data` (the client accepts both, so do we), each with task_id, action,
  status, model_name, quota, submit_time and finish_time (unix seconds);
- money is quota / 500,000 dollars.
A failed call is a ProviderError; a row without a task id is skipped, never guessed at.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

import httpx

from gallery.providers.base import HTTPClient, ProviderError, Recorder, error_text

QUOTA_PER_USD = Decimal(500_000)
PAGE_SIZE = 100
MAX_DOLLARS = Decimal(1_000_000)


@dataclass(frozen=True)
class ConsoleTask:
    task_id: str
    action: str
    status: str
    model_name: str
    cost: Decimal
    submitted_at: datetime | None
    finished_at: datetime | None


def _dollars(quota: Any) -> Decimal:
    try:
        value = Decimal(str(quota))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    if not value.is_finite():
        return Decimal(0)
    dollars = value / QUOTA_PER_USD
    # What cannot be a price or a balance (below zero, a million dollars or more) reads as 0.
    if not 0 <= dollars < MAX_DOLLARS:
        return Decimal(0)
    return dollars.quantize(Decimal("0.000001"))


def _when(seconds: Any) -> datetime | None:
    try:
        value = int(seconds)
    except (TypeError, ValueError, OverflowError):
        return None
    if value <= 0 or value > 32_503_680_000:  # unset, or past the year 3000
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _text(value: Any, limit: int) -> str:
    return str(value if value is not None else "").strip()[:limit]


def parse_task(row: Any) -> ConsoleTask | None:
    if not isinstance(row, dict):
        return None
    task_id = _text(row.get("task_id"), 200)
    if not task_id or len(task_id) > 64 or "\x00" in task_id:
        return None
    return ConsoleTask(
        task_id=task_id,
        action=_text(row.get("action"), 40),
        status=_text(row.get("status"), 20).upper(),
        model_name=_text(row.get("model_name"), 64),
        cost=_dollars(row.get("quota") or 0),
        submitted_at=_when(row.get("submit_time") or row.get("created_at")),
        finished_at=_when(row.get("finish_time")),
    )


class Console(HTTPClient):
    """One account's console: `balance()` in dollars, and `tasks()` page by page."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        token: str,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        super().__init__(
            name=name,
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
            recorder=recorder,
        )

    def _get(self, path: str) -> Any:
        response = self._exchange("GET", path, None)
        if response.status_code >= 400:
            detail = error_text(response, lambda data: (data.get("message"),))
            self._raise_for_common_status(response.status_code, detail)
            raise ProviderError(
                f"The console answered HTTP {response.status_code}: {detail}",
                permanent=True,
                status_code=response.status_code,
                words=detail,
            )
        answer = self._decode(response)
        if not isinstance(answer, dict):
            raise ProviderError("The console's answer was not a JSON object.", permanent=False)
        if answer.get("success") is False:
            message = _text(answer.get("message"), 500) or "no reason given"
            raise ProviderError(f"The console refused: {message}", permanent=True, words=message)
        return answer.get("data")

    def balance(self) -> Decimal:
        data = self._get("/api/user/self")
        if not isinstance(data, dict) or "quota" not in data:
            raise ProviderError("The console's account answer has no quota.", permanent=False)
        return _dollars(data["quota"]).quantize(Decimal("0.0001"))

    def tasks(self, *, max_pages: int = 50) -> Iterator[ConsoleTask]:
        """The account's Midjourney tasks, newest first, up to `max_pages` pages."""
        for page in range(1, max_pages + 1):
            query = urlencode({"p": page, "page_size": PAGE_SIZE, "platform": "mj"})
            data = self._get(f"/api/task/self?{query}")
            if isinstance(data, dict):
                items = data.get("items")
                if items is None:
                    items = data.get("data")
            else:
                items = data
            if not isinstance(items, list):
                raise ProviderError(
                    "The console's task page has no list of tasks.", permanent=False
                )
            for row in items:
                task = parse_task(row)
                if task is not None:
                    yield task
            if len(items) < PAGE_SIZE:
                return
