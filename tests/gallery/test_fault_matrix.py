"""The product's end state for each way the providers fail, against the live simulator.

Each case injects one fault (simulator.faults) and drives the real task functions
(dispatch, tick, ingest, submit_modal, the webhook receiver) the way the worker would, with
the simulator's clock advanced by the test and the product's backoff sleeps skipped. Every
case then checks that nothing is left half-done: no job queued under a live dispatch lease,
no succeeded job without its image, no image on a failed job, at most one provider task per
job, and an audit trail of provider calls.

The matrix runs for CometAPI's protocol and, where a fault exists there, for PiAPI's (both
dialects).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from gallery import queue, services, sync, tasks
from gallery.models import Image, Job, ProviderCall
from simulator import faults
from simulator.faults import Faults
from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock, point_product_at

pytestmark = [pytest.mark.django_db, pytest.mark.live]

KEY = "matrix-key"
DEADLINE_TEXT = "No result within the Fast mode deadline."


@dataclass
class Sim:
    """The live simulator and the product's task functions, stepped by hand."""

    server: SimulatorServer
    clock: FakeClock
    protocol: str  # "cometapi", "unified" or "legacy"
    owner: Any
    settings: Any  # pytest-django's: every change is undone after the test

    @property
    def piapi(self) -> bool:
        return self.protocol != "cometapi"

    def submit(self, prompt: str) -> Job:
        return services.submit(owner=self.owner, prompt=prompt, mode="fast")

    def dispatch(self, job: Job) -> Job:
        tasks.dispatch(job.pk)
        job.refresh_from_db()
        return job

    def redispatch(self, job: Job) -> Job:
        """The backed-off dispatch, run now: its next attempt is due."""
        Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        return self.dispatch(job)

    def tick(self, job: Job, seconds: float = 0.5) -> Job:
        self.clock.now += seconds
        sync.tick(job.provider)
        job.refresh_from_db()
        return job

    def run(self, job: Job, *, ingest: bool = True, ticks: int = 60) -> Job:
        """Poll until the provider reports an end (or the job ends), then ingest."""
        for _ in range(ticks):
            if job.result_url or job.is_terminal:
                break
            job = self.tick(job)
        if job.result_url and ingest:
            tasks.ingest(job.pk)
            tasks.renditions(job.pk)  # the tiles, after the job shows as finished
            job.refresh_from_db()
        return job

    def engine_id(self, job: Job) -> str:
        if not self.piapi:
            return job.provider_job_id
        record = self.server.piapi.record(job.provider_job_id)
        assert record is not None
        return record.engine_id

    def provider_tasks(self, job: Job) -> int:
        """Tasks the provider created for this job, orphans of retried submits included."""
        engine_tasks = self.server.engine.tasks()
        if self.piapi:  # PiAPI carries no `state`: every case's prompts are unique
            return sum(t.prompt == job.prompt and t.parent_id is None for t in engine_tasks)
        return sum(t.state == str(job.code) for t in engine_tasks)


@pytest.fixture(params=["cometapi", "unified", "legacy"])
def sim(
    request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch, alice: Any
) -> Iterator[Sim]:
    clock = FakeClock()
    with SimulatorServer(port=0, duration=6.0, api_key=KEY, clock=clock) as server:
        if request.param == "cometapi":
            point_product_at(server, settings, monkeypatch, api_key=KEY)
        else:
            point_product_at(
                server, settings, monkeypatch, api_key=KEY, protocol="piapi",
                piapi_api=request.param,
            )  # fmt: skip
        yield Sim(server, clock, request.param, alice, settings)


def expect(
    job: Job,
    status: str,
    kind: str = "",
    *,
    reason: str | None = None,
    note: str | None = None,
    contains: str | None = None,
    attempts: int | None = None,
) -> None:
    """`reason` is the provider's words (fail_reason), `note` ours (fail_note); `contains`
    is looked for in either."""
    job.refresh_from_db()
    seen = (job.status, job.fail_kind, job.fail_reason, job.fail_note, job.attempts)
    assert (job.status, job.fail_kind) == (status, kind), seen
    if reason is not None:
        assert job.fail_reason == reason, seen
    if note is not None:
        assert job.fail_note == note, seen
    if contains is not None:
        assert contains in f"{job.fail_reason} {job.fail_note}", seen
    if attempts is not None:
        assert job.attempts == attempts, seen


