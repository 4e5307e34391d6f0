"""The daily chart: credits charged and jobs created per day (Bar, Series, Chart, daily)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from backoffice.reports.period import Period, _sum, entries_in, jobs_in
from billing.models import EntryKind

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
