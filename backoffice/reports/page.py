"""Every figure the usage report page shows for a range (and optionally one user)."""

from __future__ import annotations

from typing import Any

from backoffice.reports.calls import endpoints
from backoffice.reports.charts import daily
from backoffice.reports.costs import costs
from backoffice.reports.period import Period
from backoffice.reports.purchases import purchases
from backoffice.reports.usage import (
    by_action_and_mode,
    by_mode,
    by_user,
    credits_outside_jobs,
    failures,
    ledger_by_kind,
    total_of,
)


def figures(period: Period, user: Any = None) -> dict[str, Any]:
    lines = by_action_and_mode(period, user)
    users, active_users = by_user(period, user)
    failed = failures(period, user)
    return {
        "lines": lines,
        "total": total_of(lines),
        "modes": by_mode(lines),
        "outside": credits_outside_jobs(period, user),
        "users": users,
        "active_users": active_users,
        "failures": failed,
        "failures_total": total_of(failed),
        "ledger": ledger_by_kind(period, user),
        "endpoints": endpoints(period, user),
        "chart": daily(period, user),
        **costs(period, user),
        "purchases": purchases(period, user),
    }
