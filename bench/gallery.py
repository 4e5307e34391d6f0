"""Every gallery page of one user at 1,000 jobs and again at 100,000: the first page and
pages far down (both views), each filter, searches, the lineage view, job pages and the live
poll. Prints, per page, the median time at each size, their ratio and the queries, then the
pages over the budget (docs/design.md: within 1.2x at 100,000 jobs of the time at 1,000).

    python bench/gallery.py                      # throwaway SQLite in a temporary directory
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/gallery.py
    DATABASE_URL=... python bench/gallery.py --explain     # and each page's main query plan
    python bench/gallery.py --sizes 1000,20000 --runs 5    # a quicker run

The gallery grows in place: the 99,000 jobs added are older than the first 1,000, so the
first pages show the same cards at both sizes and only the table under them differs. The
jobs look like real ones: lineages of presses (upscales, variations, rerolls, pans...),
grids with their four tiles and upscales with one picture, the buttons the provider offers,
a mix of speeds and outcomes, favorites and deleted jobs, a few jobs running; a second user
has a tenth as many, made meanwhile. Rare things (imports, a rare word) happen
only among the newest 1,000, so their filters find the same few jobs at both sizes.

Each request ends as under a server: the connection is closed unless CONN_MAX_AGE keeps it
(SQLite's is). On PostgreSQL the tables are put in the order the jobs were made and VACUUM
ANALYZEd after each growth, as time and autovacuum would; SQLite has only the statistics
mjweb.sqlite gathers as connections close, as under `make run`.

With DATABASE_URL it creates and afterwards drops a throwaway test database on that server.
A benchmark prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import random
import re
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import _harness  # first: sets up Django
from django.conf import settings
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gallery.models import Image, Job
from gallery.pagination import encode
from mjweb import catalogue

BUDGET = 1.2
# Job n is the n-th newest; its primary key falls as n grows, so keys rise with time as
# they would had the jobs been made one by one.
TOP_ID = 10_000_000
SPACING = timedelta(minutes=7)  # 100,000 jobs over about 16 months
CHAIN = 300  # the long lineage the job page is timed with
CHAIN_START = 40  # where it starts among the newest jobs
# Rare things happen only among the newest jobs (a new habit, a new feature), so a filter
# for one finds the same few jobs at both sizes; only what is read to find them differs.
RECENT = 1_000
RARE_EVERY = 250  # the lineages over one position in this many have the rare word
BATCH = 5_000

SUBJECTS = (
    "lighthouse", "red fox", "old harbour", "glass greenhouse", "tea house", "clock tower",
    "koi pond", "night market", "mountain monastery", "paper lantern", "steam train",
    "snow owl", "desert caravan", "coral reef", "orchard", "windmill", "castle gate",
    "jazz club", "city rooftop", "reading room", "bamboo forest", "fishing village",
    "space station", "cathedral", "tram stop", "sunflower field", "ice cave", "bakery",
    "robot gardener", "sailing ship", "street cat", "library tower", "river delta",
    "volcano", "vineyard", "subway car", "canyon bridge", "music box", "ferris wheel",
    "bonsai tree",
)  # fmt: skip
SETTINGS = (
    "at dawn", "in the rain", "under the northern lights", "at golden hour", "in thick fog",
    "in winter", "at midnight", "after a storm", "in spring bloom", "by candlelight",
    "seen from above", "through a window", "in autumn", "on a summer afternoon",
)  # fmt: skip
STYLES = (
    "watercolor", "oil painting", "35mm photograph", "ukiyo-e print", "isometric render",
    "charcoal sketch", "gouache", "cinematic still", "linocut", "studio photograph",
    "pastel drawing", "low poly", "art nouveau poster", "tilt-shift photo",
)  # fmt: skip
PARAMS = ("", " --ar 3:2", " --ar 16:9", " --ar 2:3", " --stylize 250", " --chaos 20")
RARE_WORD = "axolotl"

GRID_BUTTONS = (
    [{"action": "upscale", "index": i, "variant": "", "label": f"U{i}",
      "custom_id": f"MJ::JOB::upsample::{i}::h", "emoji": ""} for i in range(1, 5)]
    + [{"action": "reroll", "index": None, "variant": "", "label": "",
        "custom_id": "MJ::JOB::reroll::0::h::SOLO", "emoji": "🔄"}]
    + [{"action": "variation", "index": i, "variant": "", "label": f"V{i}",
        "custom_id": f"MJ::JOB::variation::{i}::h", "emoji": ""} for i in range(1, 5)]
)  # fmt: skip
SINGLE_BUTTONS = (
    [{"action": a, "index": None, "variant": "", "label": a, "custom_id": f"MJ::{a}::h",
      "emoji": ""} for a in ("vary_subtle", "vary_strong", "upscale_subtle", "upscale_creative")]
    + [{"action": "zoom_out", "index": None, "variant": v, "label": f"Zoom Out {v}",
        "custom_id": f"MJ::Outpaint::{v}::h", "emoji": ""} for v in ("2x", "1.5x")]
    + [{"action": "pan", "index": None, "variant": v, "label": "", "custom_id": f"MJ::Pan::{v}",
        "emoji": catalogue.PAN_GLYPHS[v]} for v in catalogue.PAN_GLYPHS]
)  # fmt: skip
AFTER_GRID = ("upscale", "upscale", "upscale", "variation", "variation", "reroll")
AFTER_SINGLE = tuple(sorted(catalogue.AFTER_UPSCALE))
OUTCOMES = ("succeeded", "failed", "cancelled")
# Lineage lengths: many single jobs and short lineages, a few long explorations.
LENGTHS = (1, 2, 3, 5, 8, 13, 30)
LENGTH_WEIGHTS = (25, 20, 20, 18, 10, 6, 1)


@dataclass
class Gallery:
    """What the pages are timed with; filled in as the gallery grows."""

    user: Any
    # Jobs each owner has (by the owner's pk).
    sizes: dict[int, int] = field(default_factory=dict)
    chain_head: Any = None
    small_lineage_job: Any = None
    running: list[Any] = field(default_factory=list)
    now: datetime = field(default_factory=timezone.now)


def created(gallery: Gallery, n: int) -> datetime:
    return gallery.now - n * SPACING


def prompt_for(rng: random.Random, *, rare: bool) -> str:
    words = [rng.choice(SUBJECTS), rng.choice(SETTINGS)]
    if rare:
        words[0] = f"{RARE_WORD} in a {words[0]}"
    return f"A {words[0]} {words[1]}, {rng.choice(STYLES)}{rng.choice(PARAMS)}"


Row = dict[str, Any]


def job_row(
    gallery: Gallery,
    owner: Any,
    rng: random.Random,
    n: int,
    *,
    pk: int,
    root: int,
    parent: int | None,
    action: str,
    index: int | None,
    variant: str,
    prompt: str,
    mode: str,
    status: str,
) -> Row:
    """The n-th newest job's columns (by attname); the rest take their defaults."""
    single = catalogue.action(action).result == catalogue.SINGLE
    succeeded = status == Job.Status.SUCCEEDED
    failed = status in (Job.Status.FAILED, Job.Status.CANCELLED)
    made = created(gallery, n) - timedelta(seconds=rng.randrange(60))
    cost = catalogue.default_price(action, mode) or 0
    if succeeded:
        charge = Job.Charge.CAPTURED if cost else Job.Charge.NONE
    else:
        charge = Job.Charge.RELEASED if cost else Job.Charge.NONE
    return {
        "id": pk,
        "code": uuid.UUID(int=rng.getrandbits(128), version=4),
        "owner_id": owner.pk,
        "root_id": root,
        "parent_id": parent,
        "action": action,
        "index": index,
        "variant": variant,
        "prompt": prompt,
        "final_prompt": prompt,
        "mode": mode,
        "provider": "simulator",
        "provider_job_id": str(1_773_000_000_000_000 + pk),
        "buttons": (SINGLE_BUTTONS if single else GRID_BUTTONS) if succeeded else [],
        "status": status,
        "progress": 100 if succeeded else 0,
        "fail_kind": (
            ""
            if succeeded
            else Job.FailKind.CANCELLED
            if status == Job.Status.CANCELLED
            else Job.FailKind.PROVIDER_ERROR
        ),
        "fail_reason": "任务失败" if status == Job.Status.FAILED else "",
        "result_url": f"https://cdn.example.com/{pk}.png" if succeeded else "",
        "created_at": made,
        "submitted_at": made + timedelta(seconds=2),
        "finished_at": made + timedelta(seconds=40),
        "cost": cost,
        "charge": charge,
        "favorite": succeeded and rng.random() < 0.06,
        "deleted_at": made + timedelta(hours=1) if rng.random() < 0.02 and not failed else None,
    }


