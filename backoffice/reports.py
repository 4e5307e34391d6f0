"""The usage report and the CSV exports: figures for a date range, from jobs, the ledger and
the provider calls.

Time bases: jobs count by when they were created, credits by when their ledger entry was
written, provider calls by when they were made, all in the site's time zone (TIME_ZONE).
So the credit figures of a range add up to exactly what the ledger export of that range
holds, and a user's `balance_change` over all time equals their balance.

Everything that can grow with the data is aggregated in SQL or streamed with
`.iterator(chunk_size=...)`; nothing loads a whole table into memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from billing.models import CreditAccount, EntryKind, LedgerEntry
from gallery.models import Job, ProviderCall

CHUNK = 2000
MAX_REPORT_DAYS = 366
MAX_EXPORT_DAYS = 3660
FAILED = (Job.Status.FAILED, Job.Status.CANCELLED)
MODES = [mode for mode, _ in Job.Mode.choices]
ACTIONS = [action for action, _ in Job.Action.choices]

JOB_COUNTS: dict[str, Any] = {
    "jobs": Count("pk"),
    "succeeded": Count("pk", filter=Q(status=Job.Status.SUCCEEDED)),
    "failed": Count("pk", filter=Q(status=Job.Status.FAILED)),
    "cancelled": Count("pk", filter=Q(status=Job.Status.CANCELLED)),
    "in_flight": Count("pk", filter=Q(status__in=Job.IN_FLIGHT)),
}


def _sum(expression: str, condition: Q | None = None) -> Coalesce:
    return Coalesce(Sum(expression, filter=condition), 0)


CREDIT_SUMS: dict[str, Any] = {
    "held": _sum("amount", Q(kind=EntryKind.HOLD)),
    "charged": _sum("amount", Q(kind=EntryKind.CAPTURE)),
    "refunded": _sum("amount", Q(kind=EntryKind.RELEASE)),
    "granted": _sum("amount", Q(kind__in=[EntryKind.GRANT, EntryKind.PURCHASE])),
    "adjusted": _sum("amount", Q(kind=EntryKind.ADJUSTMENT)),
    "balance_change": _sum("balance_delta"),
    "held_change": _sum("held_delta"),
}
JOB_FIELDS = list(JOB_COUNTS)
CREDIT_FIELDS = list(CREDIT_SUMS)
FIGURES = JOB_FIELDS + CREDIT_FIELDS


@dataclass(frozen=True)
class Period:
    """Whole days `since` to `until`, both included, in the site's time zone."""

    since: dt.date
    until: dt.date

    @property
    def start(self) -> dt.datetime:
        return _midnight(self.since)

    @property
    def end(self) -> dt.datetime:
        return _midnight(self.until + dt.timedelta(days=1))

    @property
    def days(self) -> list[dt.date]:
        count = (self.until - self.since).days + 1
        return [self.since + dt.timedelta(days=n) for n in range(count)]

    def slug(self) -> str:
        return f"{self.since:%Y%m%d}-{self.until:%Y%m%d}"


def _midnight(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time()))


def last_days(count: int = 30) -> Period:
    today = timezone.localdate()
    return Period(today - dt.timedelta(days=count - 1), today)


