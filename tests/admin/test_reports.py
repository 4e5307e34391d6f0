"""The usage report and the CSV exports: their figures equal sums computed here, row by row
in Python, from the jobs, ledger entries and provider calls themselves."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter, defaultdict
from typing import Any

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice import reports
from backoffice.reports import exports
from billing import ledger
from billing.models import CreditAccount, LedgerEntry
from gallery.models import Job, ProviderCall
from tests.admin.conftest import World

pytestmark = pytest.mark.django_db


def last_30_days() -> tuple[dt.datetime, dt.datetime]:
    today = timezone.localdate()
    start = timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=29), dt.time()))
    return start, start + dt.timedelta(days=30)


def within(when: dt.datetime, bounds: tuple[dt.datetime, dt.datetime]) -> bool:
    return bounds[0] <= when < bounds[1]


def expected_jobs(bounds: tuple[dt.datetime, dt.datetime], user: Any = None) -> list[Job]:
    return [
        job
        for job in Job.objects.all()
        if within(job.created_at, bounds) and (user is None or job.owner_id == user.pk)
    ]


def expected_entries(
    bounds: tuple[dt.datetime, dt.datetime], user: Any = None
) -> list[LedgerEntry]:
    return [
        entry
        for entry in LedgerEntry.objects.select_related("account", "job")
        if within(entry.created_at, bounds) and (user is None or entry.account.user_id == user.pk)
    ]


def test_the_report_page_equals_independent_sums(root_client: Client, world: World) -> None:
    response = root_client.get(reverse("admin:reports_usage"))
    assert response.status_code == 200
    context = response.context
    bounds = last_30_days()
    jobs = expected_jobs(bounds)
    entries = expected_entries(bounds)
    assert world.old not in jobs and len(jobs) == 5

    total = context["total"].figures
    assert total["jobs"] == len(jobs)
    assert total["succeeded"] == sum(job.status == "succeeded" for job in jobs)
    assert total["failed"] == sum(job.status == "failed" for job in jobs)
    assert total["cancelled"] == sum(job.status == "cancelled" for job in jobs)
    assert total["in_flight"] == sum(job.status in Job.IN_FLIGHT for job in jobs)
    for kind, name in (("capture", "charged"), ("release", "refunded"), ("hold", "held")):
        wanted = sum(e.amount for e in entries if e.kind == kind and e.job_id)
        assert total[name] == wanted, name
    assert total["charged"] == 56 + 21  # alice's fast imagine, bob's relax one

    # By action and mode.
    counted = Counter((job.action, job.mode) for job in jobs)
    shown = {line.label: line.figures["jobs"] for line in context["lines"]}
    assert shown == {"Imagine · Fast": counted[("imagine", "fast")], "Imagine · Relax": 1}
    modes = {line.label: line.figures["charged"] for line in context["modes"]}
    assert modes == {"Fast": 56, "Relax": 21}

    # Credits outside jobs: the welcome grants (alice, bob, root) and alice's present.
    granted = sum(e.amount for e in entries if e.kind in ("grant", "purchase"))
    assert context["outside"]["granted"] == granted == 3 * 1000 + 500

    # Failures and refunds by kind.
    failures = {line.label: line.figures for line in context["failures"]}
    refunds: dict[str, int] = defaultdict(int)
    for entry in entries:
        if entry.kind == "release":
            refunds[entry.job.get_fail_kind_display()] += entry.amount
    assert {label: f["refunded"] for label, f in failures.items()} == refunds
    assert failures["Prompt rejected"]["jobs"] == 1 and failures["Cancelled"]["jobs"] == 1
    totals = context["failures_total"].figures
    assert totals["refunds"] == sum(e.kind == "release" for e in entries)
    assert totals["refunded"] == sum(refunds.values())
    assert totals["jobs"] == sum(job.status in ("failed", "cancelled") for job in jobs)

    # The ledger by kind.
    by_kind = {line.label: line.figures for line in context["ledger"]}
    for kind, label in LedgerEntry.Kind.choices:
        mine = [e for e in entries if e.kind == kind]
        if not mine:
            assert label not in by_kind
            continue
        assert by_kind[label]["entries"] == len(mine)
        assert by_kind[label]["amount"] == sum(e.amount for e in mine)
        assert by_kind[label]["balance"] == sum(e.balance_delta for e in mine)
        assert by_kind[label]["held"] == sum(e.held_delta for e in mine)

    # Per user, with the books check.
    users = {line.username: line for line in context["users"]}
    assert set(users) == {"alice", "bob", "root"}
    alice_entries = [e for e in entries if e.account.user_id == world.alice.pk]
    assert users["alice"].figures["jobs"] == 4
    assert users["alice"].figures["balance_change"] == sum(e.balance_delta for e in alice_entries)
    account = CreditAccount.objects.get(user=world.alice)
    assert (users["alice"].balance, users["alice"].held) == (account.balance, account.held)
    assert users["alice"].books_balance and users["bob"].books_balance
    body = response.content.decode()
    assert "<svg" in body and "Credits charged per day" in body


def test_the_report_for_one_user(root_client: Client, world: World) -> None:
    response = root_client.get(reverse("admin:reports_usage"), {"user": "bob"})
    context = response.context
    assert context["subject"] == world.bob
    assert context["total"].figures["jobs"] == 1
    assert context["total"].figures["charged"] == 21
    # Bob's calls only: his relax job made none, the batched polls belong to nobody.
    assert context["endpoints"] == []
    response = root_client.get(reverse("admin:reports_usage"), {"user": "nobody"})
    assert "No user is called" in response.content.decode()


def test_a_wider_range_takes_in_the_old_job(root_client: Client, world: World) -> None:
    since = (timezone.localdate() - dt.timedelta(days=60)).isoformat()
    response = root_client.get(reverse("admin:reports_usage"), {"since": since})
    assert response.context["total"].figures["jobs"] == 6
    assert response.context["total"].figures["charged"] == 56 + 21 + 56


def test_the_range_is_checked(root_client: Client) -> None:
    response = root_client.get(
        reverse("admin:reports_usage"), {"since": "2026-03-10", "until": "2026-03-01"}
    )
    assert "The range ends before it starts." in response.content.decode()
    assert "period" not in response.context
    response = root_client.get(
        reverse("admin:reports_usage"), {"since": "2024-01-01", "until": "2026-03-01"}
    )
    assert "At most 366 days" in response.content.decode()
    bad = root_client.get(reverse("admin:reports_ledger_csv"), {"since": "x"})
    assert bad.status_code == 400


def test_provider_endpoints_latency_and_errors(root_client: Client, world: World) -> None:
    response = root_client.get(reverse("admin:reports_usage"))
    found = {(e.method, e.path): e for e in response.context["endpoints"]}
    calls = list(ProviderCall.objects.all())
    fetches = [c for c in calls if c.path.endswith("/fetch")]
    fetch = found[("GET", "/mj/task/{id}/fetch")]
    assert fetch.calls == len(fetches) == 3
    assert fetch.errors == 1
    assert fetch.avg_ms == pytest.approx(sum(c.latency_ms for c in fetches) / 3)
    assert (fetch.p95_ms, fetch.max_ms) == (900, 900)
    polls = found[("POST", "/mj/task/list-by-condition")]
    assert (polls.calls, polls.errors, polls.error_rate) == (2, 1, 0.5)
    assert found[("POST", "/mj-fast/mj/submit/imagine")].errors == 0
    assert sum(e.calls for e in found.values()) == len(calls)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/mj/task/1730000000000001/fetch", "/mj/task/{id}/fetch"),
        ("/api/v1/task/4f1c2b7e-1d2a-4b8e-9d6e-0a1b2c3d4e5f", "/api/v1/task/{id}"),
        ("/mj/task/list-by-condition", "/mj/task/list-by-condition"),
        ("/mj-fast/mj/submit/imagine", "/mj-fast/mj/submit/imagine"),
        ("/mj/v2/fetch?task_id=abc123", "/mj/v2/fetch"),
        ("/images/ab12cd34ef56gh78.png", "/images/{id}"),
        ("https://cdn.example.com/attachments/123456/grid_0.png", "/attachments/{id}/grid_0.png"),
    ],
)
def test_endpoints_hide_task_ids(path: str, expected: str) -> None:
    assert reports.endpoint(path) == expected


def test_p95_is_the_nearest_rank() -> None:
    item = reports.Endpoint("p", "GET", "/x")
    for latency in range(1, 101):  # 1..100 ms
        item.calls += 1
        item.latencies[latency] += 1
    assert item.p95_ms == 95
    item.latencies[1000] += 1
    item.calls += 1
    assert item.p95_ms == 96


def test_the_daily_chart_adds_up(world: World) -> None:
    chart = reports.daily(reports.last_days())
    spend, jobs = chart.series
    assert spend.total == 56 + 21 and jobs.total == 5
    today = [bar for bar in jobs.bars if bar.day == timezone.localdate()]
    assert today[0].value == 5 and today[0].height > 0
    assert all(bar.height == 0 for bar in jobs.bars if bar.day != timezone.localdate())


# --- CSV ----------------------------------------------------------------------------------


def read_csv(response: Any) -> list[dict[str, str]]:
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="mjweb-')
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_usage_csv_parses_back_to_the_same_figures(root_client: Client, world: World) -> None:
    page = root_client.get(reverse("admin:reports_usage")).context
    rows = read_csv(root_client.get(reverse("admin:reports_usage_csv")))
    assert set(reports.USAGE_HEADER) == set(rows[0])
    for name in ("jobs", "succeeded", "failed", "cancelled", "charged", "refunded", "held"):
        assert sum(int(row[name]) for row in rows) == page["total"].figures[name], name
    bounds = last_30_days()
    entries = expected_entries(bounds)
    assert sum(int(row["balance_change"]) for row in rows) == sum(e.balance_delta for e in entries)
    assert sum(int(row["granted"]) for row in rows) == page["outside"]["granted"]
    alice_fast = [r for r in rows if r["username"] == "alice" and r["mode"] == "fast"]
    assert len(alice_fast) == 1 and alice_fast[0]["action"] == "imagine"
    assert (alice_fast[0]["jobs"], alice_fast[0]["charged"]) == ("4", "56")
    no_job = [r for r in rows if r["username"] == "alice" and r["action"] == ""]
    assert no_job[0]["granted"] == "1500"


def test_the_ledger_csv_reconciles_a_users_balance(root_client: Client, world: World) -> None:
    ledger.adjust(world.alice, -7, actor=world.bob, reason="=HYPERLINK(evil)", key="adj")
    query = {"since": "2025-01-01", "until": timezone.localdate().isoformat(), "user": "alice"}
    rows = read_csv(root_client.get(reverse("admin:reports_ledger_csv"), query))
    account = CreditAccount.objects.get(user=world.alice)
    assert len(rows) == LedgerEntry.objects.filter(account=account).count()
    assert sum(int(row["balance_delta"]) for row in rows) == account.balance
    assert sum(int(row["held_delta"]) for row in rows) == account.held
    assert int(rows[-1]["balance_after"]) == account.balance
    assert [int(row["id"]) for row in rows] == sorted(int(row["id"]) for row in rows)
    adjustment = rows[-1]
    assert (adjustment["kind"], adjustment["amount"], adjustment["actor"]) == (
        "adjustment",
        "-7",
        "bob",
    )
    # A memo a spreadsheet would run as a formula is defused.
    assert adjustment["memo"] == "'=HYPERLINK(evil)"
    charge = next(row for row in rows if row["kind"] == "capture")
    assert charge["job"] == str(world.succeeded.code) and charge["job_mode"] == "fast"


def test_the_ledger_csv_for_everyone_in_range(root_client: Client, world: World) -> None:
    rows = read_csv(root_client.get(reverse("admin:reports_ledger_csv")))
    entries = expected_entries(last_30_days())
    assert sorted(int(row["id"]) for row in rows) == sorted(e.pk for e in entries)
    by_kind: dict[str, int] = defaultdict(int)
    for row in rows:
        by_kind[row["kind"]] += int(row["amount"])
    wanted: dict[str, int] = defaultdict(int)
    for entry in entries:
        wanted[entry.kind] += entry.amount
    assert by_kind == wanted


def test_the_jobs_csv(root_client: Client, world: World) -> None:
    rows = read_csv(root_client.get(reverse("admin:reports_jobs_csv")))
    jobs = expected_jobs(last_30_days())
    assert {row["code"] for row in rows} == {str(job.code) for job in jobs}
    succeeded = next(row for row in rows if row["code"] == str(world.succeeded.code))
    assert succeeded["status"] == "succeeded" and succeeded["cost"] == "56"
    assert succeeded["username"] == "alice" and succeeded["root"] == str(world.succeeded.code)
    assert float(succeeded["duration_seconds"]) >= 0
    running = next(row for row in rows if row["code"] == str(world.running.code))
    assert running["duration_seconds"] == "" and running["finished_at"] == ""
    assert sum(int(row["cost"]) for row in rows) == sum(job.cost for job in jobs)


def test_the_endpoints_csv(root_client: Client, world: World) -> None:
    rows = read_csv(root_client.get(reverse("admin:reports_endpoints_csv")))
    assert sum(int(row["calls"]) for row in rows) == ProviderCall.objects.count()
    fetch = next(row for row in rows if row["endpoint"] == "/mj/task/{id}/fetch")
    assert (fetch["calls"], fetch["errors"], fetch["p95_ms"]) == ("3", "1", "900")


def test_exports_stream_in_pieces_with_one_query(
    root_client: Client, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(40):
        ledger.grant(alice, 1, key=f"many:{n}", memo=f"grant number {n}")
    monkeypatch.setattr(exports, "FLUSH_BYTES", 500)  # csv_lines reads it there
    response = root_client.get(reverse("admin:reports_ledger_csv"))
    assert isinstance(response, StreamingHttpResponse)
    pieces = iter(response.streaming_content)
    with CaptureQueriesContext(connection) as queries:
        first = next(pieces)
        rest = list(pieces)
    assert first.startswith(b"id,created_at,user_id,username,kind,amount")
    assert len(rest) >= 5  # sent as the rows came, not built whole first
    assert len(queries) == 1  # usernames, jobs and actors come with the rows (no N+1)
    lines = (first + b"".join(rest)).decode().splitlines()
    # The header, alice's and root's welcome grants, and 40 grants.
    assert len(lines) == 1 + 2 + 40


def test_the_report_sees_another_time_zone(
    root_client: Client, world: World, settings: Any
) -> None:
    """Days are the site's days: a range of one day in Tokyo starts at 15:00 UTC before."""
    settings.TIME_ZONE = "Asia/Tokyo"
    timezone.activate("Asia/Tokyo")
    try:
        period = reports.Period(dt.date(2026, 3, 1), dt.date(2026, 3, 1))
        assert period.start.astimezone(dt.UTC) == dt.datetime(2026, 2, 28, 15, tzinfo=dt.UTC)
        assert period.end - period.start == dt.timedelta(days=1)
    finally:
        timezone.deactivate()