def image_rows(job: Row) -> list[Row]:
    """A grid and its four tiles, or an upscale's one picture, with both thumbnail sizes."""
    if job["status"] != Job.Status.SUCCEEDED:
        return []
    code = job["code"].hex
    base = f"jobs/{code[:2]}/{code}"
    if catalogue.action(job["action"]).result == catalogue.SINGLE:
        kinds = [(Image.Kind.SINGLE, 0, 1024)]
    else:
        kinds = [(Image.Kind.GRID, 0, 2048)] + [(Image.Kind.TILE, i, 1024) for i in range(1, 5)]
    return [
        {
            "job_id": job["id"],
            "kind": kind,
            "index": index,
            "file": f"{base}/{kind}-{index}.png",
            "thumbnail": f"{base}/{kind}-{index}-384.webp",
            "thumbnail_large": f"{base}/{kind}-{index}-768.webp",
            "width": width,
            "height": width,
            "thumb_width": 384,
            "thumb_height": 384,
            "thumb_large_width": 768,
            "thumb_large_height": 768,
            "bytes": width * 900,
            "sha256": "0" * 64,
            "content_type": "image/png",
            "created_at": job["created_at"],
        }
        for kind, index, width in kinds
    ]


def lineage_rows(
    gallery: Gallery,
    owner: Any,
    rng: random.Random,
    newest: int,
    length: int,
    id_of: Callable[[int], int],
    *,
    chain: bool = False,
) -> list[Row]:
    """Jobs newest .. newest+length-1 (n counts from the newest) as one lineage, oldest
    first: the oldest is the root, each later one a press on an earlier finished one (in a
    chain, a reroll of the one just before). A failed imagine has nothing to press, so its
    lineage is that one job."""
    mode = rng.choices(("fast", "relax", "turbo"), weights=(70, 20, 10))[0]
    root_status = "succeeded" if chain else rng.choices(OUTCOMES, weights=(94, 4, 2))[0]
    if root_status != "succeeded":
        length = 1
    oldest = newest + length - 1
    root_pk = id_of(oldest)
    imported = oldest < RECENT and rng.random() < 0.02
    root_action = Job.Action.IMPORT if imported else Job.Action.IMAGINE
    positions = range(newest, oldest + 1)
    rare = any(n % RARE_EVERY == RARE_EVERY // 2 for n in positions)
    prompt = prompt_for(rng, rare=rare and oldest < RECENT and not chain)
    rows = [
        job_row(
            gallery, owner, rng, oldest, pk=root_pk, root=root_pk, parent=None,
            action=root_action, index=None, variant="", prompt=prompt, mode=mode,
            status=root_status,
        )
    ]  # fmt: skip
    pressable = [rows[0]]
    for n in range(oldest - 1, newest - 1, -1):
        parent = rows[-1] if chain else rng.choice(pressable)
        single = catalogue.action(parent["action"]).result == catalogue.SINGLE
        action = "reroll" if chain else rng.choice(AFTER_SINGLE if single else AFTER_GRID)
        spec = catalogue.action(action)
        index = rng.randint(1, 4) if spec.takes == "index" else None
        variant = rng.choice(spec.variants) if spec.takes == "variant" else ""
        status = "succeeded" if chain else rng.choices(OUTCOMES, weights=(92, 5, 3))[0]
        job = job_row(
            gallery, owner, rng, n, pk=id_of(n), root=root_pk, parent=parent["id"],
            action=action, index=index, variant=variant, prompt=parent["prompt"],
            mode=parent["mode"], status=status,
        )  # fmt: skip
        if chain:
            job["deleted_at"] = None
        rows.append(job)
        if status == "succeeded":
            pressable.append(job)
    return rows


def write(model: Any, rows: list[Row]) -> None:
    """Rows straight into the model's table: COPY on PostgreSQL, one executemany on SQLite
    (the ORM's bulk_create spends most of a 100,000-job build making model instances)."""
    fields = [f for f in model._meta.concrete_fields if f.attname in rows[0] or not f.primary_key]
    defaults = {f.attname: f.get_default() for f in fields if f.attname not in rows[0]}
    postgres = connection.vendor == "postgresql"

    def adapt(f: Any) -> Callable[[Any], Any]:
        kind = f.get_internal_type()
        if kind == "JSONField":
            return json.dumps
        if kind == "DateTimeField" and not postgres:
            return connection.ops.adapt_datetimefield_value
        if kind == "UUIDField" and not postgres:
            return lambda value: value.hex
        return lambda value: value

    adapters = [(f.attname, adapt(f)) for f in fields]
    values = (
        tuple(
            None if (v := row.get(name, defaults.get(name))) is None else to_db(v)
            for name, to_db in adapters
        )
        for row in rows
    )
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        if postgres:
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)
        else:
            marks = ", ".join("%s" for _ in fields)
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values))