def assert_nothing_half_done(sim: Sim) -> None:
    now = timezone.now()
    assert not Job.objects.filter(status=Job.Status.QUEUED, dispatch_lease_until__gt=now).exists()
    for job in Job.objects.all():
        if job.status == Job.Status.SUCCEEDED:
            tasks.renditions(job.pk)  # the previews queue's step, as its worker runs it
        images = Image.objects.filter(job=job).count()
        if job.status == Job.Status.SUCCEEDED:
            expected = 1 if job.is_single_image else 5  # a grid comes with its four tiles
            assert job.result_url and images == expected, (job.code, job.result_url, images)
        if job.status == Job.Status.FAILED:
            assert images == 0, job.code
        assert sim.provider_tasks(job) <= 1, (job.prompt, sim.provider_tasks(job))
        assert ProviderCall.objects.filter(job=job).exists(), job.prompt


# -- the cases -------------------------------------------------------------------------


def submit_errors_then_success(sim: Sim, directive: str) -> None:
    job = sim.dispatch(sim.submit(f"a fox in snow [sim:{directive}]"))
    lost = directive == "timeout"  # the submit may have reached the provider
    for attempt in (1, 2):
        busy = "did not answer in time" if lost else f"HTTP {directive}"
        expect(job, Job.Status.QUEUED, contains=busy, attempts=attempt)
        assert job.next_attempt_at is not None and job.dispatch_lease_until is None
        if lost:
            # Not sent again while its task may yet be found, then sent again and recorded.
            assert "may have reached the provider" in job.fail_note
            assert sim.redispatch(job).attempts == attempt
            grace = timedelta(seconds=sim.settings.MJ_SUBMIT_GRACE + 1)
            Job.objects.filter(pk=job.pk).update(submit_sent_at=timezone.now() - grace)
        job = sim.redispatch(job)
    expect(job, Job.Status.SUBMITTED, attempts=3)
    job = sim.run(job)
    expect(job, Job.Status.SUCCEEDED, reason="", attempts=3)
    assert sim.provider_tasks(job) == 1
    assert job.suspected_duplicates.count() == (2 if lost else 0)


def case_429_then_success(sim: Sim) -> None:
    submit_errors_then_success(sim, "429")


def case_500_then_success(sim: Sim) -> None:
    submit_errors_then_success(sim, "500")


def case_timeout_then_success(sim: Sim) -> None:
    sim.settings.MJ_HTTP_TIMEOUT = 0.5
    sim.server.faults = Faults(hang=1.5)  # past the client's timeout; stop() ends it early
    submit_errors_then_success(sim, "timeout")


def queue_full_text(sim: Sim, refusal: int) -> str:
    if sim.piapi:
        return faults.PIAPI_QUEUE_FULL
    return faults.QUEUE_FULL[refusal % 2][1]  # novicezk's 23 and trueai's 9 in turn


def case_queue_full_then_room(sim: Sim) -> None:
    sim.server.faults = Faults(queue_limit=1)
    first = sim.dispatch(sim.submit("the first in line"))
    expect(first, Job.Status.SUBMITTED)
    job = sim.dispatch(sim.submit("a fox waiting for room"))
    expect(job, Job.Status.QUEUED, contains=queue_full_text(sim, 0), attempts=1)
    job = sim.redispatch(job)
    expect(job, Job.Status.QUEUED, contains=queue_full_text(sim, 1), attempts=2)
    sim.clock.now += 10  # the first one finishes at the provider: a slot is free
    job = sim.redispatch(job)
    expect(job, Job.Status.SUBMITTED, attempts=3)
    expect(sim.run(first), Job.Status.SUCCEEDED)
    expect(sim.run(job), Job.Status.SUCCEEDED, reason="")


