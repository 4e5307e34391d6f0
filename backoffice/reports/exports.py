"""The CSV exports, streamed in pieces: csv_lines and the usage, endpoint, ledger and job
exports built on it."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from typing import Any

from django.utils import timezone

from backoffice.reports.calls import endpoints
from backoffice.reports.period import CHUNK, FIGURES, Period, entries_in, jobs_in
from backoffice.reports.usage import usage_rows

# --- CSV ---------------------------------------------------------------------------------

_FORMULA = ("=", "+", "-", "@", "\t", "\r")
# Rows are sent in pieces of about this many bytes.
FLUSH_BYTES = 65536


def _cell(value: Any, tz: dt.tzinfo) -> Any:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(tz).isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA):
        # A spreadsheet would run it as a formula (CSV injection); numbers are not strings.
        return "'" + value
    return value


def csv_lines(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """CSV text in pieces of about FLUSH_BYTES, as the rows arrive; times in the site's
    time zone."""
    tz = timezone.get_current_timezone()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([value if type(value) is int else _cell(value, tz) for value in row])
        if buffer.tell() > FLUSH_BYTES:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


USAGE_HEADER = ["user_id", "username", "action", "mode", *FIGURES]


def usage_csv(period: Period, user: Any = None) -> Iterator[str]:
    rows = ([row[name] for name in USAGE_HEADER] for row in usage_rows(period, user))
    return csv_lines(USAGE_HEADER, rows)


ENDPOINT_HEADER = [
    "provider",
    "method",
    "endpoint",
    "calls",
    "errors",
    "error_rate",
    "avg_ms",
    "p95_ms",
    "max_ms",
]


def endpoints_csv(period: Period, user: Any = None) -> Iterator[str]:
    rows = (
        [
            item.provider,
            item.method,
            item.path,
            item.calls,
            item.errors,
            f"{item.error_rate:.4f}",
            f"{item.avg_ms:.1f}",
            item.p95_ms,
            item.max_ms,
        ]
        for item in endpoints(period, user)
    )
    return csv_lines(ENDPOINT_HEADER, rows)


LEDGER_COLUMNS = {
    "id": "id",
    "created_at": "created_at",
    "user_id": "account__user_id",
    "username": "account__user__username",
    "kind": "kind",
    "amount": "amount",
    "balance_delta": "balance_delta",
    "held_delta": "held_delta",
    "balance_after": "balance_after",
    "held_after": "held_after",
    "job": "job__code",
    "job_action": "job__action",
    "job_mode": "job__mode",
    "actor": "actor__username",
    "memo": "memo",
    "key": "key",
}


def ledger_csv(period: Period, user: Any = None) -> Iterator[str]:
    rows = (
        entries_in(period, user)
        .order_by("id")
        .values_list(*LEDGER_COLUMNS.values())
        .iterator(chunk_size=CHUNK)
    )
    return csv_lines(list(LEDGER_COLUMNS), rows)


JOB_COLUMNS = {
    "code": "code",
    "created_at": "created_at",
    "user_id": "owner_id",
    "username": "owner__username",
    "action": "action",
    "index": "index",
    "variant": "variant",
    "mode": "mode",
    "status": "status",
    "provider": "provider",
    "provider_job_id": "provider_job_id",
    "cost": "cost",
    "charge": "charge",
    "fail_kind": "fail_kind",
    "fail_reason": "fail_reason",
    "fail_note": "fail_note",
    "submitted_at": "submitted_at",
    "started_at": "started_at",
    "finished_at": "finished_at",
    "parent": "parent__code",
    "root": "root__code",
    "prompt": "prompt",
}


def jobs_csv(period: Period, user: Any = None) -> Iterator[str]:
    names = list(JOB_COLUMNS)
    created, finished = names.index("created_at"), names.index("finished_at")

    def rows() -> Iterator[list[Any]]:
        for row in (
            jobs_in(period, user)
            .order_by("created_at", "id")
            .values_list(*JOB_COLUMNS.values())
            .iterator(chunk_size=CHUNK)
        ):
            seconds = (
                round((row[finished] - row[created]).total_seconds(), 1) if row[finished] else ""
            )
            yield [*row, seconds]

    return csv_lines([*names, "duration_seconds"], rows())
