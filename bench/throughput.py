"""The whole studio under a burst of imagines: the web server, one worker (`manage.py worker`:
a django-q2 cluster per task queue) and the
simulator run as separate processes, as `make run` starts them, on a throwaway database.

    python bench/throughput.py                        # 200 imagines, 3 s jobs, webhooks on
    python bench/throughput.py --webhooks both        # the same with webhooks on, then off
    python bench/throughput.py --jobs 12 --webhooks both   # few jobs: every call counted
    python bench/throughput.py --calls-per-tick       # calls per poll tick, 1/10/100 in flight
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/throughput.py

One user signs up over HTTP and POSTs `--jobs` imagines to /imagine/ (as htmx does, a few
at once: `--concurrency`), with the simulator taking `--seconds` per job and the provider
account's default capacity (MJ_PROVIDER_RUNNING + MJ_PROVIDER_QUEUED). The bench waits until
every job has ended and prints, per webhook setting: jobs a minute end to end (first POST to
the last job succeeded with its images stored), where a job's life went (waiting here for a
slot, the provider's run, provider SUCCESS until stored), how long a provider slot stayed
taken, the worker's CPU seconds per job and memory (summed over the worker's processes:
/proc/<pid>/stat and smaps_rollup of it and its descendants), the provider calls the product
recorded (ProviderCall, by path) and the django-q tasks that ran, by function.

Tasks are counted from the worker's log, not from django-q's records: the product keeps no
successful task (MJWEB_TASK_SAVE_LIMIT=-1), and keeping them would cost the worker an insert
per task. At LOG_LEVEL=INFO (the default, set for the stack) django-q logs "processing
<name> '<func>'" when a worker takes a task and "Processed '<func>' (<name>)" or "Failed ..."
when it is done, and gallery.tasks logs each task's CPU time (all threads of its worker
process): the bench counts those by function, with the run time between the two and the CPU
time.

`--calls-per-tick` measures instead, with long simulator jobs (`--long-seconds`) that stay
in flight, how many provider calls one poll tick costs with 1, 10 and 100 jobs at the
provider (`--in-flight`; the capacity is raised to fit them): all ProviderCall rows of a
`--window` divided by the batched reads (one per tick) in it.

Each run gets its own copy of the migrated throwaway database (a file in a temporary
directory on SQLite; `mjweb_bench_<pid>_<run>` on the DATABASE_URL server), dropped
afterwards. The stack runs with DEBUG=0 (static files collected into a temporary
directory). A benchmark prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import _harness  # first: sets up Django
import httpx
from _net import free_port, wait_for_http
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from mjweb.management.commands.runall import web_command

MANAGE = [sys.executable, str(_harness.ROOT / "manage.py")]
TMP = Path(_harness.TMP.name)
STATIC = TMP / "static"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PASSWORD = "bench-Lighthouse-42"
SAMPLE_EVERY = 0.25
PREVIEWS_ASKED = 3
# Defaults the product would use, read from the settings module (the environment may change
# them for the stack as for this process).
WORKERS = int(settings.Q_CLUSTER["workers"])
POLL = float(settings.MJ_POLL_INTERVAL)


# --- processes and what they use ----------------------------------------------------------


@dataclass
class Usage:
    cpu: float = 0.0  # seconds: utime+stime of the group's processes and of their reaped children
    rss: int = 0  # bytes, summed over the processes (shared pages counted in each)
    pss: int = 0  # bytes, proportional set size summed: shared pages split between them
    processes: int = 0


def tree_usage(root: int) -> Usage:
    """What a stack process and all its descendants use now. Descendants, not a process
    group: `manage.py worker` starts each cluster in a session of its own."""
    stats: dict[int, list[str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        stats[int(entry.name)] = stat[stat.rindex(")") + 2 :].split()  # [0] is field 3
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    usage, todo = Usage(), [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        fields = stats.get(pid)
        if fields is None:
            continue
        usage.processes += 1
        usage.cpu += sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
        usage.rss += int(fields[21]) * PAGE
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        found = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
        usage.pss += int(found.group(1)) * 1024 if found else 0
    return usage


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])
    idle = values[3] + values[4]
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def base_env(root: Path, database_url: str) -> dict[str, str]:
    """What every stack process gets: this process's environment minus its database, plus a
    production-like studio (DEBUG off) whose one user may submit without limits."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE", "MJWEB_DATA_DIR"}
    }
    env.update(
        DEBUG="0",
        SECRET_KEY="bench-only-not-secret",
        MJWEB_HTTPS="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        STATIC_ROOT=str(STATIC),
        DATABASE_URL=database_url,
        MJWEB_DATA_DIR=str(root),
        MJ_PROVIDER="simulator",
        # One user submits the whole burst: the throttles are not what is measured.
        MJWEB_THROTTLE="0",
        MJ_SIMULATOR_HOST="127.0.0.1",
        MJ_WELCOME_CREDITS="100000000",
        MJ_JOBS_PER_DAY="0",
        MJ_JOBS_AT_ONCE="0",
        LOG_LEVEL="INFO",
        MJWEB_TASK_LOG_LEVEL="INFO",  # django-q's task lines, which the bench counts
        PYTHONUNBUFFERED="1",
    )
    return env