def insert(jobs: list[Row]) -> None:
    """Oldest first, so every root and parent is in before its children."""
    jobs.sort(key=lambda job: job["id"])
    write(Job, jobs)
    write(Image, [image for job in jobs for image in image_rows(job)])


def grow(gallery: Gallery, owner: Any, size: int, *, id_base: int, seed: int) -> None:
    """The owner's gallery from the size it has up to `size` jobs, all older than those it
    has (their keys below theirs)."""
    rng = random.Random(seed * 1_000_003 + size)
    n = gallery.sizes.get(owner.pk, 0)

    def id_of(n: int) -> int:
        return id_base - n

    pending: list[Row] = []
    chain_head = None
    with transaction.atomic():
        while n < size:
            chain = (
                owner == gallery.user
                and n >= CHAIN_START
                and chain_head is None
                and gallery.chain_head is None
            )
            length = CHAIN if chain else rng.choices(LENGTHS, weights=LENGTH_WEIGHTS)[0]
            rows = lineage_rows(gallery, owner, rng, n, min(length, size - n), id_of, chain=chain)
            if chain:
                chain_head = rows[-1]["id"]
            n += len(rows)
            pending += rows
            if len(pending) >= BATCH:
                insert(pending)
                pending = []
        if pending:
            insert(pending)
    gallery.sizes[owner.pk] = size
    if chain_head is not None:
        gallery.chain_head = Job.objects.get(pk=chain_head)
        # A job of an ordinary lineage, made after the long chain.
        gallery.small_lineage_job = (
            Job.objects.filter(owner=owner, pk__gt=chain_head, deleted_at=None)
            .exclude(parent=None)
            .order_by("pk")
            .first()
        )