class PeriodForm(forms.Form):
    since = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(
        label="To", widget=forms.DateInput(attrs={"type": "date"}), help_text="Included."
    )
    user = forms.CharField(
        label="User", required=False, max_length=150, help_text="A username, or empty for all."
    )

    def __init__(self, *args: Any, max_days: int = MAX_REPORT_DAYS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_days = max_days

    @classmethod
    def from_query(cls, query: Any, *, max_days: int = MAX_REPORT_DAYS) -> PeriodForm:
        """Bound to the query string, with the last 30 days where it names no dates."""
        default = last_days()
        data = {
            "since": query.get("since") or default.since.isoformat(),
            "until": query.get("until") or default.until.isoformat(),
            "user": query.get("user", ""),
        }
        return cls(data, max_days=max_days)

    def clean_user(self) -> Any:
        name = self.cleaned_data["user"].strip()
        if not name:
            return None
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            raise forms.ValidationError(f"No user is called {name!r}.")
        return user

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until:
            if since > until:
                self.add_error("until", "The range ends before it starts.")
            elif (until - since).days + 1 > self.max_days:
                self.add_error("until", f"At most {self.max_days} days at a time.")
        return data

    @property
    def period(self) -> Period:
        return Period(self.cleaned_data["since"], self.cleaned_data["until"])

    @property
    def subject(self) -> Any:
        """The user the figures are limited to, or None for everyone."""
        return self.cleaned_data.get("user")


# --- the querysets every figure starts from --------------------------------------------


def jobs_in(period: Period, user: Any = None) -> QuerySet[Job]:
    jobs = Job.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    return jobs.filter(owner=user) if user is not None else jobs


def entries_in(period: Period, user: Any = None) -> QuerySet[LedgerEntry]:
    entries = LedgerEntry.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    return entries.filter(account__user=user) if user is not None else entries


def calls_in(period: Period, user: Any = None) -> QuerySet[ProviderCall]:
    calls = ProviderCall.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    return calls.filter(job__owner=user) if user is not None else calls


# --- usage: jobs and credits by user, action and speed mode -----------------------------


def _blank() -> dict[str, int]:
    return dict.fromkeys(FIGURES, 0)


def _order(action: str, mode: str) -> tuple[int, int]:
    # Rows for credits that belong to no job (action "") come last.
    a = ACTIONS.index(action) if action in ACTIONS else len(ACTIONS)
    m = MODES.index(mode) if mode in MODES else len(MODES)
    return (a, m)


def usage_rows(period: Period, user: Any = None) -> Iterator[dict[str, Any]]:
    """One row per (user, action, mode) with job counts and credits, plus one row per user
    (action and mode empty) for credits that belong to no job: grants, purchases and
    adjustments. Streamed user by user: both queries come ordered by user id and are
    merged as they arrive."""
    jobs = (
        jobs_in(period, user)
        .values("owner_id", "owner__username", "action", "mode")
        .annotate(**JOB_COUNTS)
        .order_by("owner_id")
        .iterator(chunk_size=CHUNK)
    )
    credits = (
        entries_in(period, user)
        .values("account__user_id", "account__user__username", "job__action", "job__mode")
        .annotate(**CREDIT_SUMS)
        .order_by("account__user_id")
        .iterator(chunk_size=CHUNK)
    )
    job_groups = groupby(jobs, key=itemgetter("owner_id"))
    credit_groups = groupby(credits, key=itemgetter("account__user_id"))
    next_jobs = next(job_groups, None)
    next_credits = next(credit_groups, None)
    while next_jobs is not None or next_credits is not None:
        user_id = min(group[0] for group in (next_jobs, next_credits) if group is not None)
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        username = ""
        if next_jobs is not None and next_jobs[0] == user_id:
            for row in next_jobs[1]:
                username = row["owner__username"]
                figures = rows.setdefault((row["action"], row["mode"]), _blank())
                for name in JOB_FIELDS:
                    figures[name] += row[name]
            next_jobs = next(job_groups, None)
        if next_credits is not None and next_credits[0] == user_id:
            for row in next_credits[1]:
                username = row["account__user__username"]
                key = (row["job__action"] or "", row["job__mode"] or "")
                figures = rows.setdefault(key, _blank())
                for name in CREDIT_FIELDS:
                    figures[name] += row[name]
            next_credits = next(credit_groups, None)
        for (action, mode), figures in sorted(rows.items(), key=lambda item: _order(*item[0])):
            yield {
                "user_id": user_id,
                "username": username,
                "action": action,
                "mode": mode,
                **figures,
            }


@dataclass
class Line:
    """One row of a report table: a label and its figures."""

    label: str
    figures: dict[str, int] = field(default_factory=_blank)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, figures: dict[str, Any], names: Iterable[str] | None = None) -> None:
        for name in figures if names is None else names:
            self.figures[name] = self.figures.get(name, 0) + int(figures.get(name) or 0)


def _total(lines: Iterable[Line], label: str = "Total") -> Line:
    total = Line(label)
    for line in lines:
        total.add(line.figures)
    return total