def collect_static() -> None:
    """DEBUG=0 renders pages against the static files' manifest: build it once."""
    env = base_env(TMP / "collectstatic", f"sqlite:///{TMP / 'collectstatic.sqlite3'}")
    subprocess.run(
        [*MANAGE, "collectstatic", "--no-input"], env=env, check=True, capture_output=True
    )


@dataclass
class Stack:
    web: str
    simulator: str
    root: Path
    processes: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]

    def usage(self, name: str) -> Usage:
        return tree_usage(self.processes[name].pid)

    def dead(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]


@contextmanager
def running_stack(root: Path, database_url: str, **extra: str) -> Iterator[Stack]:
    """Simulator, worker and web server, each in a process group of its own, logging to
    files under `root`; each is measured with its descendants (tree_usage)."""
    web_port, sim_port = free_port(), free_port()
    env = base_env(root, database_url)
    env.update(SITE_URL=f"http://127.0.0.1:{web_port}", MJ_SIMULATOR_PORT=str(sim_port), **extra)
    commands = {
        "simulator": [*MANAGE, "simulator"],
        "worker": [*MANAGE, "worker"],
        # The web server production runs (uvicorn on mjweb.asgi, with its connection pool),
        # as `make run` starts it; Django's runserver would open a database connection for
        # every request, a webhook flood's largest cost.
        "web": web_command(f"127.0.0.1:{web_port}"),
    }
    root.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: root / f"{name}.log" for name in commands}
    try:
        for name, command in commands.items():
            with logs[name].open("wb") as out:
                processes[name] = subprocess.Popen(
                    command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        stack = Stack(
            f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sim_port}", root, processes, logs
        )
        wait_for_http(f"{stack.simulator}/mj/task/0/fetch")
        wait_for_http(f"{stack.web}/accounts/login/")
        wait_for_worker(stack)
        yield stack
    finally:
        stop_all(processes)


def wait_for_worker(stack: Stack, seconds: float = 60.0) -> None:
    """The worker is up once django-q says each of its clusters (one per queue) is running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stack.dead():
            raise RuntimeError(f"{', '.join(stack.dead())} exited at start; see {stack.root}")
        running = re.findall(r"Q Cluster \S+ \[(\S+)\] running", stack.logs["worker"].read_text())
        if set(running) >= set(settings.TASK_QUEUES.values()):
            time.sleep(1.0)  # the processes settle
            return
        time.sleep(0.2)
    print(f"  (the worker did not say it runs within {seconds:.0f} s)", file=sys.stderr)


def stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM each group, SIGKILL whatever is left after a grace (the worker waits for its
    running tasks, and a poll link may sleep for a minute: nothing it does matters now)."""
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for process in processes.values():
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for process in processes.values():
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # forks that outlived their parent too
        process.wait()


# --- the user and the submits ---------------------------------------------------------------