def start_running(gallery: Gallery) -> None:
    """The newest jobs of the user: three running, one queued, one waiting for a prompt."""
    newest = list(
        Job.objects.filter(owner=gallery.user, deleted_at=None).order_by("-created_at")[:5]
    )
    states = [Job.Status.RUNNING] * 3 + [Job.Status.QUEUED, Job.Status.MODAL]
    for job, status in zip(newest, states, strict=True):
        Job.objects.filter(pk=job.pk).update(
            status=status, progress=40 if status == "running" else 0, buttons=[], finished_at=None
        )
        job.refresh_from_db()
    Image.objects.filter(job__in=newest).delete()
    gallery.running = [job for job in newest if job.status == Job.Status.RUNNING]


def settle() -> None:
    """The tables as a gallery grown over time has them. On PostgreSQL: rows in the order
    they were made (older jobs were added after newer ones here; the planner reads that
    order from the statistics), vacuumed and analyzed as autovacuum would. SQLite keeps
    statistics only when asked (mjweb.sqlite asks as connections close)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            indexes = connection.introspection.get_constraints(cursor, "gallery_job")
            by_time = next(
                name
                for name, index in indexes.items()
                if index["index"] and index["columns"] == ["created_at"]
            )
            cursor.execute(f'CLUSTER gallery_job USING "{by_time}"')
            cursor.execute("VACUUM ANALYZE gallery_job")
            cursor.execute("VACUUM ANALYZE gallery_image")
    for sql in connection.ops.sequence_reset_sql(no_style(), [Job, Image]):
        with connection.cursor() as cursor:
            cursor.execute(sql)


def cases(gallery: Gallery) -> list[tuple[str, str, dict[str, str]]]:
    """(page, url, extra headers) for every page timed; cursors and dates are placed by
    position in the gallery, so each size has its own."""
    home = reverse("gallery:home")
    size = gallery.sizes[gallery.user.pk]
    mid = (
        Job.objects.filter(owner=gallery.user, deleted_at=None)
        .order_by("-created_at", "-id")
        .only("pk", "created_at")[size // 2]
    )
    last = (
        Job.objects.filter(owner=gallery.user, deleted_at=None)
        .order_by("created_at", "id")
        .only("pk", "created_at")[10]
    )
    day = timezone.localdate(created(gallery, 300))
    since, until = day - timedelta(days=1), day
    hx = {"HTTP_HX_REQUEST": "true"}
    live = reverse("gallery:live")
    shown = "&".join(f"live={job.code}~{job.live_version}~" for job in gallery.running)
    stale = "&".join(f"live={job.code}~stale~" for job in gallery.running)
    return [
        ("lineages, first page", home, {}),
        ("lineages, half way down", f"{home}?after={encode(mid)}", {}),
        ("lineages, favorites", f"{home}?favorites=on", {}),
        ("lineages, search 'light'", f"{home}?q=light", {}),
        ("all jobs, first page", f"{home}?view=all", {}),
        ("all jobs, half way down", f"{home}?view=all&after={encode(mid)}", {}),
        ("all jobs, newer than half way", f"{home}?view=all&before={encode(mid)}", {}),
        ("all jobs, last page", f"{home}?view=all&after={encode(last)}", {}),
        ("all jobs, scroll half way (htmx)", f"{home}?view=all&after={encode(mid)}&more=1", hx),
        ("favorites", f"{home}?view=all&favorites=on", {}),
        ("favorites, half way down", f"{home}?view=all&favorites=on&after={encode(mid)}", {}),
        ("status failed", f"{home}?view=all&status=failed", {}),
        ("status running (3 jobs)", f"{home}?view=all&status=running", {}),
        ("action upscale", f"{home}?view=all&action=upscale", {}),
        ("action import (a few, recent)", f"{home}?view=all&action=import", {}),
        ("mode turbo", f"{home}?view=all&mode=turbo", {}),
        ("date range, two days", f"{home}?view=all&since={since}&until={until}", {}),
        ("search 'lighthouse'", f"{home}?view=all&q=lighthouse", {}),
        ("search 'red fox'", f"{home}?view=all&q=red+fox", {}),
        (f"search '{RARE_WORD}' (a few, recent)", f"{home}?view=all&q={RARE_WORD}", {}),
        ("search 'light', half way down", f"{home}?view=all&q=light&after={encode(mid)}", {}),
        ("search + mode + status", f"{home}?view=all&q=light&mode=fast&status=succeeded", {}),
        ("job page, lineage of 300", gallery.chain_head.get_absolute_url(), {}),
        ("job page, small lineage", gallery.small_lineage_job.get_absolute_url(), {}),
        ("live poll, 3 running, unchanged", f"{live}?{shown}", hx),
        ("live poll, 3 running, changed", f"{live}?{stale}", hx),
    ]


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    queries: int = 0
    # Cards the page showed: a page showing fewer at one size is not the same page.
    cards: int = 0
    # The slowest query on the jobs table: the page's main query, for --explain.
    main_sql: str = ""

    @property
    def ms(self) -> float:
        return statistics.median(self.seconds) * 1000


def request(client: Client, url: str, extra: dict[str, str], timing: Timing) -> None:
    gc.collect()
    with CaptureQueriesContext(connection) as captured:
        start = time.perf_counter()
        response = client.get(url, **extra)
        timing.seconds.append(time.perf_counter() - start)
    assert response.status_code in (200, 204), (url, response.status_code)
    # What a server does once the response is out and the test client leaves undone: close
    # the connection unless CONN_MAX_AGE keeps it (SQLite's is closed after every request).
    close_old_connections()
    timing.queries = len(captured)
    if not getattr(response, "streaming", False):
        timing.cards = response.content.count(b'class="card status-')
    on_jobs = [query for query in captured.captured_queries if '"gallery_job"' in query["sql"]]
    if on_jobs:
        timing.main_sql = max(on_jobs, key=lambda query: float(query["time"]))["sql"]


@dataclass
class Size:
    """One size of the gallery: its own database, connection and signed-in client."""

    jobs: int
    database: Any
    client: Client = field(default_factory=Client)
    pages: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    timings: dict[str, Timing] = field(default_factory=dict)

    def use(self) -> None:
        """Make this size's database the default one (views and models read `default`)."""
        connections[DEFAULT_DB_ALIAS] = self.database


