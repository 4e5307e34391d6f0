"""The studio's pages for a user with many jobs: the gallery (first and a deep page, both
views, a search), a job page with a lineage of 300, and the live poll with 3 and 100 running
cards. Prints time (median of several runs) and queries for each.

    python bench/gallery.py                  # throwaway SQLite in a temporary directory
    python bench/gallery.py --jobs 20000     # a bigger gallery
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/gallery.py

With DATABASE_URL it creates and afterwards drops a throwaway test database on that server.
A benchmark prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import _harness  # first: sets up Django
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

RUNS = 7


def build(jobs: int) -> tuple[Any, Any, list[Any]]:
    """A user with `jobs` finished jobs in lineages of 5, one lineage of 300, 100 running."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model

    from gallery.models import Image, Job

    user = get_user_model().objects.create_user("bench", "bench@example.com", "pw")
    now = timezone.now()
    rows = []
    for n in range(jobs):
        rows.append(
            Job(
                owner=user,
                action=Job.Action.IMAGINE if n % 5 == 0 else Job.Action.REROLL,
                prompt=f"a lighthouse number {n} on a cliff",
                status=Job.Status.SUCCEEDED,
                progress=100,
                provider="simulator",
                provider_job_id=f"bench-{n}",
                created_at=now - timedelta(seconds=jobs - n),
            )
        )
    Job.objects.bulk_create(rows, batch_size=2000)
    ids = list(Job.objects.filter(owner=user).order_by("pk").values_list("pk", flat=True))
    updates = []
    for n, pk in enumerate(ids):
        root = ids[n - n % 5]
        updates.append(Job(pk=pk, root_id=root, parent_id=None if pk == root else ids[n - 1]))
    Job.objects.bulk_update(updates, ["root_id", "parent_id"], batch_size=2000)
    images = [
        Image(
            job_id=pk,
            kind="grid",
            index=0,
            file=f"bench/{pk}.png",
            thumbnail=f"bench/{pk}-512.webp",
            width=1024,
            height=1024,
            thumb_width=512,
            thumb_height=512,
            bytes=1,
            sha256="0" * 64,
        )
        for pk in ids
    ]
    Image.objects.bulk_create(images, batch_size=2000)
    chain_root = Job.objects.create(
        owner=user, action="imagine", prompt="a long chain", status="succeeded", progress=100
    )
    chain_root.make_root()
    parent = chain_root
    for _ in range(299):
        parent = Job.objects.create(
            owner=user,
            action="reroll",
            prompt="a long chain",
            status="succeeded",
            parent=parent,
            root_id=chain_root.pk,
        )
    running = [
        Job.objects.create(
            owner=user,
            action="imagine",
            prompt=f"running {n}",
            status="running",
            progress=40,
        )
        for n in range(100)
    ]
    for job in running:
        job.make_root()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would after such a load
    return user, chain_root, running


def measure(client: Client, url: str, **extra: Any) -> tuple[float, int]:
    timings = []
    queries = 0
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = client.get(url, **extra)
            timings.append(time.perf_counter() - start)
        assert response.status_code in (200, 204), (url, response.status_code)
        queries = len(captured)
    return statistics.median(timings) * 1000, queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    with _harness.throwaway_database():
        started = time.perf_counter()
        user, chain_root, running = build(args.jobs)
        print(
            f"{connection.vendor}: {args.jobs} jobs + a lineage of 300 + 100 running, "
            f"built in {time.perf_counter() - started:.1f}s; median of {RUNS} runs"
        )
        client = Client()
        client.force_login(user)
        first = client.get(reverse("gallery:home") + "?view=all").context["page"]
        cursor = first.next_cursor
        for _ in range(args.jobs // 24 // 2):  # walk half way down
            cursor = (
                client.get(reverse("gallery:home") + f"?view=all&after={cursor}")
                .context["page"]
                .next_cursor
            )
        home = reverse("gallery:home")
        cases = [
            ("gallery, lineages, first page", home, {}),
            ("gallery, all jobs, first page", home + "?view=all", {}),
            ("gallery, all jobs, half way down", home + f"?view=all&after={cursor}", {}),
            ("gallery, search 'number 42'", home + "?view=all&q=number+42", {}),
            ("job page, lineage of 300", chain_root.get_absolute_url(), {}),
        ]
        live = reverse("gallery:live")
        for count in (3, 100):
            query = "&".join(f"live={job.code}~stale~" for job in running[:count])
            cases.append((f"live poll, {count} running cards", f"{live}?{query}", {}))
        print(f"{'page':42} {'ms':>8} {'queries':>8}")
        for label, url, extra in cases:
            ms, queries = measure(client, url, HTTP_HX_REQUEST="true", **extra)
            print(f"{label:42} {ms:8.1f} {queries:8d}")


if __name__ == "__main__":
    main()