class User:
    """One signed-up user of the web server, submitting from several threads at once."""

    def __init__(self, base: str) -> None:
        self.base = base
        with httpx.Client(base_url=base, timeout=30) as client:
            client.get("/accounts/signup/")
            token = client.cookies["csrftoken"]
            answer = client.post(
                "/accounts/signup/",
                data={
                    "username": "bench",
                    "email": "bench@example.com",
                    "password1": PASSWORD,
                    "password2": PASSWORD,
                    "csrfmiddlewaretoken": token,
                },
            )
            if answer.status_code != 302:
                raise RuntimeError(f"sign-up answered {answer.status_code}")
            self.cookies = dict(client.cookies.items())
        self.csrf = self.cookies["csrftoken"]
        self._local = threading.local()

    @property
    def pk(self) -> int:
        from mjweb.models import User as Account

        return int(Account.objects.get(username="bench").pk)

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(base_url=self.base, timeout=120, cookies=self.cookies)
            self._local.client = client
        return client

    def get(self, path: str) -> httpx.Response:
        return self._client().get(path)

    def imagine(self, number: int) -> str:
        """One press of Imagine, as htmx sends it; "" when the job was made, else why not."""
        answer = self._client().post(
            "/imagine/",
            data={
                "prompt": f"a lighthouse on a cliff at dawn, number {number}",
                "mode": "fast",
                "submit_key": str(uuid.uuid4()),
                "csrfmiddlewaretoken": self.csrf,
            },
            headers={"HX-Request": "true", "X-CSRFToken": self.csrf},
        )
        if answer.status_code != 200 or "HX-Retarget" in answer.headers:
            return f"HTTP {answer.status_code}"
        return ""

    def imagines(self, numbers: range, concurrency: int) -> list[str]:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            refused = [why for why in pool.map(self.imagine, numbers) if why]
        return refused


# --- watching a run -------------------------------------------------------------------------


@dataclass
class Watch:
    """What a sampler thread sees every SAMPLE_EVERY seconds while the jobs run."""

    owner: int
    expect: int
    stack: Stack
    user: User | None = None  # asks for the running cards' previews, as their page does
    done: threading.Event = field(default_factory=threading.Event)
    result_seen: dict[int, float] = field(default_factory=dict)  # job pk -> epoch seconds
    worker_start: Usage = field(default_factory=Usage)
    worker_end: Usage = field(default_factory=Usage)
    web_start: Usage = field(default_factory=Usage)
    web_end: Usage = field(default_factory=Usage)
    sim_start: Usage = field(default_factory=Usage)
    sim_end: Usage = field(default_factory=Usage)
    machine_start: tuple[float, float] = (0.0, 0.0)
    machine_end: tuple[float, float] = (0.0, 0.0)
    peak_rss: int = 0
    peak_pss: int = 0
    peak_queue: int = 0
    slot_samples: list[int] = field(default_factory=list)
    ended: int = 0
    last_progress: float = field(default_factory=time.monotonic)
    error: str = ""
    preview_seconds: list[float] = field(default_factory=list)
    preview_answers: Counter[int] = field(default_factory=Counter)

    def start(self) -> None:
        self.worker_start = self.stack.usage("worker")
        self.web_start = self.stack.usage("web")
        self.sim_start = self.stack.usage("simulator")
        self.machine_start = machine_cpu()
        self.peak_rss, self.peak_pss = self.worker_start.rss, self.worker_start.pss

    def ask_for_previews(self, running: Any) -> None:
        """GET the preview of up to PREVIEWS_ASKED running cards that show one: the request
        a page makes for each running card, timed."""
        if self.user is None:
            return
        codes = running.exclude(preview_image="").values_list("code", flat=True)
        for code in codes[:PREVIEWS_ASKED]:
            began = time.monotonic()
            answer = self.user.get(f"/jobs/{code}/preview/")
            self.preview_seconds.append(time.monotonic() - began)
            self.preview_answers[answer.status_code] += 1

    def run(self, stall: float, give_up_at: float) -> None:
        from django_q.models import OrmQ

        from gallery.models import Job

        try:
            while not self.done.is_set():
                worker = self.stack.usage("worker")
                self.peak_rss = max(self.peak_rss, worker.rss)
                self.peak_pss = max(self.peak_pss, worker.pss)
                self.peak_queue = max(self.peak_queue, OrmQ.objects.count())
                jobs = Job.objects.filter(owner_id=self.owner)
                now = time.time()
                for pk in jobs.exclude(result_url="").values_list("pk", flat=True):
                    self.result_seen.setdefault(pk, now)
                self.slot_samples.append(Job.objects.occupying("simulator").count())
                self.ask_for_previews(jobs.filter(status=Job.Status.RUNNING))
                ended = jobs.filter(status__in=Job.TERMINAL).count()
                if ended != self.ended:
                    self.ended, self.last_progress = ended, time.monotonic()
                if ended >= self.expect:
                    break
                if self.stack.dead():
                    self.error = f"{', '.join(self.stack.dead())} exited"
                    break
                if time.monotonic() - self.last_progress > stall:
                    self.error = f"no job ended for {stall:.0f} s"
                    break
                if time.monotonic() > give_up_at:
                    self.error = "gave up waiting"
                    break
                time.sleep(SAMPLE_EVERY)
        except Exception as exc:  # reported with the figures; the stack is stopped anyway
            self.error = f"sampler failed: {exc!r}"
        finally:
            self.worker_end = self.stack.usage("worker")
            self.web_end = self.stack.usage("web")
            self.sim_end = self.stack.usage("simulator")
            self.machine_end = machine_cpu()
            connection.close()
            self.done.set()