def measure(sizes: list[Size], runs: int) -> None:
    """Each page at each size `runs` times after a warm-up, in rounds over every page, the
    sizes taking turns: a burst of load on a shared machine costs every page and both sizes
    alike, instead of all the runs of one page at one size."""
    for size in sizes:
        size.use()
        size.timings = {label: Timing() for label, _, _ in size.pages}
        for _, url, extra in size.pages:
            request(size.client, url, extra, Timing())
    for run in range(runs):
        for page in range(len(sizes[0].pages)):
            for size in sizes if run % 2 else sizes[::-1]:
                label, url, extra = size.pages[page]
                size.use()
                request(size.client, url, extra, size.timings[label])


@contextmanager
def database_beside(alias: str) -> Iterator[Any]:
    """A second throwaway database next to the harness's, under an alias of its own."""
    default = connections[DEFAULT_DB_ALIAS]
    settings_dict = copy.deepcopy(default.settings_dict)
    settings_dict["TEST"]["NAME"] = f"{default.settings_dict['NAME']}_{alias}"
    # create_test_db records the new database's name in settings.DATABASES[alias].
    settings.DATABASES[alias] = connections.settings[alias] = settings_dict
    database = connections[alias]
    old_name = database.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        yield database
    finally:
        connections[DEFAULT_DB_ALIAS] = default
        database.creation.destroy_test_db(old_name, verbosity=0, keepdb=False)


