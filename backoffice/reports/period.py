"""The date range a report covers (Period, PeriodForm), the querysets every figure starts
from (jobs_in, entries_in, calls_in) and the counts and sums the other modules share."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import EntryKind, LedgerEntry
from gallery.models import Job, ProviderCall

CHUNK = 2000
MAX_REPORT_DAYS = 366
MAX_EXPORT_DAYS = 3660

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