def case_queue_full_until_the_deadline(sim: Sim) -> None:
    sim.settings.MJ_DISPATCH_MAX_ATTEMPTS = 3
    sim.server.faults = Faults(queue_limit=1)
    first = sim.dispatch(sim.submit("the first in line"))
    job = sim.dispatch(sim.submit("a fox that never gets in"))
    job = sim.redispatch(sim.redispatch(sim.redispatch(job)))
    # Past MJ_DISPATCH_MAX_ATTEMPTS: a full queue is waited for while the job may wait.
    expect(job, Job.Status.QUEUED, contains=queue_full_text(sim, 3), attempts=4)
    made = timezone.now() - timedelta(seconds=sim.settings.MJ_DEADLINES["fast"] + 1)
    Job.objects.filter(pk=job.pk).update(created_at=made)
    job = sim.redispatch(job)
    text = queue_full_text(sim, 4)
    if sim.piapi:
        expect(job, Job.Status.FAILED, Job.FailKind.PROVIDER_ERROR, contains=text, attempts=5)
    else:  # the provider's Chinese, verbatim
        expect(job, Job.Status.FAILED, Job.FailKind.PROVIDER_ERROR, reason=text, attempts=5)
    assert sim.provider_tasks(job) == 0
    expect(sim.run(first), Job.Status.SUCCEEDED)


def case_banned_at_submit(sim: Sim) -> None:
    job = sim.dispatch(sim.submit("a bloody scene"))
    expect(job, Job.Status.FAILED, Job.FailKind.REJECTED_PROMPT, contains="(bloody)", attempts=1)
    if not sim.piapi:
        assert job.fail_reason == "可能包含敏感词 (bloody)"
    assert sim.provider_tasks(job) == 0


def case_banned_late(sim: Sim) -> None:
    job = sim.dispatch(sim.submit("a forbidden garden"))
    job = sim.run(job)
    expect(job, Job.Status.FAILED, Job.FailKind.REJECTED_PROMPT, reason=faults.BANNED_REASON)


def case_fail_timeout_text(sim: Sim) -> None:
    job = sim.run(sim.dispatch(sim.submit("a fox in snow [sim:fail]")))
    # 任务超时 is the proxy's own timeout: our timeout kind, its words kept
    expect(job, Job.Status.FAILED, Job.FailKind.TIMEOUT, reason="任务超时")
    job = sim.tick(job, 60)  # still polled as a possible late success: it stays failed
    expect(job, Job.Status.FAILED, Job.FailKind.TIMEOUT, reason="任务超时")


def case_fail_english_text(sim: Sim) -> None:
    job = sim.run(sim.dispatch(sim.submit("a fox in snow [sim:fail-en]")))
    reason = "[Invalid parameter] Invalid value"
    expect(job, Job.Status.FAILED, Job.FailKind.PROVIDER_ERROR, reason=reason)


