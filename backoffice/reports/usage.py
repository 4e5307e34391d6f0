"""Usage: jobs and credits by user, action and speed mode (usage_rows, by_action_and_mode,
by_mode, by_user), failures and refunds, the ledger by kind, totals and the credits that
belong to no job."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

from django.db.models import Count, Q

from backoffice.reports.period import (
    CHUNK,
    CREDIT_FIELDS,
    CREDIT_SUMS,
    FIGURES,
    JOB_COUNTS,
    JOB_FIELDS,
    Period,
    _sum,
    entries_in,
    jobs_in,
)
from billing.models import CreditAccount, EntryKind, LedgerEntry
from gallery.models import Job
from mjweb import catalogue

FAILED = (Job.Status.FAILED, Job.Status.CANCELLED)
MODES = list(catalogue.MODE_NAMES)
ACTIONS = list(catalogue.ACTION_NAMES)


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
            name = dict(catalogue.choices(catalogue.ACTION_NAMES)).get(action, action)
            mode_name = dict(catalogue.choices(catalogue.MODE_NAMES)).get(mode, mode)
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
        label = dict(catalogue.choices(catalogue.MODE_NAMES)).get(mode, mode)
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
