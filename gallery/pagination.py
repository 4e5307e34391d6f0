"""Keyset ("cursor") pagination over jobs, newest first: constant cost at any depth.

A cursor names the last job seen by its (created_at, id); the next page is what comes
strictly after it in that order, `(created_at, id) < (t, n)`: one row comparison, where an
index on (owner, created_at, id) starts its scan (gallery.models.queries.Row). Cursors are
opaque to users but not secret: a tampered or stale one just starts from the newest jobs
again.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from gallery.models import newer_than, older_than


@dataclass(frozen=True)
class CursorPage:
    items: list[Any]
    # Cursors for the pages after (older) and before (newer) this one; None at either end.
    next_cursor: str | None
    previous_cursor: str | None

    @property
    def has_other_pages(self) -> bool:
        return bool(self.next_cursor or self.previous_cursor)


def encode(job: Any) -> str:
    raw = f"{job.created_at.isoformat()}|{job.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None) -> tuple[datetime, int] | None:
    if not cursor or len(cursor) > 100:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, pk = raw.split("|")
        created = datetime.fromisoformat(stamp)
        if created.tzinfo is None:
            return None
        return created, int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def paginate(
    jobs: QuerySet[Any], *, after: str | None = None, before: str | None = None, size: int
) -> CursorPage:
    """One page of `jobs` (newest first): after a cursor (older), before one (newer), or
    the first page."""
    newer = decode(before) if before and not after else None
    older = decode(after)
    if newer is not None:
        created, pk = newer
        chunk = list(jobs.filter(newer_than(created, pk)).order_by("created_at", "id")[: size + 1])
        more_newer = len(chunk) > size
        items = list(reversed(chunk[:size]))
        return CursorPage(
            items=items,
            next_cursor=encode(items[-1]) if items else None,
            previous_cursor=encode(items[0]) if items and more_newer else None,
        )
    if older is not None:
        created, pk = older
        jobs = jobs.filter(older_than(created, pk))
    chunk = list(jobs.order_by("-created_at", "-id")[: size + 1])
    items = chunk[:size]
    return CursorPage(
        items=items,
        next_cursor=encode(items[-1]) if len(chunk) > size else None,
        previous_cursor=encode(items[0]) if items and older is not None else None,
    )