def case_stuck_then_late_success(sim: Sim) -> None:
    job = sim.dispatch(sim.submit("a fox that never finishes [sim:stuck]"))
    job = sim.run(job, ticks=20)
    assert job.status == Job.Status.RUNNING and job.progress < 100 and not job.result_url
    Job.objects.filter(pk=job.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    job = sim.tick(job)
    expect(job, Job.Status.FAILED, Job.FailKind.TIMEOUT, reason="", note=DEADLINE_TEXT)
    assert not Image.objects.filter(job=job).exists()
    sim.server.engine.finish(sim.engine_id(job))  # the provider finds it after all
    job = sim.tick(job)
    assert job.status == Job.Status.FAILED and job.result_url
    tasks.ingest(job.pk)
    expect(job, Job.Status.SUCCEEDED, reason="")


def case_expire_directive(sim: Sim) -> None:
    job = sim.run(sim.dispatch(sim.submit("a fox in snow [sim:expire]")))
    note = "The image is gone (HTTP 404)."
    expect(job, Job.Status.FAILED, Job.FailKind.IMAGE_UNAVAILABLE, reason="", note=note)


def case_image_ttl(sim: Sim) -> None:
    sim.server.faults = Faults(image_ttl=30)
    job = sim.run(sim.dispatch(sim.submit("a fox in snow")), ingest=False)
    assert job.result_url
    sim.clock.now += 60  # the worker got to it late: the provider's link has expired
    tasks.ingest(job.pk)
    note = "The image is gone (HTTP 404)."
    expect(job, Job.Status.FAILED, Job.FailKind.IMAGE_UNAVAILABLE, reason="", note=note)


def case_malformed_once(sim: Sim) -> None:
    job = sim.run(sim.dispatch(sim.submit("a fox in snow [sim:malformed]")))
    expect(job, Job.Status.SUCCEEDED)

    def is_json(text: str) -> bool:
        try:
            json.loads(text)
        except ValueError:
            return False
        return True

    answers = ProviderCall.objects.filter(job=job).values_list("response_body", flat=True)
    assert not all(is_json(text) for text in answers)  # the cut-off answer was met


def case_flaky_gateway(sim: Sim) -> None:
    sim.server.faults = Faults(error_rate=0.3, seed=11)
    job = sim.dispatch(sim.submit("a fox on a flaky line"))
    while job.status == Job.Status.QUEUED:
        job = sim.redispatch(job)
    job = sim.run(job)
    expect(job, Job.Status.SUCCEEDED)
    calls = ProviderCall.objects.filter(job=job)
    assert calls.filter(status_code__gte=429).exists()  # some calls did fail


def case_latency(sim: Sim) -> None:
    sim.server.faults = Faults(latency=0.05)
    job = sim.run(sim.dispatch(sim.submit("a fox, slowly answered")))
    expect(job, Job.Status.SUCCEEDED)
    latencies = ProviderCall.objects.filter(job=job).values_list("latency_ms", flat=True)
    assert min(latencies) >= 50


def case_wrong_key(sim: Sim) -> None:
    sim.settings.MJ_SIMULATOR_API_KEY = "wrong"
    job = sim.dispatch(sim.submit("a fox in snow"))
    expect(job, Job.Status.FAILED, Job.FailKind.PROVIDER_ERROR, contains="HTTP 401", attempts=1)


def remix_reroll(sim: Sim, faults_value: Faults) -> None:
    parent = sim.run(sim.dispatch(sim.submit("a quiet harbour")))
    expect(parent, Job.Status.SUCCEEDED)
    sim.server.faults = faults_value  # account-level Remix: the user never asked for it
    child = services.press(owner=sim.owner, parent=parent, action=Job.Action.REROLL)
    assert not child.remix
    child = sim.dispatch(child)
    if faults_value.remix_code1:
        # the gateway's code 1: only the fetched status says the provider waits for a prompt
        expect(child, Job.Status.SUBMITTED)
        child = sim.tick(child)
    expect(child, Job.Status.MODAL)
    assert child.awaiting_user
    services.answer_modal(job=child, prompt="a quiet harbour at night, lanterns")
    tasks.submit_modal(child.pk)
    child.refresh_from_db()
    expect(child, Job.Status.SUBMITTED)
    child = sim.run(child)
    expect(child, Job.Status.SUCCEEDED)
    assert child.prompt == "a quiet harbour at night, lanterns"


def case_remix_code1(sim: Sim) -> None:
    remix_reroll(sim, Faults(remix=True, remix_code1=True))


def case_remix_code21(sim: Sim) -> None:
    remix_reroll(sim, Faults(remix=True))


CASES: dict[str, Callable[[Sim], None]] = {
    "429_then_success": case_429_then_success,
    "500_then_success": case_500_then_success,
    "timeout_then_success": case_timeout_then_success,
    "queue_full_then_room": case_queue_full_then_room,
    "queue_full_until_the_deadline": case_queue_full_until_the_deadline,
    "banned_at_submit": case_banned_at_submit,
    "banned_late": case_banned_late,
    "fail_timeout_text": case_fail_timeout_text,
    "fail_english_text": case_fail_english_text,
    "stuck_then_late_success": case_stuck_then_late_success,
    "expire_directive": case_expire_directive,
    "image_ttl": case_image_ttl,
    "malformed_once": case_malformed_once,
    "flaky_gateway": case_flaky_gateway,
    "latency": case_latency,
    "wrong_key": case_wrong_key,
    "remix_code1": case_remix_code1,
    "remix_code21": case_remix_code21,
}
# Faults that PiAPI does not have: it never parks a task in MODAL (the prompt goes with
# the press).
COMETAPI_ONLY = {"remix_code1", "remix_code21"}
# Known product bugs: (protocol or "*", case) -> the bug, precisely. Empty when none.
XFAIL: dict[tuple[str, str], str] = {}


def matrix() -> Iterator[Any]:
    for protocol in ("cometapi", "unified", "legacy"):
        for name in CASES:
            if protocol != "cometapi" and name in COMETAPI_ONLY:
                continue
            bug = XFAIL.get((protocol, name)) or XFAIL.get(("*", name))
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            yield pytest.param(protocol, name, id=f"{protocol}-{name}", marks=marks)


@pytest.mark.parametrize(("sim", "case"), list(matrix()), indirect=["sim"])
def test_fault_matrix(sim: Sim, case: str) -> None:
    CASES[case](sim)
    assert_nothing_half_done(sim)


# -- webhooks: duplicated and out of order ---------------------------------------------


class Capture:
    """Stands where SITE_URL points: records the simulator's deliveries for replay."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with capture._changed:
                    capture.received.append((self.path, body))
                    capture._changed.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def take(self, count: int) -> list[tuple[str, bytes]]:
        """Wait for `count` new deliveries and hand them over."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.received) >= count, 5)
            assert arrived, f"{len(self.received)} of {count} deliveries within 5 s"
            taken, self.received = self.received[:count], self.received[count:]
        return taken

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


RANK = {
    Job.Status.QUEUED: 0,
    Job.Status.SUBMITTED: 1,
    Job.Status.MODAL: 1,
    Job.Status.RUNNING: 2,
    Job.Status.SUCCEEDED: 3,
    Job.Status.FAILED: 3,
}


@pytest.mark.parametrize("sim", ["cometapi"], indirect=True)
def test_duplicated_and_shuffled_notify_hooks_never_move_a_job_backwards(
    sim: Sim, monkeypatch: pytest.MonkeyPatch, client: Client
) -> None:
    capture = Capture()
    try:
        sim.settings.MJ_WEBHOOKS = True  # notifyHook goes out with the submit
        sim.settings.SITE_URL = capture.base
        sim.server.watcher.stop()  # webhook rounds by hand, one per step of the clock
        sim.server.faults = Faults(webhook_duplicates=True, webhook_shuffle=True)

        def run_inline(name: str, *args: Any, **kwargs: Any) -> None:
            # the worker's reads and ingest, at once; the poll chain stays off: only the
            # webhooks move this job
            if name in ("gallery.tasks.collect", "gallery.tasks.refresh", "gallery.tasks.ingest"):
                getattr(tasks, name.rsplit(".", 1)[1])(*args)

        monkeypatch.setattr(queue, "async_task", run_inline)
        job = sim.dispatch(sim.submit("a lighthouse told twice"))
        expect(job, Job.Status.SUBMITTED)
        seen: list[str] = []
        # each round: "" twice; IN_PROGRESS twice; SUCCESS twice then the stale IN_PROGRESS twice
        for step, count in ((0.0, 2), (3.0, 2), (4.0, 4)):
            sim.clock.now += step
            sim.server.notify.scan()
            # rounds are seconds apart for real: each one's first hint gets its fetch
            Job.objects.filter(pk=job.pk).update(hinted_at=None)
            for path, body in capture.take(count):
                answer = client.post(path, body, content_type="application/json")
                assert answer.status_code == 200, answer.content
                job.refresh_from_db()
                seen.append(job.status)
        ranks = [RANK[status] for status in seen]
        assert ranks == sorted(ranks), seen
        expect(job, Job.Status.SUCCEEDED)
        # Progress hooks only wake the poll chain (off here): they move nothing themselves.
        assert seen[:4] == [Job.Status.SUBMITTED] * 4
        assert seen[4:] == [Job.Status.SUCCEEDED] * 4
        assert_nothing_half_done(sim)
    finally:
        capture.close()
