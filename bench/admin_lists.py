"""The admin's lists, the usage report and the CSV exports on 100,000 ledger entries and
100,000 provider calls: times, queries, and the memory a CSV export takes.

    python bench/admin_lists.py                 # throwaway SQLite in a temporary directory
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/admin_lists.py
    python bench/admin_lists.py --rows 20000    # a smaller run

With DATABASE_URL it creates and afterwards drops a throwaway test_<name> database on that
server (Django's test database machinery); it never touches the named database's data.
Every page is timed first with 1% of the rows and then with all of them. A benchmark
prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
import tracemalloc
from typing import Any

import _harness  # first: sets up Django
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

USERS = 200
PAGES = [
    ("jobs", "admin:gallery_job_changelist", ""),
    ("jobs, failed", "admin:gallery_job_changelist", "status__exact=failed"),
    ("jobs, search", "admin:gallery_job_changelist", "q=lighthouse+42"),
    ("ledger", "admin:billing_ledgerentry_changelist", ""),
    ("ledger, charges", "admin:billing_ledgerentry_changelist", "kind__exact=capture"),
    ("ledger, by an admin", "admin:billing_ledgerentry_changelist", "by=admin"),
    ("provider calls", "admin:gallery_providercall_changelist", ""),
    ("provider calls, failed", "admin:gallery_providercall_changelist", "outcome=failed"),
    ("users", "admin:mjweb_user_changelist", ""),
    ("usage report, 30 days", "admin:reports_usage", ""),
]
EXPORTS = [
    ("ledger.csv, 30 days", "admin:reports_ledger_csv"),
    ("jobs.csv, 30 days", "admin:reports_jobs_csv"),
    ("usage.csv, 30 days", "admin:reports_usage_csv"),
]


def build(users: list[Any], jobs: int, start: int) -> None:
    """`jobs` succeeded jobs over the last 30 days, each with a hold and a charge (two ledger
    entries) and two provider calls; 3% failed and refunded instead."""
    from billing.models import CreditAccount, LedgerEntry
    from gallery.models import Job, ProviderCall

    accounts = {a.user_id: a for a in CreditAccount.objects.filter(user__in=users)}
    now = timezone.now()
    rng = random.Random(start)
    batch = 5000
    for first in range(start, start + jobs, batch):
        numbers = range(first, min(first + batch, start + jobs))
        made = []
        for n in numbers:
            failed = n % 33 == 0
            made.append(
                Job(
                    owner=users[n % len(users)],
                    action=Job.Action.IMAGINE if n % 4 else Job.Action.UPSCALE,
                    index=None if n % 4 else 1 + n % 4,
                    mode=("fast", "relax", "turbo")[n % 3],
                    prompt=f"a lighthouse {n} in the fog",
                    provider="simulator",
                    provider_job_id=str(1_700_000_000_000_000 + n),
                    status=Job.Status.FAILED if failed else Job.Status.SUCCEEDED,
                    fail_kind=Job.FailKind.PROVIDER_ERROR if failed else "",
                    charge=Job.Charge.RELEASED if failed else Job.Charge.CAPTURED,
                    cost=56,
                    created_at=now - dt.timedelta(seconds=rng.randrange(30 * 86400)),
                )
            )
        made = Job.objects.bulk_create(made)
        entries, calls = [], []
        for job in made:
            account = accounts[job.owner_id]
            ended = job.created_at + dt.timedelta(seconds=40)
            entries.append(_entry(account, job, "hold", 56, 0, 56, job.created_at))
            if job.status == Job.Status.FAILED:
                entries.append(_entry(account, job, "release", 56, 0, -56, ended))
            else:
                entries.append(_entry(account, job, "capture", 56, -56, -56, ended))
            for path, method in (
                ("/mj-fast/mj/submit/imagine", "POST"),
                (f"/mj/task/{job.provider_job_id}/fetch", "GET"),
            ):
                error = rng.random() < 0.02
                calls.append(
                    ProviderCall(
                        job=job,
                        provider="simulator",
                        method=method,
                        path=path,
                        status_code=502 if error else 200,
                        latency_ms=int(rng.lognormvariate(4.5, 0.6)),
                        request_body='{"prompt": "a lighthouse"}',
                        response_body='{"code": 1, "result": "1700000000000000"}',
                        created_at=job.created_at + dt.timedelta(seconds=1),
                    )
                )
        LedgerEntry.objects.bulk_create(entries, batch_size=2000)
        ProviderCall.objects.bulk_create(calls, batch_size=2000)


def _entry(
    account: Any, job: Any, kind: str, amount: int, balance: int, held: int, when: Any
) -> Any:
    from billing.models import LedgerEntry

    # Figures after are not a running balance here (rows are made in bulk), but they keep
    # the CHECK constraints: the lists and exports read them the same way.
    return LedgerEntry(
        account=account,
        kind=kind,
        amount=amount,
        balance_delta=balance,
        held_delta=held,
        balance_after=1_000_000,
        held_after=56 if kind == "hold" else 0,
        job=job,
        memo=kind,
        key=f"{kind}:{job.code}",
        created_at=when,
    )


def timed(client: Client, url: str, runs: int) -> tuple[float, int]:
    samples = []
    queries = 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            if response.streaming:
                for _chunk in response.streaming_content:
                    pass
            samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        queries = len(captured)
    return statistics.median(samples), queries


def export_memory(client: Client, url: str) -> tuple[int, int]:
    """Bytes sent and the peak Python memory while streaming them."""
    tracemalloc.start()
    response = client.get(url)
    sent = sum(len(chunk) for chunk in response.streaming_content)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return sent, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="ledger entries and calls")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    jobs = max(args.rows // 2, 100)

    with _harness.throwaway_database():
        run(jobs, args.runs)


def run(jobs: int, runs: int) -> None:
    from billing.models import CreditAccount, LedgerEntry
    from gallery.models import Job, ProviderCall
    from mjweb.models import User

    admin = User.objects.create_superuser("bench", "bench@example.com", "pw")
    users = User.objects.bulk_create(
        User(username=f"user{n}", email=f"user{n}@example.com") for n in range(USERS)
    )
    CreditAccount.objects.bulk_create(CreditAccount(user=user, balance=1_000_000) for user in users)
    client = Client()
    client.force_login(admin)
    job = None
    results: dict[str, list[tuple[float, int]]] = {}
    sizes = []
    done = 0
    for target in (max(jobs // 100, 50), jobs):
        started = time.perf_counter()
        build(users, target - done, done)
        done = target
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        built = time.perf_counter() - started
        counts = (LedgerEntry.objects.count(), ProviderCall.objects.count(), Job.objects.count())
        sizes.append(counts)
        print(
            f"{connection.vendor}: {counts[0]:,} ledger entries, {counts[1]:,} provider calls, "
            f"{counts[2]:,} jobs (built in {built:.1f} s)",
            flush=True,
        )
        job = Job.objects.order_by("-id").first()
        assert job is not None
        pages = [*PAGES, ("a job's page", "admin:gallery_job_change", "")]
        for label, name, query in pages:
            url = reverse(name, args=[job.pk]) if name.endswith("_change") else reverse(name)
            results.setdefault(label, []).append(timed(client, f"{url}?{query}", runs))
        for label, name in EXPORTS:
            results.setdefault(label, []).append(timed(client, reverse(name), 1))

    small, large = sizes
    print()
    print(f"{'page (median of runs)':34} {'small':>10} {'large':>10} {'ratio':>6} {'queries':>8}")
    print(f"{'':34} {small[0]:>10,} {large[0]:>10,}  ledger entries")
    for label, ((ms_small, _), (ms_large, queries)) in results.items():
        ratio = ms_large / ms_small if ms_small else 0
        print(f"{label:34} {ms_small:8.1f}ms {ms_large:8.1f}ms {ratio:6.2f} {queries:8}")
    print()
    for label, name in EXPORTS:
        sent, peak = export_memory(client, reverse(name))
        print(f"{label:34} {sent / 1e6:8.1f} MB sent, peak Python memory {peak / 1e6:6.1f} MB")


if __name__ == "__main__":
    main()