# --- figures ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    at = (len(ordered) - 1) * q
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def p50_p95(values: list[float], unit: str = " s") -> str:
    p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
    if p50 is None or p95 is None:
        return "n/a"
    return f"{p50:.1f} / {p95:.1f}{unit}"


_ID = re.compile(r"\d{6,}")


def call_path(method: str, path: str) -> str:
    return f"{method} {_ID.sub('{id}', path)}"


def provider_calls(**window: datetime) -> Counter[str]:
    from gallery.models import ProviderCall

    calls = ProviderCall.objects.all()
    if window:
        calls = calls.filter(created_at__gte=window["since"], created_at__lt=window["until"])
    counted: Counter[str] = Counter()
    for row in calls.values("method", "path").annotate(n=Count("id")):
        counted[call_path(row["method"], row["path"])] += row["n"]
    return counted


_TASK_LINE = re.compile(
    r"^(\S+ \S+) \w+ django-q (?:\S+ processing (\S+) '([\w.]+)'|(Processed|Failed) "
    r"'([\w.]+)' \((\S+)\))"
)


# gallery.tasks.cost_log's line: each task's CPU time, all threads of its worker process.
_COST_LINE = re.compile(r"^\S+ \S+ \w+ gallery\.tasks\.cost task ([\w.]+) \(\S+\) cpu ([\d.]+) s")


@dataclass
class Tasks:
    """The tasks a worker's log shows: how many ran, failed, how long each ran and the CPU
    time it took."""

    started: Counter[str] = field(default_factory=Counter)
    done: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    unfinished: int = 0


def tick_gaps() -> list[float]:
    """Seconds between consecutive poll ticks (each tick makes one batched read)."""
    from gallery.models import ProviderCall

    stamps = [
        at.timestamp()
        for at in ProviderCall.objects.filter(path__endswith="/list-by-condition")
        .order_by("created_at")
        .values_list("created_at", flat=True)
    ]
    return [later - earlier for earlier, later in pairwise(stamps)]


def tasks_in(log: Path, start: int = 0, end: int | None = None) -> Tasks:
    """The django-q tasks of a worker's log (from byte `start` to `end`), by function."""
    with log.open("rb") as handle:
        handle.seek(start)
        text = handle.read(None if end is None else max(0, end - start))
    tasks = Tasks()
    running: dict[str, list[float]] = {}  # task name -> start times (names repeat per job)
    for line in text.decode("utf-8", "replace").splitlines():
        cost = _COST_LINE.match(line)
        if cost is not None:
            func, cpu = cost.groups()
            tasks.cpu.setdefault(func.removeprefix("gallery.tasks."), []).append(float(cpu))
            continue
        found = _TASK_LINE.match(line)
        if found is None:
            continue
        stamp, name, func, outcome, ended_func, ended_name = found.groups()
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if name:
            tasks.started[func.removeprefix("gallery.tasks.")] += 1
            running.setdefault(name, []).append(at)
            continue
        short = ended_func.removeprefix("gallery.tasks.")
        (tasks.done if outcome == "Processed" else tasks.failed)[short] += 1
        starts = running.get(ended_name)
        if starts:
            tasks.seconds.setdefault(short, []).append(at - starts.pop(0))
    tasks.unfinished = sum(len(starts) for starts in running.values())
    return tasks