def short(sql: str) -> str:
    """The query without its list of every column of the job."""
    return re.sub(r'^SELECT .*?"gallery_job"\."deleted_at"', "SELECT <job>", sql, count=1)


def explain(sql: str) -> str:
    """PostgreSQL's plan as run (with its costs, times and any JIT), or SQLite's plan."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            return "\n".join(f"    {row[0]}" for row in cursor.fetchall())
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return "\n".join(f"    {row[-1]}" for row in cursor.fetchall())


def render_as_in_production() -> None:
    """Templates render without the test runner's signal per template, through which the
    test client copies every context it renders (a page of 24 cards renders hundreds)."""
    from django.template import Template
    from django.test.utils import _TestState

    Template._render = _TestState.saved_data.template_render  # type: ignore[method-assign]


def build(size: Size, now: datetime, seed: int) -> Gallery:
    """The user's gallery at this size (its newest 1,000 jobs the same at every size, three
    of them running) and the other user's jobs, in this size's database."""
    from django.contrib.auth import get_user_model

    size.use()
    started = time.perf_counter()
    users = get_user_model().objects
    gallery = Gallery(user=users.create_user("bench", "bench@example.com", "pw"), now=now)
    neighbour = users.create_user("neighbour", "neighbour@example.com", "pw")
    grow(gallery, gallery.user, min(size.jobs, RECENT), id_base=TOP_ID, seed=seed)
    start_running(gallery)
    grow(gallery, gallery.user, size.jobs, id_base=TOP_ID, seed=seed)
    grow(gallery, neighbour, size.jobs // 10, id_base=TOP_ID // 2, seed=seed + 1)
    settle()
    size.client.force_login(gallery.user)
    size.pages = cases(gallery)
    print(
        f"{connection.vendor}: {size.jobs:,} jobs (and {size.jobs // 10:,} of another user), "
        f"built in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    return gallery


def both(small: int, large: int) -> str:
    """A count at both sizes: once when it is the same, else small->large."""
    return f"{small}" if small == large else f"{small}->{large}"


def report(small: Size, large: Size, runs: int) -> None:
    print(
        f"\nmedian of {runs} requests; ratio = ms at {large.jobs:,} / ms at {small.jobs:,} "
        f"(budget {BUDGET}x)"
    )
    print(f"{'page':40} {'ms ' + f'{small.jobs:,}':>10} {'ms ' + f'{large.jobs:,}':>11} "
          f"{'ratio':>6} {'queries':>8} {'cards':>8}")  # fmt: skip
    over = []
    for label, at_small in small.timings.items():
        at_large = large.timings[label]
        ratio = at_large.ms / at_small.ms
        if ratio > BUDGET:
            over.append(label)
        queries = both(at_small.queries, at_large.queries)
        cards = both(at_small.cards, at_large.cards)
        mark = " *" if ratio > BUDGET else ""
        print(
            f"{label:40} {at_small.ms:10.1f} {at_large.ms:11.1f} {ratio:6.2f} {queries:>8}"
            f" {cards:>8}{mark}"
        )
    print(f"over {BUDGET}x: {', '.join(over) if over else 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000", help="two gallery sizes, small first")
    parser.add_argument("--runs", type=int, default=11, help="timed requests per page and size")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print each page's main query plan (EXPLAIN ANALYZE on PostgreSQL)",
    )
    args = parser.parse_args()
    jobs = [int(size) for size in args.sizes.split(",")]
    now = timezone.now()
    with _harness.throwaway_database(), database_beside("large") as other:
        render_as_in_production()
        small = Size(jobs[0], connections[DEFAULT_DB_ALIAS])
        large = Size(jobs[1], other)
        for size in (small, large):
            build(size, now, args.seed)
        measure([small, large], args.runs)
        report(small, large, args.runs)
        if args.explain:
            large.use()
            for label, timing in large.timings.items():
                print(f"\n{label} ({large.jobs:,} jobs): {short(timing.main_sql)}")
                print(explain(timing.main_sql) if timing.main_sql else "    (no job query)")


if __name__ == "__main__":
    main()
