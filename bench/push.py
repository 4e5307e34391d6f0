"""From the provider reporting SUCCESS to the finished card painted in the browser, through
the real stack: `manage.py runall` (uvicorn + worker + simulator, as `make run` starts
it) and Chromium. 24 jobs, submitted two ways:

- at once: 24 POSTs with the page's session, then the studio is loaded and left alone;
- through the page: Imagine pressed in the page once every 2 s.

Each with webhooks on and off, and each with the push stream (the default) and with the
stream blocked in the browser (the two-second poll alone, as under WSGI). Prints p50, p95
and max of SUCCESS -> the card's final <img> in the DOM, and -> that image loaded and its
frame painted; the first is split into SUCCESS -> the job succeeded in our database (the
server: webhook or poll, fetch, ingest) and from there -> the <img> in the page (the push
or the poll). SUCCESS is the simulator's `finishTime` of the task (wall clock, ms); the
page's times are performance.timeOrigin + performance.now(), recorded by a
MutationObserver that Playwright adds to the page. Same machine, same clock.

First, on the stack without webhooks, "job changed -> card shown" alone (`--changes`): a
running job that no worker touches has its progress set in the database, at random moments,
and the page notes when its card shows the value: the push itself, without the pipeline.

    python bench/push.py                        # SQLite in a temporary directory
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/push.py
    python bench/push.py --jobs 12 --only push  # a quicker look
    python bench/push.py --no-previews          # without the progress previews' load

With DATABASE_URL it creates and afterwards drops a database of its own on that server.
A benchmark prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from _net import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SIM_KEY = "sim-local-key"
PASSWORD = "a long passphrase 9"

# Records, per card, when its final picture entered the DOM and when it was loaded and
# painted (the animation frame after its load event).
OBSERVE = """
window.__painted = {};
const now = () => performance.timeOrigin + performance.now();
const seen = (img) => {
  const card = img.closest('article.card');
  if (!card || window.__painted[card.id]) return;
  const entry = window.__painted[card.id] = {inserted: now(), painted: null};
  const loaded = () => requestAnimationFrame(() => { entry.painted = now(); });
  if (img.complete && img.naturalWidth) loaded(); else img.addEventListener('load', loaded);
};
new MutationObserver((records) => {
  for (const record of records) for (const node of record.addedNodes) {
    if (node.nodeType !== 1) continue;
    if (node.matches('img.result')) seen(node);
    node.querySelectorAll('img.result').forEach(seen);
  }
}).observe(document, {childList: true, subtree: true});
document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('img.result').forEach((img) => {
    const card = img.closest('article.card');
    if (card) window.__painted[card.id] = {inserted: null, painted: null, before: true};
  });
});
"""


@dataclass
class Stack:
    url: str
    simulator_url: str
    root: Path
    database_url: str


@contextmanager
def throwaway_postgres(url: str, tag: str) -> Iterator[str]:
    """A database of our own on DATABASE_URL's server, for one stack; its URL."""
    import psycopg

    name = f"mjweb_bench_push_{os.getpid()}_{tag}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def running_stack(root: Path, database_url: str, **extra_env: str) -> Iterator[Stack]:
    web, sim = free_port(), free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(
        DEBUG="1",
        MJWEB_DATA_DIR=str(root),
        SITE_URL=f"http://127.0.0.1:{web}",
        MJ_PROVIDER="simulator",
        # One user submits the whole burst: the throttles are not what is measured.
        MJWEB_THROTTLE="0",
        MJ_SIMULATOR_PORT=str(sim),
        MJ_SIMULATOR_API_KEY=SIM_KEY,
        MJ_WELCOME_CREDITS="1000000",
        MJ_JOBS_AT_ONCE="0",
        MJ_JOBS_PER_DAY="0",
        MJWEB_LOGIN_THROTTLE="0",
        PYTHONUNBUFFERED="1",
        **extra_env,
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input"], env=env, check=True, capture_output=True)
    with (root / "stack.log").open("wb") as log:
        process = subprocess.Popen(
            [*manage, "runall", "--addrport", f"127.0.0.1:{web}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_http(f"http://127.0.0.1:{web}/accounts/login/")
            wait_for_http(f"http://127.0.0.1:{sim}/mj/task/0/fetch")
            yield Stack(f"http://127.0.0.1:{web}", f"http://127.0.0.1:{sim}", root, database_url)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def sign_up(page: Any, stack: Stack) -> None:
    name = f"bench{uuid.uuid4().hex[:8]}"
    page.goto(stack.url + "/accounts/signup/")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(f"{name}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(stack.url + "/")


def submit_at_once(page: Any, stack: Stack, jobs: int) -> None:
    """POST the jobs with the page's session, then load the studio and leave it alone."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    for n in range(jobs):
        response = page.request.post(
            stack.url + "/imagine/",
            form={
                "prompt": f"a harbour at dusk, study {n}",
                "mode": "fast",
                "submit_key": str(uuid.uuid4()),
            },
            headers={"X-CSRFToken": token, "Referer": stack.url + "/"},
            max_redirects=0,
        )
        assert response.status in (200, 302), (response.status, response.text()[:300])
    page.goto(stack.url + "/", wait_until="domcontentloaded")  # its previews load on


def submit_through_page(page: Any, jobs: int, every: float) -> None:
    start = time.monotonic()
    for n in range(jobs):
        page.get_by_label("Prompt", exact=True).fill(f"a harbour at dusk, study {n}")
        page.get_by_role("button", name="Imagine").click()
        page.locator("article.card").nth(n).wait_for()
        pause = start + every * (n + 1) - time.monotonic()
        if n + 1 < jobs and pause > 0:
            page.wait_for_timeout(pause * 1000)


def finish_times(stack: Stack) -> dict[str, float]:
    """The simulator's SUCCESS time (epoch ms) of each task, by the job code it carries."""
    answer = httpx.get(
        stack.simulator_url + "/mj/task/list",
        headers={"Authorization": f"Bearer {SIM_KEY}"},
        timeout=10,
    )
    answer.raise_for_status()
    return {
        f"job-{task['state']}": float(task["finishTime"])
        for task in answer.json()
        if task.get("status") == "SUCCESS" and task.get("finishTime") and task.get("state")
    }


# An ingest sets the job's ingest_due_at to its start + this (gallery.ingest.due_after, with
# django-q's task timeout of 90 s): the bench reads back when the last ingest began.
INGEST_DUE_AFTER_S = 90 + 30


def succeeded_times(stack: Stack) -> dict[str, tuple[float, float | None, float | None]]:
    """When each job turned succeeded in our database (its images stored), when a webhook
    said it ended (hinted_at) and when its ingest began, epoch ms."""
    query = (
        "SELECT code, finished_at, hinted_at, ingest_due_at FROM gallery_job"
        " WHERE status = 'succeeded'"
    )
    if stack.database_url:
        import psycopg

        with psycopg.connect(stack.database_url) as conn:
            rows = [(str(code), *times) for code, *times in conn.execute(query)]
    else:
        import sqlite3

        with closing(sqlite3.connect(stack.root / "db.sqlite3")) as conn:
            rows = [
                (code, *(at and datetime.fromisoformat(at).replace(tzinfo=UTC) for at in times))
                for code, *times in conn.execute(query)
            ]

    def ms(at: datetime | None, minus: float = 0.0) -> float | None:
        return None if at is None else at.timestamp() * 1000 - minus

    return {
        f"job-{uuid.UUID(code)}": (
            ms(done) or 0.0,
            ms(hinted),
            ms(due, INGEST_DUE_AFTER_S * 1000),
        )
        for code, done, hinted, due in rows
    }


def run_variant(
    stack: Stack, *, how: str, push: bool, jobs: int, previews: bool = True
) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # Tall enough for every card's (lazy) picture to load where it is.
        context = browser.new_context(viewport={"width": 1400, "height": 6000})
        page = context.new_page()
        if not push:
            page.route("**/jobs/stream/**", lambda route: route.abort())
        if not previews:
            page.route("**/preview/**", lambda route: route.abort())
        page.add_init_script(OBSERVE)
        sign_up(page, stack)
        if how == "at once":
            submit_at_once(page, stack, jobs)
        else:
            submit_through_page(page, jobs, every=2.0)
        page.wait_for_function(
            f"""() => {{
                const done = Object.values(window.__painted).filter((e) => e.painted);
                return document.querySelectorAll('article.card').length >= {jobs}
                    && done.length >= {jobs};
            }}""",
            timeout=300_000,
            polling=250,
        )
        painted = page.evaluate("window.__painted")
        context.close()
        browser.close()
    success, stored = finish_times(stack), succeeded_times(stack)
    figures: dict[str, list[float]] = {
        "painted": [],
        "img in DOM": [],
        "  of which server": [],
        "    SUCCESS -> hook taken": [],
        "    SUCCESS -> ingest began": [],
        "    ingest began -> stored": [],
        "  of which browser": [],
    }
    for card, entry in painted.items():
        if card in success and card in stored and entry.get("inserted"):
            done, hinted, ingest_began = stored[card]
            figures["painted"].append((entry["painted"] - success[card]) / 1000)
            figures["img in DOM"].append((entry["inserted"] - success[card]) / 1000)
            # SUCCESS -> the job succeeded here (images stored), then -> its <img> in the page.
            figures["  of which server"].append((done - success[card]) / 1000)
            if hinted is not None:
                figures["    SUCCESS -> hook taken"].append((hinted - success[card]) / 1000)
            if ingest_began is not None:
                figures["    SUCCESS -> ingest began"].append((ingest_began - success[card]) / 1000)
                figures["    ingest began -> stored"].append((done - ingest_began) / 1000)
            figures["  of which browser"].append((entry["inserted"] - done) / 1000)
    return figures


# Records when a card's progress bar first shows each value (the card is swapped whole).
OBSERVE_PROGRESS = """
window.__progress = {};
const note = (bar) => {
  const value = bar.getAttribute('value');
  if (!(value in window.__progress)) {
    window.__progress[value] = performance.timeOrigin + performance.now();
  }
};
new MutationObserver((records) => {
  for (const record of records) for (const node of record.addedNodes) {
    if (node.nodeType !== 1) continue;
    if (node.matches('progress')) note(node);
    node.querySelectorAll('progress').forEach(note);
  }
}).observe(document, {childList: true, subtree: true});
"""


def execute(stack: Stack, sql: str, params: tuple[Any, ...]) -> None:
    if stack.database_url:
        import psycopg

        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            conn.execute(sql.replace("?", "%s"), params)
    else:
        import sqlite3

        with closing(sqlite3.connect(stack.root / "db.sqlite3", timeout=20)) as conn:
            conn.execute(sql, params)
            conn.commit()


def probe(stack: Stack, *, push: bool, changes: int) -> list[float]:
    """Job changed -> card changed, alone: a running job no worker touches (detached from its
    provider task) has its progress set in the database; the page notes when its card shows
    the new value. Seconds, one per change."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        if not push:
            page.route("**/jobs/stream/**", lambda route: route.abort())
        page.add_init_script(OBSERVE_PROGRESS)
        sign_up(page, stack)
        page.get_by_label("Prompt", exact=True).fill("a still lake [sim:stuck]")
        page.get_by_role("button", name="Imagine").click()
        card = page.locator("article.card").first
        card.locator(".stage", has_text="Rendering").wait_for(timeout=120_000)
        code = card.get_attribute("id").removeprefix("job-")
        stored = code if stack.database_url else uuid.UUID(code).hex
        # No poll, hook or deadline moves it from here: only our updates change the card.
        execute(
            stack,
            "UPDATE gallery_job SET provider_job_id = '', deadline_at = NULL WHERE code = ?",
            (stored,),
        )
        page.reload(wait_until="domcontentloaded")
        page.locator("article.card progress").first.wait_for()
        page.wait_for_timeout(1500)  # the stream is open, or the page is down to its poll
        latencies = []
        for n in range(changes):
            value = 1 + n % 98
            if page.evaluate(f"'{value}' in window.__progress"):
                page.evaluate(f"delete window.__progress['{value}']")
            changed = time.time() * 1000
            execute(stack, "UPDATE gallery_job SET progress = ? WHERE code = ?", (value, stored))
            page.wait_for_function(f"() => '{value}' in window.__progress", timeout=20_000)
            latencies.append((page.evaluate(f"window.__progress['{value}']") - changed) / 1000)
            # Changes at random moments of the poll's two-second cycle.
            page.wait_for_timeout(random.uniform(300, 900))
        browser.close()
    return latencies


def nearest_rank(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--only", choices=["push", "poll"], help="one of the two paths only")
    parser.add_argument("--hows", default="at once,through the page", help='"" for none')
    parser.add_argument("--hooks", default="on,off", help="webhooks: on, off or both")
    parser.add_argument(
        "--changes",
        type=int,
        default=30,
        help="job changed -> card changed, measured alone this many times (0: not at all)",
    )
    parser.add_argument(
        "--no-previews",
        action="store_true",
        help="the browser fetches no progress previews (each costs the server a download and"
        " a transcode, and holds one of the browser's six connections to the host)",
    )
    args = parser.parse_args()
    paths = [args.only] if args.only else ["push", "poll"]
    hows = [h.strip() for h in args.hows.split(",") if h.strip()]
    database_url = os.environ.get("DATABASE_URL", "")
    print(
        f"{args.jobs} jobs, {'PostgreSQL' if database_url else 'SQLite'}, uvicorn + worker "
        "+ simulator (6 s a job, polled every 1.5 s) + Chromium; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'webhooks':<9} {'submitted':<17} {'browser':<22} {'measured to':<11} "
          f"{'n':>3} {'p50 s':>6} {'p95 s':>6} {'max s':>6}")  # fmt: skip
    for hooks in [h.strip() for h in args.hooks.split(",") if h.strip()]:
        database = throwaway_postgres(database_url, hooks) if database_url else nullcontext("")
        with database as url, tempfile.TemporaryDirectory(prefix="mjweb-push-") as tmp:
            env = {"MJ_WEBHOOKS": "1" if hooks == "on" else "0"}
            with running_stack(Path(tmp), url, **env) as stack:
                if hooks == "off" and args.changes:  # no hook can find the job again
                    for path in paths:
                        values = probe(stack, push=path == "push", changes=args.changes)
                        browser = "push stream" if path == "push" else "2 s poll (no stream)"
                        print(
                            f"{'-':<9} {'job changed':<17} {browser:<22} {'card shown':<11} "
                            f"{len(values):>3} {nearest_rank(values, 50):>6.2f} "
                            f"{nearest_rank(values, 95):>6.2f} {max(values):>6.2f}",
                            flush=True,
                        )
                for how in hows:
                    for path in paths:
                        figures = run_variant(
                            stack,
                            how=how,
                            push=path == "push",
                            jobs=args.jobs,
                            previews=not args.no_previews,
                        )
                        browser = "push stream" if path == "push" else "2 s poll (no stream)"
                        for measure, values in figures.items():
                            if not values:
                                continue  # e.g. no hook taken with webhooks off
                            print(
                                f"{hooks:<9} {how:<17} {browser:<22} {measure:<11} "
                                f"{len(values):>3} {nearest_rank(values, 50):>6.2f} "
                                f"{nearest_rank(values, 95):>6.2f} {max(values):>6.2f}",
                                flush=True,
                            )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