def by_action_and_mode(period: Period, user: Any = None) -> list[Line]:
    """Jobs and their credits per (action, mode), the ones with any activity."""
    lines: dict[tuple[str, str], Line] = {}

    def line(action: str, mode: str) -> Line:
        if (action, mode) not in lines:
            name = Job.Action(action).label if action in ACTIONS else action
            mode_name = Job.Mode(mode).label if mode in MODES else mode
            lines[(action, mode)] = Line(f"{name} · {mode_name}", extra={"mode": mode})
        return lines[(action, mode)]

    jobs = jobs_in(period, user).values("action", "mode").annotate(**JOB_COUNTS).order_by()
    for row in jobs:
        line(row["action"], row["mode"]).add(row, JOB_FIELDS)
    credits = (
        entries_in(period, user)
        .filter(job__isnull=False)
        .values("job__action", "job__mode")
        .annotate(**CREDIT_SUMS)
        .order_by()
    )
    for row in credits:
        line(row["job__action"], row["job__mode"]).add(row, CREDIT_FIELDS)
    return [lines[key] for key in sorted(lines, key=lambda key: _order(*key))]


def by_mode(lines: list[Line]) -> list[Line]:
    totals: dict[str, Line] = {}
    for line in lines:
        mode = line.extra["mode"]
        label = Job.Mode(mode).label if mode in MODES else mode
        totals.setdefault(mode, Line(label)).add(line.figures)
    return [totals[mode] for mode in MODES if mode in totals]


@dataclass
class UserLine:
    user_id: int
    username: str
    figures: dict[str, int]
    balance: int = 0
    held: int = 0
    # The account equals the sum of all its entries (the ledger's invariant), checked here.
    books_balance: bool = True


def by_user(period: Period, user: Any = None, limit: int = 100) -> tuple[list[UserLine], int]:
    """Per-user totals of the range (the biggest spenders first, at most `limit`), with each
    one's current balance and whether their account equals the sum of their entries.
    Returns the lines and how many users had activity in all."""
    totals: dict[int, UserLine] = {}
    for row in usage_rows(period, user):
        line = totals.get(row["user_id"])
        if line is None:
            line = totals[row["user_id"]] = UserLine(row["user_id"], row["username"], _blank())
        for name in FIGURES:
            line.figures[name] += row[name]
    ranked = sorted(
        totals.values(),
        key=lambda line: (-line.figures["charged"], -line.figures["jobs"], line.username),
    )
    shown = ranked[:limit]
    ids = [line.user_id for line in shown]
    accounts = {
        account["user_id"]: account
        for account in CreditAccount.objects.filter(user_id__in=ids).values(
            "user_id", "balance", "held"
        )
    }
    sums = {
        row["account__user_id"]: row
        for row in LedgerEntry.objects.filter(account__user_id__in=ids)
        .values("account__user_id")
        .annotate(balance=_sum("balance_delta"), held=_sum("held_delta"))
        .order_by()
    }
    for line in shown:
        account = accounts.get(line.user_id, {"balance": 0, "held": 0})
        summed = sums.get(line.user_id, {"balance": 0, "held": 0})
        line.balance, line.held = account["balance"], account["held"]
        line.books_balance = (line.balance, line.held) == (summed["balance"], summed["held"])
    return shown, len(totals)


# --- failures, refunds, the ledger by kind ------------------------------------------------


def failures(period: Period, user: Any = None) -> list[Line]:
    """Jobs that failed or were cancelled, by fail kind, with the refunds written for jobs
    of that kind in the range."""
    lines: dict[str, Line] = {}

    def line(kind: str) -> Line:
        if kind not in lines:
            label = Job.FailKind(kind).label if kind in Job.FailKind.values else kind or "—"
            lines[kind] = Line(label, {"jobs": 0, "refunds": 0, "refunded": 0})
        return lines[kind]

    failed = (
        jobs_in(period, user)
        .filter(status__in=FAILED)
        .values("fail_kind")
        .annotate(jobs=Count("pk"))
        .order_by()
    )
    for row in failed:
        line(row["fail_kind"]).figures["jobs"] += row["jobs"]
    refunds = (
        entries_in(period, user)
        .filter(kind=EntryKind.RELEASE)
        .values("job__fail_kind")
        .annotate(refunds=Count("pk"), refunded=_sum("amount"))
        .order_by()
    )
    for row in refunds:
        figures = line(row["job__fail_kind"] or "").figures
        figures["refunds"] += row["refunds"]
        figures["refunded"] += row["refunded"]
    order = list(Job.FailKind.values)
    return [lines[k] for k in sorted(lines, key=lambda k: order.index(k) if k in order else 99)]


