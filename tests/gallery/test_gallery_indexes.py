"""Every gallery page's main query can be served by an index (PostgreSQL, read with EXPLAIN).

A user's 1,500 jobs among others' (7,500 in all), ANALYZEd, and planned with sequential
scans and sorts priced out of reach: a plan that still reads the table, reads an index
whole, sorts the user's jobs, or drops rows on the cursor condition has no index that does
better. This asks what the indexes serve, not what the planner prefers for a table this
small (it would read it all); `bench/gallery.py --explain` shows its own choices at 100,000.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gallery.models import Job
from gallery.pagination import encode
from tests.requirements import require_postgres

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

JOBS = 1_500  # the user's; four others have as many, made at the same time
RARE = 1_240  # the one job with a rare word (the user's)
HX = {"HTTP_HX_REQUEST": "true"}
# The cursor condition, `(created_at, id) < (t, n)`, as PostgreSQL prints it with a constant.
CURSOR = re.compile(r"ROW\(created_at, id\) [<>] ROW\('")
PAGE = 'FROM "gallery_job" WHERE ("gallery_job"."owner_id" = '
PRICED_OUT = {"enable_seqscan": "off", "enable_sort": "off", "enable_incremental_sort": "off"}


@pytest.fixture(autouse=True)
def _postgres() -> None:
    require_postgres()


def build(owner: Any, other: Any) -> list[Job]:
    """Lineages of four (an imagine, an upscale, a variation, a reroll), a mix of speeds and
    outcomes, some favorites and deleted jobs: the owner's, and as many of each of four
    other users, made in turns as they would be."""
    now = timezone.now()
    model = type(owner)
    owners = [owner, other] + [
        model.objects.create_user(f"user{n}", f"user{n}@example.com", "pw") for n in range(3)
    ]
    first = (Job.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    jobs = []
    for n in range(len(owners) * JOBS):
        pk = first + n
        lineage_start = first + n - n % 4
        action = ("imagine", "upscale", "variation", "reroll")[n % 4]
        failed = n % 4 != 0 and n % 19 == 0
        jobs.append(
            Job(
                pk=pk,
                owner=owners[n // 4 % len(owners)],
                root_id=lineage_start,
                parent_id=None if n % 4 == 0 else pk - 1,
                action=action,
                index=1 + n % 4 if action in ("upscale", "variation") else None,
                prompt=("a red fox in snow", "a lighthouse at dawn", "a tea house")[n % 3]
                + (" with an axolotl" if n == RARE else ""),
                mode=("fast", "fast", "relax", "turbo")[n // 4 % 4],
                provider="simulator",
                provider_job_id=f"idx-{pk}",
                status=Job.Status.FAILED if failed else Job.Status.SUCCEEDED,
                favorite=n % 29 == 0,
                deleted_at=now if n % 53 == 0 else None,
                created_at=now - timedelta(minutes=len(owners) * JOBS - n),
            )
        )
    Job.objects.bulk_create(jobs, batch_size=1000)
    with connection.cursor() as cursor:
        # What autovacuum would have done by now (VACUUM itself cannot run in the test's
        # transaction): the trigram index's newly added entries merged, the table analyzed.
        cursor.execute("SELECT gin_clean_pending_list('job_prompt_trigram'::regclass)")
        cursor.execute("ANALYZE gallery_job")
    return [job for job in jobs if job.owner == owner]


def pages(jobs: list[Job]) -> list[tuple[str, str, dict[str, str], str]]:
    """(page, url, headers, a piece of its main query's SQL) for every gallery page."""
    home = reverse("gallery:home")
    mid = encode(sorted(jobs, key=lambda job: (job.created_at, job.pk))[JOBS // 2])
    day = timezone.localdate(jobs[-100].created_at)
    shown = next(job for job in jobs[JOBS // 2 :] if job.deleted_at is None)
    return [
        ("lineages", home, {}, PAGE),
        ("lineages far down", f"{home}?after={mid}", {}, PAGE),
        ("lineages, favorites", f"{home}?favorites=on", {}, PAGE),
        ("lineages, a status far down", f"{home}?status=succeeded&after={mid}", {}, PAGE),
        ("lineages, search", f"{home}?q=fox", {}, PAGE),
        ("all jobs", f"{home}?view=all", {}, PAGE),
        ("all jobs far down", f"{home}?view=all&after={mid}", {}, PAGE),
        ("all jobs, newer", f"{home}?view=all&before={mid}", {}, PAGE),
        ("scrolling far down", f"{home}?view=all&after={mid}&more=1", HX, PAGE),
        ("favorites", f"{home}?view=all&favorites=on", {}, PAGE),
        ("favorites far down", f"{home}?view=all&favorites=on&after={mid}", {}, PAGE),
        ("a status", f"{home}?view=all&status=failed", {}, PAGE),
        ("a status far down", f"{home}?view=all&status=failed&after={mid}", {}, PAGE),
        ("an action", f"{home}?view=all&action=upscale", {}, PAGE),
        ("an action far down", f"{home}?view=all&action=upscale&after={mid}", {}, PAGE),
        ("a speed", f"{home}?view=all&mode=turbo", {}, PAGE),
        ("a speed far down", f"{home}?view=all&mode=turbo&after={mid}", {}, PAGE),
        ("a date range", f"{home}?view=all&since={day}&until={day}", {}, PAGE),
        ("a date range far down", f"{home}?view=all&until={day}&after={mid}", {}, PAGE),
        ("a search", f"{home}?view=all&q=red+fox", {}, PAGE),
        ("a search far down", f"{home}?view=all&q=lighthouse&after={mid}", {}, PAGE),
        ("job page", shown.get_absolute_url(), {}, '"gallery_job"."root_id" = '),
        (
            "live poll",
            reverse("gallery:live") + "?" + "&".join(f"live={j.code}~x~" for j in jobs[-3:]),
            HX,
            '"gallery_job"."code" IN',
        ),
    ]


def main_query(client: Client, url: str, headers: dict[str, str], piece: str) -> str:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **headers)
    assert response.status_code == 200, url
    found = [query["sql"] for query in captured.captured_queries if piece in query["sql"]]
    assert len(found) == 1, (url, [query["sql"][:120] for query in captured.captured_queries])
    return found[0]


def plan(sql: str, **settings: str) -> dict[str, Any]:
    with connection.cursor() as cursor:
        for name, value in settings.items():
            cursor.execute(f"SET LOCAL {name} = {value}")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        (row,) = cursor.fetchone()
        for name in settings:
            cursor.execute(f"RESET {name}")
    found = row if isinstance(row, list) else json.loads(row)
    return found[0]["Plan"]


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def problems(top: dict[str, Any], *, sorted_by_index: bool) -> list[str]:
    """What in a plan reads more than an index bounds: a sequential scan, an index read
    whole (no condition), a sort of the rows found, the cursor condition as a filter."""
    found = []
    for node in nodes(top):
        kind = node["Node Type"]
        if node.get("Relation Name") == "gallery_job" or kind == "Bitmap Index Scan":
            if kind == "Seq Scan":
                found.append("reads the whole table")
            if kind.endswith("Index Scan") and "Index Cond" not in node:
                found.append(f"reads all of {node['Index Name']}")
        if CURSOR.search(node.get("Filter", "")):
            found.append(f"filters rows on the cursor: {node['Filter']}")
        if kind == "Sort" and sorted_by_index:
            found.append(f"sorts: {node['Sort Key']}")
    return found


def test_every_gallery_page_reads_through_an_index(alice: Any, bob: Any) -> None:
    jobs = build(alice, bob)
    client = Client()
    client.force_login(alice)
    for name, url, headers, piece in pages(jobs):
        sql = main_query(client, url, headers, piece)
        top = plan(sql, **PRICED_OUT)
        # A job's whole lineage is read and drawn, so it may be put in order after reading.
        found = problems(top, sorted_by_index=name != "job page")
        assert not found, (name, found, sql)
        if "after=" in url or "before=" in url:
            conditions = " ".join(node.get("Index Cond", "") for node in nodes(top))
            assert CURSOR.search(conditions), (name, "the cursor is not where the scan starts")


def test_a_rare_word_is_found_through_the_trigram_index(alice: Any, bob: Any) -> None:
    jobs = build(alice, bob)
    client = Client()
    client.force_login(alice)
    sql = main_query(client, reverse("gallery:home") + "?view=all&q=axolotl", {}, PAGE)
    used = {node.get("Index Name") for node in nodes(plan(sql))}
    assert "job_prompt_trigram" in used, used
    assert any("axolotl" in job.prompt for job in jobs)


def test_the_lineage_view_probes_each_lineage_from_the_job_and_hashes_nothing(
    alice: Any, bob: Any
) -> None:
    """A job heads its lineage when nothing newer in it is not a failure: one probe of the
    lineage's index from the job's key, never a pass over the whole table."""
    build(alice, bob)
    client = Client()
    client.force_login(alice)
    sql = main_query(client, reverse("gallery:home"), {}, PAGE)
    top = plan(sql, enable_seqscan="off")
    probes = [
        node
        for node in nodes(top)
        if node.get("Relation Name") == "gallery_job"
        and node.get("Parent Relationship") == "SubPlan"
    ]
    assert probes, json.dumps(top)[:2000]
    assert all("Index Cond" in node for node in probes), probes
    assert not any(node.get("Subplan Name", "").startswith("hashed") for node in nodes(top))
