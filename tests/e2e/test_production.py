"""The studio in production mode, as an operator runs it: DEBUG off, a PostgreSQL database of
its own, static files collected and served by whitenoise, gunicorn with uvicorn workers
(pooling their database connections), `manage.py worker` (not pooling: django-q2 forks) and
the simulator, each a process of its own.

The tests share one stack and run in file order: readiness (recorded while the stack comes
up, before and after the worker starts), a user's walk in Chromium, then the worker's stop.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.e2e.conftest import ARTIFACTS, ROOT, free_port, wait_for
from tests.requirements import require_browser, require_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.browser]

WEB_CONCURRENCY = 2
POOL_MAX_SIZE = 4
WELCOME_CREDITS = 10000
WAIT_MS = 60_000  # Playwright waits, per wait
READY_WITHIN = 90.0  # seconds after the worker starts
QUEUES = ("jobs", "ingest", "previews")  # settings.TASK_QUEUES
WEB_APP, WORKER_APP = "mjweb-web", "mjweb-worker"  # application_name, in pg_stat_activity


@dataclass
class Readiness:
    """What the probes answered while the stack came up."""

    before_status: int = 0
    before_body: dict[str, Any] = field(default_factory=dict)
    healthz_status: int = 0
    # Seconds from the worker's start to the first 200 from /readyz (None: not within 90 s).
    ready_after: float | None = None
    last_status: int = 0
    last_body: str = ""


@dataclass
class Production:
    url: str
    database: str  # a psycopg conninfo URL for the stack's own database
    root: Path
    processes: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]
    readiness: Readiness

    def tails(self) -> str:
        return tails(self.logs)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.database, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()


def tails(logs: dict[str, Path], lines: int = 30) -> str:
    """The last lines of each process's log, for an assertion's message."""
    parts = []
    for name, path in logs.items():
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        tail = "\n".join(text.splitlines()[-lines:])
        parts.append(f"----- {name} ({path}) -----\n{tail}")
    return "\n".join(parts)


def with_database(url: str, name: str, application_name: str = "") -> str:
    parts = urlsplit(url)._replace(path=f"/{name}")
    if application_name:
        parts = parts._replace(query=f"application_name={application_name}")
    return urlunsplit(parts)


def start(
    name: str, command: list[str], env: dict[str, str], root: Path, logs: dict[str, Path]
) -> subprocess.Popen[bytes]:
    logs[name] = root / f"{name}.log"
    with logs[name].open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes], sig: signal.Signals, seconds: float) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


def readyz(url: str) -> httpx.Response:
    return httpx.get(url + "/readyz", timeout=5.0)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    require_postgres()
    require_browser()
    import psycopg

    server = os.environ["DATABASE_URL"]
    name = f"mjweb_prod_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}
    try:
        root = tmp_path_factory.mktemp("production")
        web_port, sim_port = free_port(), free_port()
        url = f"http://127.0.0.1:{web_port}"
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE", "MJWEB_ASGI"}
        }
        env.update(
            DEBUG="0",
            SECRET_KEY="production-test-" + secrets.token_urlsafe(24),
            DATABASE_URL=with_database(server, name),
            DATABASE_POOL_MAX_SIZE=str(POOL_MAX_SIZE),
            # Throttles count in a shared cache in production (mjweb.E002 without one); they
            # let requests through should this Redis be down.
            REDIS_URL="redis://127.0.0.1:6379/15",
            MJWEB_HTTPS="0",
            SITE_URL=url,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            MJWEB_DATA_DIR=str(root / "data"),
            STATIC_ROOT=str(root / "static"),
            MJ_PROVIDER="simulator",
            MJ_SIMULATOR_PORT=str(sim_port),
            MJ_SIMULATOR_DURATION="4",
            MJ_POLL_INTERVAL="0.5",
            MJ_WELCOME_CREDITS=str(WELCOME_CREDITS),
            MJWEB_WORKERS="2",
            MJWEB_INGEST_WORKERS="1",
            PYTHONUNBUFFERED="1",
        )
        manage = [sys.executable, "manage.py"]
        # Independent of each other: run side by side.
        setup = {
            "migrate": start("migrate", [*manage, "migrate", "--no-input"], env, root, logs),
            "collectstatic": start(
                "collectstatic", [*manage, "collectstatic", "--no-input"], env, root, logs
            ),
        }
        for step, process in setup.items():
            code = process.wait(timeout=180)
            assert code == 0, f"{step} exited with {code}\n{tails(logs)}"

        processes["simulator"] = start("simulator", [*manage, "simulator"], env, root, logs)
        web_env = {
            **env,
            "DATABASE_URL": with_database(server, name, WEB_APP),
            "GUNICORN_BIND": f"127.0.0.1:{web_port}",
            "WEB_CONCURRENCY": str(WEB_CONCURRENCY),
        }
        processes["web"] = start(
            "web", [sys.executable, "-m", "gunicorn", "mjweb.asgi:application"], web_env, root, logs
        )
        stack = Production(url, with_database(server, name), root, processes, logs, Readiness())
        try:
            wait_for(url + "/healthz", 60)
            wait_for(f"http://127.0.0.1:{sim_port}/mj/task/0/fetch", 60)
        except RuntimeError as exc:
            raise AssertionError(f"{exc}\n{stack.tails()}") from exc

        seen = stack.readiness
        before = readyz(url)
        seen.before_status = before.status_code
        seen.before_body = before.json()
        seen.healthz_status = httpx.get(url + "/healthz", timeout=5.0).status_code

        worker_env = {**env, "DATABASE_URL": with_database(server, name, WORKER_APP)}
        processes["worker"] = start("worker", [*manage, "worker"], worker_env, root, logs)
        started = time.monotonic()
        while time.monotonic() - started < READY_WITHIN:
            answer = readyz(url)
            seen.last_status, seen.last_body = answer.status_code, answer.text
            if answer.status_code == 200:
                seen.ready_after = time.monotonic() - started
                break
            time.sleep(0.5)
        yield stack
    finally:
        if "worker" in processes:
            stop(processes["worker"], signal.SIGTERM, 30)
        if "web" in processes:
            stop(processes["web"], signal.SIGTERM, 20)
        if "simulator" in processes:
            stop(processes["simulator"], signal.SIGTERM, 10)
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_ready_only_once_the_worker_reports_in(production: Production) -> None:
    seen = production.readiness
    assert seen.healthz_status == 200, production.tails()
    assert seen.before_status == 503, (seen.before_status, seen.before_body)
    missing = seen.before_body.get("missing", {})
    assert {f"worker:{queue}" for queue in QUEUES} <= set(missing), seen.before_body
    assert "database" not in missing and "migrations" not in missing, seen.before_body
    assert seen.ready_after is not None, (
        f"/readyz was still {seen.last_status} {seen.last_body} {READY_WITHIN:.0f} s after "
        f"the worker started\n{production.tails()}"
    )
    assert readyz(production.url).json() == {"status": "ready"}


def test_sign_up_imagine_and_reroll(production: Production, browser_page: Any) -> None:
    page = browser_page
    url = production.url
    name = f"prod{secrets.token_hex(4)}"
    page.goto(url + "/accounts/signup/")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(f"{name}@example.com")
    page.get_by_label("Password", exact=True).fill("a long passphrase 9")
    page.get_by_label("Password confirmation").fill("a long passphrase 9")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(url + "/", timeout=WAIT_MS)

    # The stylesheet comes from collectstatic's manifest, through whitenoise.
    css = page.locator("link[rel=stylesheet]").first.get_attribute("href")
    assert css and re.search(r"\.[0-9a-f]{12}\.css$", css), css
    assert page.request.get(url + css).status == 200

    prompt = "a lighthouse on a cliff at dawn, production"
    page.locator("#imagine-form textarea[name=prompt]").fill(prompt)
    page.locator("#imagine-form").get_by_label("Turbo").check()
    page.locator("#imagine-form button[type=submit]", has_text="Imagine").click()

    cards = page.locator("#job-list article.card")
    cards.first.wait_for(timeout=WAIT_MS)
    first = page.locator(f"#{cards.first.get_attribute('id')}")
    assert prompt in first.inner_text()
    try:
        first.locator("img.result").wait_for(timeout=WAIT_MS)
    except Exception as exc:
        pytest.fail(f"the first job's picture never showed: {exc}\n{production.tails()}")

    first.get_by_role("button", name=re.compile(r"^Reroll")).click()
    cards.nth(1).wait_for(timeout=WAIT_MS)
    second_id = cards.first.get_attribute("id")
    assert second_id != first.get_attribute("id")
    second = page.locator(f"#{second_id}")
    assert "Reroll" in second.locator(".badge.action").inner_text()
    try:
        second.locator("img.result").wait_for(timeout=WAIT_MS)
    except Exception as exc:
        pytest.fail(f"the reroll's picture never showed: {exc}\n{production.tails()}")
    for card in (first, second):
        src = card.locator("img.result").get_attribute("src")
        assert src
        picture = page.request.get(url + src)
        assert picture.status == 200 and picture.body()[8:12] == b"WEBP", src
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "production-walk.png"), full_page=True)
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors

    # The database: two succeeded jobs, the reroll's parent the first; credits held at the
    # price and charged once each, nothing left held.
    deadline = time.monotonic() + 15
    while True:
        jobs = production.query(
            "SELECT j.id, j.parent_id, j.action, j.status, j.mode, j.cost, j.charge"
            " FROM gallery_job j JOIN mjweb_user u ON u.id = j.owner_id"
            " WHERE u.username = %s ORDER BY j.id",
            (name,),
        )
        settled = len(jobs) == 2 and all(job[6] == "captured" for job in jobs)
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(jobs) == 2, jobs
    (first_id, first_parent, *_), (_, second_parent, *_) = jobs
    assert [job[2] for job in jobs] == ["imagine", "reroll"], jobs
    assert [job[3] for job in jobs] == ["succeeded", "succeeded"], jobs
    assert first_parent is None and second_parent == first_id, jobs
    assert [job[6] for job in jobs] == ["captured", "captured"], jobs
    for _, _, action, _, mode, cost, _ in jobs:
        price = production.query(
            "SELECT credits FROM billing_price WHERE action = %s AND mode = %s", (action, mode)
        )
        assert price == [(cost,)] and cost > 0, (action, mode, cost, price)

    entries = production.query(
        "SELECT e.kind, e.amount, e.job_id FROM billing_ledgerentry e"
        " JOIN billing_creditaccount a ON a.id = e.account_id"
        " JOIN mjweb_user u ON u.id = a.user_id WHERE u.username = %s ORDER BY e.id",
        (name,),
    )
    assert [(kind, amount) for kind, amount, _ in entries if kind == "grant"] == [
        ("grant", WELCOME_CREDITS)
    ], entries
    for job_id, *_, cost, _ in jobs:
        moves = sorted((kind, amount) for kind, amount, job in entries if job == job_id)
        assert moves == [("capture", cost), ("hold", cost)], (job_id, entries)
    account = production.query(
        "SELECT a.balance, a.held FROM billing_creditaccount a"
        " JOIN mjweb_user u ON u.id = a.user_id WHERE u.username = %s",
        (name,),
    )
    assert account == [(WELCOME_CREDITS - sum(job[5] for job in jobs), 0)], (account, jobs)

    # The web server's connections come from its pools: at most their size, plus each
    # process's one LISTEN connection for the push streams.
    web = production.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = %s",
        (WEB_APP,),
    )[0][0]
    assert 1 <= web <= WEB_CONCURRENCY * (POOL_MAX_SIZE + 1), web


def test_the_worker_stops_cleanly_on_sigterm(production: Production) -> None:
    worker = production.processes["worker"]
    assert worker.poll() is None, f"the worker had already exited\n{production.tails()}"
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        code = worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not stop within 30 s of SIGTERM\n{production.tails()}")
    assert code == 0, f"the worker exited with {code}\n{production.tails()}"
    log = production.logs["worker"].read_text(encoding="utf-8", errors="replace")
    assert "did not stop in time" not in log, production.tails()

    leases = production.query(
        "SELECT id, status, dispatch_lease_until FROM gallery_job"
        " WHERE dispatch_lease_until > now()"
    )
    assert leases == [], leases

    deadline = time.monotonic() + 10
    while True:
        answer = readyz(production.url)
        if answer.status_code == 503 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert answer.status_code == 503, (answer.status_code, answer.text, production.tails())
    missing = answer.json()["missing"]
    assert {f"worker:{queue}" for queue in QUEUES} <= set(missing), missing