def ledger_by_kind(period: Period, user: Any = None) -> list[Line]:
    rows = (
        entries_in(period, user)
        .values("kind")
        .annotate(
            entries=Count("pk"),
            amount=_sum("amount"),
            balance=_sum("balance_delta"),
            held=_sum("held_delta"),
        )
        .order_by()
    )
    found = {row["kind"]: row for row in rows}
    return [
        Line(label, {name: found[kind][name] for name in ("entries", "amount", "balance", "held")})
        for kind, label in EntryKind.choices
        if kind in found
    ]


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


def is_error_q() -> Q:
    """No answer, an HTTP error status, or a transport error."""
    return Q(status_code__isnull=True) | Q(status_code__gte=400) | ~Q(error="")


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
        .values_list("provider", "method", "path", "latency_ms", "status_code", "error")
        .iterator(chunk_size=CHUNK)
    )
    for provider, method, path, latency, status, error in calls:
        key = (provider, method, endpoint(path))
        item = found.get(key)
        if item is None:
            item = found[key] = Endpoint(*key)
        item.calls += 1
        if status is None or status >= 400 or error:
            item.errors += 1
        item.total_ms += latency
        item.max_ms = max(item.max_ms, latency)
        item.latencies[latency] += 1
    return sorted(found.values(), key=lambda item: (item.provider, -item.calls, item.path))


# --- the daily chart ---------------------------------------------------------------------


@dataclass
class Bar:
    day: dt.date
    value: int
    x: float
    y: float
    height: float


@dataclass
class Series:
    title: str
    unit: str
    bars: list[Bar]
    top: int
    total: int


@dataclass
class Chart:
    """Two bar charts sharing the days: credits charged and jobs created, drawn as inline
    SVG by templates/admin/reports/_chart.html (no script: the CSP allows none)."""

    width: int
    panel_height: int
    series: list[Series]
    labels: list[tuple[float, str]]
    bar_width: float


def _nice_top(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (a round axis top)."""
    if value <= 0:
        return 1
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def daily(period: Period, user: Any = None) -> Chart:
    tz = timezone.get_current_timezone()
    jobs = {
        row["day"]: row["n"]
        for row in jobs_in(period, user)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(n=Count("pk"))
        .order_by()
    }
    spend = {
        row["day"]: row["n"]
        for row in entries_in(period, user)
        .filter(kind=EntryKind.CAPTURE)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(n=_sum("amount"))
        .order_by()
    }
    days = period.days
    width, panel, left = 760, 120, 48
    step = (width - left - 8) / len(days)
    bar_width = max(1.0, step * 0.7)
    series = []
    for title, unit, values in (
        ("Credits charged per day", "credits", spend),
        ("Jobs created per day", "jobs", jobs),
    ):
        top = _nice_top(max((values.get(day, 0) for day in days), default=0))
        bars = []
        for n, day in enumerate(days):
            value = int(values.get(day, 0))
            height = round(value / top * (panel - 24), 1)
            x = round(left + n * step + (step - bar_width) / 2, 1)
            bars.append(Bar(day, value, x, round(panel - 4 - height, 1), height))
        series.append(Series(title, unit, bars, top, sum(bar.value for bar in bars)))
    every = max(1, round(len(days) / 6))
    labels = [
        (round(left + n * step + step / 2, 1), f"{day:%b} {day.day}")
        for n, day in enumerate(days)
        if n % every == 0
    ]
    return Chart(width, panel, series, labels, round(bar_width, 1))


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


def total_of(lines: list[Line], label: str = "Total") -> Line:
    return _total(lines, label)


def credits_outside_jobs(period: Period, user: Any = None) -> dict[str, int]:
    return (
        entries_in(period, user)
        .filter(job__isnull=True)
        .aggregate(
            granted=_sum("amount", Q(kind__in=[EntryKind.GRANT, EntryKind.PURCHASE])),
            adjusted=_sum("amount", Q(kind=EntryKind.ADJUSTMENT)),
            entries=Count("pk"),
        )
    )