_REQUEST = re.compile(r'"(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP/[\d.]+" (\d{3})')


def requests_in(log: Path, start: int = 0, end: int | None = None) -> Counter[str]:
    """Requests an access log (uvicorn's, the simulator's) shows, by method, path, status."""
    with log.open("rb") as handle:
        handle.seek(start)
        text = handle.read(None if end is None else max(0, end - start))
    counted: Counter[str] = Counter()
    for method, path, status in _REQUEST.findall(text.decode("utf-8", "replace")):
        path = path.split("?", 1)[0]
        if path.startswith("/hooks/"):
            path = "/".join(path.split("/")[:3]) + "/…"
        counted[f"{method} {_ID.sub('{id}', path)} {status}"] += 1
    return counted


def hooks_received(requests: Counter[str]) -> str:
    ok = sum(n for key, n in requests.items() if " /hooks/" in key and key.endswith(" 200"))
    other = sum(n for key, n in requests.items() if " /hooks/" in key) - ok
    return f"{ok}" + (f" (+{other} not 200)" if other else "")


_TROUBLE = re.compile(
    r"\b(ERROR|CRITICAL|WARNING|Traceback)\b|webhook to .* failed|adopted its task"
)
_NOISE = re.compile(r"This is a development server")


def trouble(logs: dict[str, Path]) -> list[str]:
    """Warning and error lines of the stack's logs, with how often each came (ids folded)."""
    found: list[str] = []
    for name, log in logs.items():
        seen: Counter[str] = Counter()
        first: dict[str, str] = {}
        for line in log.read_text("utf-8", "replace").splitlines():
            if _TROUBLE.search(line) and not _NOISE.search(line):
                key = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+", "#", line.split(" ", 2)[-1])[:160]
                seen[key] += 1
                first.setdefault(key, line)
        for key, n in seen.most_common(8):
            found.append(f"{name}: {n}x {first[key][:300]}")
    return found


