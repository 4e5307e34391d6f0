"""What the providers cost against what the users paid: per provider account, action and
speed mode, for the jobs made in the range.

- provider cost: what each job's account bills for it (`Job.provider_cost`, recorded when
  the account took the submit, 0 once the provider failed it: it refunds those);
- credits charged: the prices of the jobs whose hold was captured (`Job.cost`, charge
  "captured"), worth MJWEB_CREDIT_USD dollars each;
- margin: that worth less the provider cost.
Both sides count the same jobs (created in the range), so a row's margin is exactly what
its jobs earned; the provider's own bill is compared in reconciliation (gallery.reconcile).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, DecimalField, IntegerField, Q, Sum, Value
from django.db.models.functions import Coalesce

from backoffice.reports.exports import csv_lines
from backoffice.reports.period import Period, jobs_in
from gallery.models import JobCharge, ProviderAccount
from mjweb import catalogue

CENT = Decimal("0.0001")
COST_SUMS: dict[str, Any] = {
    "jobs": Count("pk"),
    "billed": Count("pk", filter=Q(provider_cost__gt=0)),
    "provider_cost": Coalesce(Sum("provider_cost"), Value(Decimal(0)), output_field=DecimalField()),
    "credits_charged": Coalesce(
        Sum("cost", filter=Q(charge=JobCharge.CAPTURED)), Value(0), output_field=IntegerField()
    ),
}


@dataclass
class CostLine:
    label: str
    jobs: int = 0
    billed: int = 0
    provider_cost: Decimal = Decimal(0)
    credits_charged: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        self.jobs += row["jobs"]
        self.billed += row["billed"]
        self.provider_cost += Decimal(row["provider_cost"])
        self.credits_charged += int(row["credits_charged"])

    @property
    def revenue(self) -> Decimal:
        """What the credits charged are worth, in dollars."""
        return (self.credits_charged * settings.MJWEB_CREDIT_USD).quantize(CENT)

    @property
    def margin(self) -> Decimal:
        return (self.revenue - self.provider_cost).quantize(CENT)

    @property
    def margin_share(self) -> str:
        """The margin as a share of the revenue ("—" without revenue)."""
        if not self.revenue:
            return "—"
        return f"{self.margin / self.revenue:.0%}"


def cost_rows(period: Period, user: Any = None) -> Iterator[dict[str, Any]]:
    """One row per (account, action, mode) with jobs, provider cost and credits charged."""
    rows = (
        jobs_in(period, user)
        .values("provider", "action", "mode")
        .annotate(**COST_SUMS)
        .order_by("provider", "action", "mode")
    )
    yield from rows


def _label(action: str, mode: str) -> str:
    names = dict(catalogue.choices(catalogue.ACTION_NAMES))
    modes = dict(catalogue.choices(catalogue.MODE_NAMES))
    return f"{names.get(action, action)} · {modes.get(mode, mode)}"


def costs(period: Period, user: Any = None) -> dict[str, Any]:
    """The cost report: lines per action x mode, per account, and the total."""
    by_action: dict[tuple[str, str], CostLine] = {}
    by_account: dict[str, CostLine] = {}
    total = CostLine("Total")
    accounts = {a.name: str(a) for a in ProviderAccount.objects.only("name", "label")}
    for row in cost_rows(period, user):
        key = (row["action"], row["mode"])
        if key not in by_action:
            by_action[key] = CostLine(_label(*key))
        by_action[key].add(row)
        name = row["provider"]
        if name not in by_account:
            by_account[name] = CostLine(accounts.get(name, name), extra={"name": name})
        by_account[name].add(row)
        total.add(row)
    actions = list(catalogue.ACTION_NAMES)
    modes = list(catalogue.MODE_NAMES)

    def order(key: tuple[str, str]) -> tuple[int, int]:
        action, mode = key
        return (
            actions.index(action) if action in actions else len(actions),
            modes.index(mode) if mode in modes else len(modes),
        )

    return {
        "cost_lines": [by_action[key] for key in sorted(by_action, key=order)],
        "account_lines": [by_account[name] for name in sorted(by_account)],
        "cost_total": total,
        "credit_usd": settings.MJWEB_CREDIT_USD,
    }


COST_HEADER = [
    "account",
    "action",
    "mode",
    "jobs",
    "billed_jobs",
    "provider_cost_usd",
    "credits_charged",
    "credits_worth_usd",
    "margin_usd",
]


def costs_csv(period: Period, user: Any = None) -> Iterator[str]:
    return csv_lines(COST_HEADER, _cost_csv_rows(period, user))


def _cost_csv_rows(period: Period, user: Any = None) -> Iterator[list[Any]]:
    for row in cost_rows(period, user):
        line = CostLine("")
        line.add(row)
        yield [
            row["provider"],
            row["action"],
            row["mode"],
            line.jobs,
            line.billed,
            line.provider_cost.quantize(CENT),
            line.credits_charged,
            line.revenue,
            line.margin,
        ]