@dataclass
class Column:
    """One run's figures, as table cells keyed by row label."""

    title: str
    cells: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def table(caption: str, columns: list[Column]) -> str:
    rows: list[str] = []
    for column in columns:
        rows += [label for label in column.cells if label not in rows]
    lines = [
        f"| {caption} | " + " | ".join(c.title for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for label in rows:
        lines.append(f"| {label} | " + " | ".join(c.cells.get(label, "") for c in columns) + " |")
    return "\n".join(lines)


def mb(size: int) -> str:
    return f"{size / 1e6:.0f}"


# --- one throughput run ----------------------------------------------------------------------


def throughput_run(tag: str, *, webhooks: bool, args: argparse.Namespace) -> Column:
    from gallery import dispatch
    from gallery.models import Job

    title = f"webhooks {'on' if webhooks else 'off'}"
    column = Column(title)
    root = TMP / tag
    extra = {
        "MJ_WEBHOOKS": "1" if webhooks else "0",
        "MJ_SIMULATOR_DURATION": str(args.seconds),
    }
    print(f"{title}: starting the stack", file=sys.stderr)
    with _harness.database_copy(tag) as url, running_stack(root, url, **extra) as stack:
        user = User(stack.web)
        watch = Watch(owner=user.pk, expect=args.jobs, stack=stack, user=user)
        watch.start()
        started = time.time()
        sampler = threading.Thread(
            target=watch.run,
            args=(args.stall, time.monotonic() + args.timeout),
            name="sampler",
            daemon=True,
        )
        sampler.start()
        print(f"{title}: {args.jobs} imagines", file=sys.stderr)
        refused = user.imagines(range(args.jobs), args.concurrency)
        submitted = time.time() - started
        if refused:
            watch.expect = args.jobs - len(refused)
            column.notes.append(f"{len(refused)} submits refused: {Counter(refused)}")
        watch.done.wait()
        sampler.join()
        if watch.error:
            column.notes.append(f"stopped early: {watch.error}")
        jobs = list(Job.objects.filter(owner_id=watch.owner))
        calls = provider_calls()
        gaps = tick_gaps()
        tasks = tasks_in(stack.logs["worker"])
        web_requests = requests_in(stack.logs["web"])
        sim_requests = requests_in(stack.logs["simulator"])
        column.notes += trouble(stack.logs)
        stuck = Counter(job.status for job in jobs if job.status not in Job.TERMINAL)
        if stuck:
            column.notes.append(f"unfinished: {dict(stuck)}")
        if args.logs:
            keep = Path(args.logs) / f"{connection.vendor}-{tag}"
            shutil.copytree(root, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("media"))
            column.notes.append(f"logs kept in {keep}")
        capacity = dispatch.capacity(settings.MJ_PROVIDER)

    succeeded = [job for job in jobs if job.status == Job.Status.SUCCEEDED]
    ended = [job.finished_at.timestamp() for job in succeeded if job.finished_at]
    span = (max(ended) - started) if ended else 0.0
    kinds = Counter(job.fail_kind or job.status for job in jobs if job.status != "succeeded")
    life = [(j.finished_at - j.created_at).total_seconds() for j in succeeded if j.finished_at]
    waited = [(j.submitted_at - j.created_at).total_seconds() for j in succeeded if j.submitted_at]
    at_provider: list[float] = []
    to_stored: list[float] = []
    to_read: list[float] = []
    slot_held: list[float] = []
    for job in succeeded:
        finish_ms = job.provider_payload.get("finishTime") if job.provider_payload else None
        if not (finish_ms and job.finished_at and job.submitted_at):
            continue
        finish = float(finish_ms) / 1000
        at_provider.append(finish - job.submitted_at.timestamp())
        to_stored.append(job.finished_at.timestamp() - finish)
        seen = watch.result_seen.get(job.pk)
        if seen is not None:
            to_read.append(max(0.0, seen - finish))
            slot_held.append(seen - job.submitted_at.timestamp())
    n = max(1, len(jobs))
    cpu = watch.worker_end.cpu - watch.worker_start.cpu
    busy = watch.machine_end[0] - watch.machine_start[0]
    total = watch.machine_end[1] - watch.machine_start[1]
    slots = watch.slot_samples
    c = column.cells
    c["jobs a minute (first POST → last stored)"] = (
        f"**{len(ended) / span * 60:.0f}**" if span else "n/a"
    )
    c["jobs succeeded / ended otherwise"] = f"{len(succeeded)} / {sum(kinds.values())}" + (
        f" ({', '.join(f'{k} {v}' for k, v in kinds.items())})" if kinds else ""
    )
    c["all POSTs answered after"] = f"{submitted:.1f} s"
    c["job life p50 / p95"] = p50_p95(life)
    c["· waiting here for a slot"] = p50_p95(waited)
    c["· at the provider (submitted → its SUCCESS)"] = p50_p95(at_provider)
    c["· provider SUCCESS → stored, succeeded"] = p50_p95(to_stored)
    c["· · of which SUCCESS → result read (±0.25 s)"] = p50_p95(to_read)
    c["provider slot held (submitted → result read)"] = p50_p95(slot_held)
    c["slots taken on average (of capacity)"] = (
        f"{sum(slots) / len(slots):.1f} of {capacity}" if slots else "n/a"
    )
    c["worker CPU s per job"] = f"**{cpu / n:.2f}** ({cpu:.0f} s)"
    c["worker RSS start → peak, MB (PSS peak)"] = (
        f"{mb(watch.worker_start.rss)} → {mb(watch.peak_rss)} ({mb(watch.peak_pss)})"
    )
    c["web / simulator CPU s per job"] = (
        f"{(watch.web_end.cpu - watch.web_start.cpu) / n:.2f} / "
        f"{(watch.sim_end.cpu - watch.sim_start.cpu) / n:.2f}"
    )
    c["machine CPU busy (all processes)"] = f"{busy / total * 100:.0f} %" if total else "n/a"
    c["django-q queue depth peak"] = str(watch.peak_queue)
    answers = ", ".join(f"{code}: {n}" for code, n in sorted(watch.preview_answers.items()))
    c["preview requests p50 / p95 (answers)"] = (
        f"{p50_p95([t * 1000 for t in watch.preview_seconds], ' ms')} ({answers})"
        if watch.preview_seconds
        else "none asked"
    )
    c["webhooks received"] = hooks_received(web_requests) if webhooks else "0"
    c["provider calls (per job)"] = f"{calls.total()} ({calls.total() / n:.2f})"
    for path, count in sorted(calls.items(), key=lambda item: -item[1]):
        c[f"· {path}"] = str(count)
    ticks = sum(count for path, count in calls.items() if "list-by-condition" in path)
    reads = calls.total() - sum(count for path, count in calls.items() if "/submit/" in path)
    c["provider reads per poll tick"] = f"{reads / ticks:.2f}" if ticks else "n/a"
    c["time between poll ticks p50 / p95 / max"] = (
        f"{p50_p95(gaps, '')} / {max(gaps):.1f} s" if gaps else "n/a"
    )
    images = sum(count for key, count in sim_requests.items() if "/mj/image/" in key)
    c["image downloads (simulator's log)"] = str(images)
    if not tasks.started:
        column.notes.append("the worker's log shows no django-q task lines: tasks not counted")
    c["tasks run (worker's log): p50 run time; CPU p50, all"] = str(tasks.done.total())
    for name, count in tasks.done.most_common():
        run = percentile(tasks.seconds.get(name, []), 0.5) or 0
        cpu = tasks.cpu.get(name, [])
        spent = f"; CPU {percentile(cpu, 0.5) or 0:.3f} s, {sum(cpu):.1f} s" if cpu else ""
        c[f"· {name}"] = f"{count} ({run:.2f} s{spent})"
    c["tasks failed"] = (
        ", ".join(f"{name} {count}" for name, count in tasks.failed.most_common()) or "0"
    )
    return column


# --- provider calls per poll tick -------------------------------------------------------------


def wait_in_flight(owner: int, count: int, seconds: float = 180.0) -> bool:
    from gallery.models import Job

    deadline = time.monotonic() + seconds
    while True:
        at_provider = Job.objects.filter(
            owner_id=owner, status__in=(Job.Status.SUBMITTED, Job.Status.RUNNING)
        ).count()
        if at_provider >= count:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def calls_per_tick_run(tag: str, *, webhooks: bool, args: argparse.Namespace) -> Column:
    title = f"webhooks {'on' if webhooks else 'off'}"
    column = Column(title)
    root = TMP / tag
    in_flight = sorted(args.in_flight)
    extra = {
        "MJ_WEBHOOKS": "1" if webhooks else "0",
        "MJ_SIMULATOR_DURATION": str(args.long_seconds),
        "MJ_PROVIDER_RUNNING": str(max(3, in_flight[-1])),
        "MJ_PROVIDER_QUEUED": "10",
    }
    print(f"{title}: starting the stack", file=sys.stderr)
    with _harness.database_copy(tag) as url, running_stack(root, url, **extra) as stack:
        user = User(stack.web)
        owner = user.pk
        submitted = 0
        for count in in_flight:
            print(f"{title}: {count} in flight", file=sys.stderr)
            refused = user.imagines(range(submitted, count), args.concurrency)
            submitted = count
            if refused:
                column.notes.append(f"{count}: {len(refused)} submits refused")
            if not wait_in_flight(owner, count):
                column.notes.append(f"{count}: not all in flight after 180 s")
            time.sleep(2 * POLL)  # the dispatches' own kicks and reads are over
            web_from, worker_from = (stack.logs[n].stat().st_size for n in ("web", "worker"))
            since = timezone.now()
            time.sleep(args.window)
            until = timezone.now()
            web_to, worker_to = (stack.logs[n].stat().st_size for n in ("web", "worker"))
            calls = provider_calls(since=since, until=until)
            started = tasks_in(stack.logs["worker"], worker_from, worker_to).started
            if not wait_in_flight(owner, count, seconds=0):
                column.notes.append(f"{count}: jobs ended during the window")
            ticks = sum(n for path, n in calls.items() if "list-by-condition" in path)
            others = ", ".join(
                f"{path.split(' ', 1)[1]} {n}"
                for path, n in calls.most_common()
                if "list-by-condition" not in path
            )
            hooks = hooks_received(requests_in(stack.logs["web"], web_from, web_to))
            per_tick = f"**{calls.total() / ticks:.2f}**" if ticks else "n/a"
            detail = f"{ticks} ticks" + (f"; {others}" if others else "")
            if webhooks:
                detail += f"; {hooks} hooks"
            detail += "; tasks started " + (
                ", ".join(f"{k} {v}" for k, v in started.most_common()) or "none"
            )
            column.cells[f"{count} in flight"] = f"{per_tick} ({detail})"
        column.notes += trouble(stack.logs)
        if args.logs:
            keep = Path(args.logs) / f"{connection.vendor}-{tag}"
            shutil.copytree(root, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("media"))
    return column


# --- main ---------------------------------------------------------------------------------------


def database_label() -> str:
    if connection.vendor == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return f"PostgreSQL {cursor.fetchone()[0].split()[0]}"


def print_column_notes(columns: list[Column]) -> None:
    for column in columns:
        for note in column.notes:
            print(f"- {column.title}: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description="The studio's throughput under a burst of imagines (web server, one "
        "qcluster worker and the simulator as separate processes), or its provider calls per "
        "poll tick (--calls-per-tick)."
    )
    parser.add_argument("--jobs", type=int, default=200, help="imagines submitted at once")
    parser.add_argument("--seconds", type=float, default=3.0, help="simulator seconds per job")
    parser.add_argument("--webhooks", choices=("on", "off", "both"), default="on")
    parser.add_argument("--concurrency", type=int, default=16, help="POSTs in flight at once")
    parser.add_argument(
        "--calls-per-tick", action="store_true", help="measure provider calls per poll tick"
    )
    parser.add_argument(
        "--in-flight",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 10, 100],
        help="jobs at the provider for --calls-per-tick (default 1,10,100)",
    )
    parser.add_argument("--window", type=float, default=20.0, help="seconds counted per step")
    parser.add_argument(
        "--long-seconds", type=float, default=240.0, help="simulator job time for --calls-per-tick"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait, at most")
    parser.add_argument(
        "--stall", type=float, default=180.0, help="stop when no job ended for this long"
    )
    parser.add_argument("--logs", default="", help="copy the stack's logs into this directory")
    args = parser.parse_args()
    settings_for = {"on": [True], "off": [False], "both": [True, False]}[args.webhooks]
    load = Path("/proc/loadavg").read_text().split()[0]

    with _harness.throwaway_database():
        label = database_label()
        print(f"collecting static files; database {label}", file=sys.stderr)
        collect_static()
        run = calls_per_tick_run if args.calls_per_tick else throughput_run
        columns = [
            run(f"hooks{'on' if on else 'off'}", webhooks=on, args=args) for on in settings_for
        ]

    cpus = os.cpu_count()
    running = settings.MJ_PROVIDER_RUNNING
    queued = settings.MJ_PROVIDER_QUEUED
    if args.calls_per_tick:
        caption = (
            f"calls per poll tick, {args.long_seconds:.0f} s simulator jobs, {args.window:.0f} s "
            f"window, poll {POLL:g} s, {WORKERS} workers, {label}, {cpus} CPUs"
        )
    else:
        caption = (
            f"{args.jobs} imagines ({args.concurrency} POSTs at once), {args.seconds:g} s "
            f"simulator jobs, capacity {running} + {queued}, {WORKERS} workers, poll {POLL:g} s, "
            f"{label}, {cpus} CPUs"
        )
    print()
    print(table(caption, columns))
    print()
    print(f"Load average before the runs: {load} ({cpus} CPUs).")
    print_column_notes(columns)


if __name__ == "__main__":
    main()
