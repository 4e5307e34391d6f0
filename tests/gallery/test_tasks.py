"""dispatch / poll / ingest against a provider faked at the HTTP layer."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from gallery import downloads, imaging, queue, services, sync, tasks
from gallery import ingest as ingesting
from gallery.models import Image, Job, PollLease
from tests.conftest import load
from tests.gallery.factories import (
    FakeProvider,
    json_answer,
    make_finished_job,
    make_job,
    png_bytes,
)

pytestmark = pytest.mark.django_db


def queued_tasks(func: str) -> int:
    return sum(1 for q in OrmQ.objects.all() if q.func() == func)


def test_dispatch_submits_once_and_records_the_provider_id(fake: FakeProvider, alice: Any) -> None:
    fake.routes["/mj/submit/imagine"] = json_answer(load("cometapi/submit_success.json"))
    job = make_job(alice, prompt="red fox", mode="turbo")
    tasks.dispatch(job.pk)
    tasks.dispatch(job.pk)  # redelivered: must not submit again
    job.refresh_from_db()
    assert fake.paths() == ["/mj-turbo/mj/submit/imagine"]
    assert json.loads(fake.requests[0].content)["state"] == str(job.code)
    assert job.status == Job.Status.SUBMITTED
    assert job.provider_job_id == "1773314942177684"
    assert job.deadline_at is not None and job.deadline_at > timezone.now()
    assert job.attempts == 1
    assert queued_tasks("gallery.tasks.poll") == 1


def test_dispatch_of_a_reroll_uses_the_parents_button(fake: FakeProvider, alice: Any) -> None:
    fake.routes["/mj/submit/action"] = json_answer(load("cometapi/submit_success.json"))
    parent = make_finished_job(alice, provider_job_id="1773314900000001")
    child = make_job(alice, parent=parent, root=parent, action=Job.Action.REROLL)
    tasks.dispatch(child.pk)
    body = json.loads(fake.requests[0].content)
    assert body["taskId"] == "1773314900000001"
    assert body["customId"] == "MJ::JOB::reroll::0::h::SOLO"
    child.refresh_from_db()
    assert child.status == Job.Status.SUBMITTED


def test_dispatch_modal_code_21_parks_the_job_in_modal(fake: FakeProvider, alice: Any) -> None:
    fake.routes["/mj/submit/action"] = json_answer(load("cometapi/submit_modal.json"))
    parent = make_finished_job(alice)
    child = make_job(alice, parent=parent, root=parent, action=Job.Action.REROLL)
    tasks.dispatch(child.pk)
    child.refresh_from_db()
    assert child.status == Job.Status.MODAL
    assert child.final_prompt == "red fox in snow --v 6.1"


def test_transient_dispatch_errors_back_off_then_fail(
    fake: FakeProvider, alice: Any, settings: Any
) -> None:
    settings.MJ_DISPATCH_MAX_ATTEMPTS = 2
    fake.routes["/mj/submit/imagine"] = lambda r: httpx.Response(503, text="busy")
    job = make_job(alice)
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED
    assert job.attempts == 1
    assert job.next_attempt_at is not None and job.next_attempt_at > timezone.now()
    assert "HTTP 503" in job.fail_note
    assert "retry" in job.stage
    tasks.dispatch(job.pk)  # not due yet: nothing happens
    assert len(fake.requests) == 1
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.fail_kind == Job.FailKind.PROVIDER_ERROR
    assert len(fake.requests) == 2


def test_a_banned_prompt_fails_at_once(fake: FakeProvider, alice: Any) -> None:
    fake.routes["/mj/submit/imagine"] = json_answer(load("cometapi/submit_banned.json"))
    job = make_job(alice)
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.fail_kind == Job.FailKind.REJECTED_PROMPT
    assert job.fail_reason == "可能包含敏感词 (bloody)"


def submitted(owner: Any, provider_job_id: str, **fields: Any) -> Job:
    fields.setdefault("deadline_at", timezone.now() + timedelta(minutes=10))
    return make_job(owner, status=Job.Status.SUBMITTED, provider_job_id=provider_job_id, **fields)


def task_answer(base: str, **changes: Any) -> dict[str, Any]:
    return {**load(f"cometapi/{base}"), **changes}


def test_one_tick_fetches_every_in_flight_job_in_one_call(fake: FakeProvider, alice: Any) -> None:
    running = submitted(alice, "1001")
    finished = submitted(alice, "1002")
    failed = submitted(alice, "1003")
    waiting = submitted(alice, "1004")
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [
            task_answer("fetch_in_progress.json", id="1001"),
            task_answer("fetch_success.json", id="1002"),
            task_answer("fetch_timeout_failure.json", id="1003"),
            task_answer("fetch_blank.json", id="1004"),
        ]
    )
    assert sync.tick("simulator") is True
    assert fake.paths() == ["/mj/task/list-by-condition"]
    assert sorted(json.loads(fake.requests[0].content)["ids"]) == ["1001", "1002", "1003", "1004"]
    for job in (running, finished, failed, waiting):
        job.refresh_from_db()
    assert (running.status, running.progress) == (Job.Status.RUNNING, 46)
    assert running.preview_url.endswith("?rand=46")
    assert finished.status == Job.Status.RUNNING and finished.result_url
    assert len(finished.buttons) == 9
    assert queued_tasks("gallery.tasks.ingest") == 1
    assert failed.status == Job.Status.FAILED
    assert failed.fail_kind == Job.FailKind.TIMEOUT  # the provider's own timeout
    assert failed.fail_reason == "任务超时"
    assert waiting.status == Job.Status.SUBMITTED
    # The next tick neither re-fetches the finished job nor enqueues its ingest again.
    sync.tick("simulator")
    assert "1002" not in json.loads(fake.requests[-1].content)["ids"]
    assert queued_tasks("gallery.tasks.ingest") == 1


def test_a_banned_failure_reason_is_a_rejected_prompt(fake: FakeProvider, alice: Any) -> None:
    job = submitted(alice, "1773314942177690")
    fake.routes["/mj/task/list-by-condition"] = json_answer([load("cometapi/fetch_failure.json")])
    sync.tick("simulator")
    job.refresh_from_db()
    assert job.fail_kind == Job.FailKind.REJECTED_PROMPT
    assert job.fail_reason.startswith("[Banned prompt detected]")


def test_a_job_past_its_deadline_times_out(fake: FakeProvider, alice: Any) -> None:
    job = submitted(alice, "1001", deadline_at=timezone.now() - timedelta(seconds=1))
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [task_answer("fetch_in_progress.json", id="1001")]
    )
    sync.tick("simulator")
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.fail_kind == Job.FailKind.TIMEOUT


def test_a_failed_batch_fetch_changes_nothing(fake: FakeProvider, alice: Any) -> None:
    job = submitted(alice, "1001")
    fake.routes["/mj/task/list-by-condition"] = lambda r: httpx.Response(502, text="bad gateway")
    assert sync.tick("simulator") is True
    job.refresh_from_db()
    assert job.status == Job.Status.SUBMITTED


def test_tick_reports_no_work_when_nothing_is_in_flight(fake: FakeProvider, alice: Any) -> None:
    make_finished_job(alice)
    assert sync.tick("simulator") is False
    assert fake.requests == []


def test_status_never_moves_backwards(fake: FakeProvider, alice: Any) -> None:
    job = make_job(alice, status=Job.Status.RUNNING, provider_job_id="1001", progress=80)
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [task_answer("fetch_blank.json", id="1001")]
    )
    sync.tick("simulator")
    job.refresh_from_db()
    assert (job.status, job.progress) == (Job.Status.RUNNING, 80)
    assert job.transition(Job.Status.SUBMITTED) is False


def test_only_one_poll_chain_holds_the_lease(alice: Any) -> None:
    first = sync.claim_lease("simulator", "")
    assert first is not None
    assert sync.claim_lease("simulator", "") is None
    assert sync.claim_lease("simulator", "someone-else") is None
    assert sync.claim_lease("simulator", first) == first  # the chain renews its own lease
    PollLease.objects.filter(provider="simulator").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert sync.claim_lease("simulator", "") not in (None, first)


def test_a_kick_while_the_chain_is_alive_only_reads(alice: Any) -> None:
    """Every progress webhook kicks the poll chain: while one is alive, a kick queues
    nothing and writes nothing; once its lease ran out, a kick starts the next link."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sync.kick("simulator")
    assert queued_tasks("gallery.tasks.poll") == 1
    with CaptureQueriesContext(connection) as queries:
        sync.kick("simulator")
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["SELECT"]
    PollLease.objects.filter(provider="simulator").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    sync.kick("simulator")
    assert queued_tasks("gallery.tasks.poll") == 2


def test_poll_ends_its_chain_when_nothing_is_left(fake: FakeProvider, alice: Any) -> None:
    tasks.poll("simulator")
    lease = PollLease.objects.get(provider="simulator")
    assert lease.token == ""
    assert queued_tasks("gallery.tasks.poll") == 0


def test_poll_enqueues_its_next_link_while_work_remains(fake: FakeProvider, alice: Any) -> None:
    submitted(alice, "1001")
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [task_answer("fetch_in_progress.json", id="1001")]
    )
    tasks.poll("simulator")
    assert queued_tasks("gallery.tasks.poll") == 1
    token = PollLease.objects.get(provider="simulator").token
    assert token
    next_link = next(q for q in OrmQ.objects.all() if q.func() == "gallery.tasks.poll")
    assert next_link.task["args"] == ("simulator", token)


def finished_upstream(owner: Any, **fields: Any) -> Job:
    return make_job(
        owner,
        status=Job.Status.RUNNING,
        provider_job_id="1001",
        progress=100,
        result_url="https://api.cometapi.com/mj/image/1001",
        **fields,
    )


def test_ingest_stores_the_image_and_a_thumbnail_once(
    monkeypatch: pytest.MonkeyPatch, fake: FakeProvider, alice: Any
) -> None:
    calls: list[str] = []

    def download(url: str, **kwargs: Any) -> bytes:
        calls.append(url)
        return png_bytes((1024, 1024))

    monkeypatch.setattr(downloads, "download", download)
    job = finished_upstream(alice)
    tasks.ingest(job.pk)
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert calls == ["https://api.cometapi.com/mj/image/1001"]
    image = Image.objects.get(job=job, index=0)
    assert (image.kind, image.width, image.height) == ("grid", 1024, 1024)
    assert (image.thumb_width, image.thumb_height) == (512, 512)
    assert image.file.read().startswith(b"\x89PNG")
    assert image.thumbnail.read()[8:12] == b"WEBP"


def test_an_upscale_is_stored_as_a_single_image(
    monkeypatch: pytest.MonkeyPatch, fake: FakeProvider, alice: Any
) -> None:
    monkeypatch.setattr(downloads, "download", lambda url, **kw: png_bytes((1024, 1024)))
    parent = make_finished_job(alice)
    job = finished_upstream(alice, parent=parent, root=parent, action=Job.Action.UPSCALE, index=2)
    tasks.ingest(job.pk)
    assert Image.objects.get(job=job).kind == "single"


def test_an_image_that_cannot_be_fetched_fails_the_job(
    monkeypatch: pytest.MonkeyPatch, fake: FakeProvider, alice: Any
) -> None:
    attempts: list[int] = []

    def download(url: str, **kwargs: Any) -> bytes:
        attempts.append(1)
        raise imaging.ImageFetchError("The image is gone (HTTP 404).", permanent=False)

    monkeypatch.setattr(downloads, "download", download)
    job = finished_upstream(alice)
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert len(attempts) == ingesting.INGEST_ATTEMPTS
    assert job.status == Job.Status.FAILED
    assert job.fail_kind == Job.FailKind.IMAGE_UNAVAILABLE
    assert not Image.objects.filter(job=job).exists()


def test_garbage_bytes_fail_the_job_without_retrying(
    monkeypatch: pytest.MonkeyPatch, fake: FakeProvider, alice: Any
) -> None:
    attempts: list[int] = []

    def download(url: str, **kwargs: Any) -> bytes:
        attempts.append(1)
        return b"<html>not an image</html>"

    monkeypatch.setattr(downloads, "download", download)
    job = finished_upstream(alice)
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert attempts == [1]
    assert job.fail_kind == Job.FailKind.IMAGE_UNAVAILABLE


def test_a_late_success_after_a_timeout_is_still_delivered(
    monkeypatch: pytest.MonkeyPatch, fake: FakeProvider, alice: Any
) -> None:
    job = submitted(alice, "1001", deadline_at=timezone.now() - timedelta(seconds=1))
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [task_answer("fetch_in_progress.json", id="1001")]
    )
    sync.tick("simulator")  # the last fetch still shows it running: timed out
    job.refresh_from_db()
    assert (job.status, job.fail_kind) == (Job.Status.FAILED, Job.FailKind.TIMEOUT)
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [task_answer("fetch_success.json", id="1001")]
    )
    assert sync.tick("simulator") is False  # nothing left to poll once the result is in
    assert "1001" in json.loads(fake.requests[-1].content)["ids"]
    monkeypatch.setattr(downloads, "download", lambda url, **kw: png_bytes((256, 256)))
    tasks.ingest(job.pk)
    tasks.renditions(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert (job.fail_kind, job.fail_reason) == ("", "")
    assert Image.objects.filter(job=job).count() == 5  # the grid and its four tiles


def test_a_timed_out_job_the_provider_failed_is_not_polled_again(
    fake: FakeProvider, alice: Any
) -> None:
    job = make_job(alice, status=Job.Status.FAILED, fail_kind=Job.FailKind.TIMEOUT,
                   provider_job_id="1003", finished_at=timezone.now(),
                   deadline_at=timezone.now())  # fmt: skip
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [task_answer("fetch_timeout_failure.json", id="1003")]
    )
    sync.tick("simulator")
    calls = len(fake.requests)
    sync.tick("simulator")
    assert len(fake.requests) == calls  # no more fetches for it
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.deadline_at is None


def test_jobs_beyond_the_provider_capacity_wait_in_submission_order(
    fake: FakeProvider, alice: Any, settings: Any
) -> None:
    settings.MJ_PROVIDER_RUNNING, settings.MJ_PROVIDER_QUEUED = 1, 1
    answers = iter(["2001", "2002", "2003", "2004"])
    fake.routes["/mj/submit/imagine"] = lambda r: httpx.Response(
        200, json={**load("cometapi/submit_success.json"), "result": next(answers)}
    )
    jobs = [make_job(alice, prompt=f"job {i}") for i in range(4)]
    for job in jobs:
        tasks.dispatch(job.pk)
    for job in jobs:
        job.refresh_from_db()
    assert [j.status for j in jobs] == ["submitted", "submitted", "queued", "queued"]
    assert (jobs[2].slot_position, jobs[3].slot_position) == (0, 1)
    assert "next in line" in jobs[2].stage and "1 job is ahead" in jobs[3].stage
    assert len(fake.requests) == 2
    # A slot frees up; the youngest asks first but the oldest waiting job goes first.
    Job.objects.filter(pk=jobs[0].pk).update(status=Job.Status.SUCCEEDED)
    Job.objects.filter(pk__in=[jobs[2].pk, jobs[3].pk]).update(next_attempt_at=None)
    tasks.dispatch(jobs[3].pk)
    tasks.dispatch(jobs[2].pk)
    jobs[2].refresh_from_db()
    jobs[3].refresh_from_db()
    assert (jobs[2].status, jobs[2].slot_position) == ("submitted", None)
    assert jobs[3].status == "queued"


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(200, json=load("cometapi/submit_queue_full.json")),  # code 23
        lambda r: httpx.Response(429, json={"error": {"message": "Too many requests"}}),
    ],
    ids=["queue-full", "http-429"],
)
def test_a_busy_provider_is_asked_again_until_the_modes_deadline(
    fake: FakeProvider, alice: Any, settings: Any, answer: Any
) -> None:
    settings.MJ_DISPATCH_MAX_ATTEMPTS = 2
    fake.routes["/mj/submit/imagine"] = answer
    job = make_job(alice)
    for _ in range(6):  # far beyond MJ_DISPATCH_MAX_ATTEMPTS: the job keeps waiting
        Job.objects.filter(pk=job.pk).update(next_attempt_at=None)
        tasks.dispatch(job.pk)
        job.refresh_from_db()
        assert job.status == Job.Status.QUEUED
        assert job.next_attempt_at - timezone.now() <= timedelta(seconds=31)  # capped backoff
    assert job.attempts == 6
    deadline = settings.MJ_DEADLINES["fast"]
    made = timezone.now() - timedelta(seconds=deadline + 1)
    Job.objects.filter(pk=job.pk).update(next_attempt_at=None, created_at=made)
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert (job.status, job.fail_kind) == (Job.Status.FAILED, Job.FailKind.PROVIDER_ERROR)


def test_a_slot_freed_in_a_tick_sends_the_oldest_waiting_job_at_once(
    fake: FakeProvider, alice: Any, settings: Any
) -> None:
    settings.MJ_PROVIDER_RUNNING, settings.MJ_PROVIDER_QUEUED = 1, 0
    answers = iter(["2001", "2002", "2003"])
    fake.routes["/mj/submit/imagine"] = lambda r: httpx.Response(
        200, json={**load("cometapi/submit_success.json"), "result": next(answers)}
    )
    jobs = [make_job(alice, prompt=f"job {i}") for i in range(3)]
    for job in jobs:
        tasks.dispatch(job.pk)
    OrmQ.objects.all().delete()
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [task_answer("fetch_in_progress.json", id="2001")]
    )
    for _ in range(3):  # no slot is free: nothing is queued for the waiting jobs
        sync.tick("simulator")
    assert queued_tasks("gallery.tasks.dispatch") == 0
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [task_answer("fetch_success.json", id="2001")]
    )
    sync.tick("simulator")  # the provider finished it: its slot is free in this same tick
    sync.tick("simulator")  # while that dispatch waits in the queue, nothing more is sent
    sync.tick("simulator")
    (sent,) = [q for q in OrmQ.objects.all() if q.func() == "gallery.tasks.dispatch"]
    assert sent.task["args"] == (jobs[1].pk,)
    tasks.dispatch(jobs[1].pk)
    for job in jobs:
        job.refresh_from_db()
    assert [j.status for j in jobs[1:]] == ["submitted", "queued"]
    assert jobs[2].slot_position == 0 and "next in line" in jobs[2].stage


def test_one_poll_task_keeps_the_pace_for_several_ticks_then_hands_on(
    fake: FakeProvider, alice: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MJ_POLL_INTERVAL, settings.MJ_HTTP_TIMEOUT = 2.0, 10.0
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 60}
    assert sync.ticks_per_link() == 17  # (60 - 2 * 10 - 5) // 2
    settings.MJ_POLL_TICKS_PER_LINK = 3
    submitted(alice, "1001")
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [task_answer("fetch_in_progress.json", id="1001")]
    )
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    tasks.poll("simulator")
    reads = [r for r in fake.requests if r.url.path.endswith("list-by-condition")]
    assert len(reads) == 3 and len(slept) == 3
    assert all(0 < pause <= 2.0 for pause in slept)
    assert queued_tasks("gallery.tasks.poll") == 1  # then one next link


def test_each_task_goes_to_its_queue(alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Storing results never waits behind the jobs queue: ingests and the reads that hooks
    ask for go to the ingest queue, previews to theirs, the rest to the jobs queue; each
    named, so a task queued by a worker of another queue lands where it belongs."""
    monkeypatch.setattr(Conf, "CLUSTER_NAME", settings.TASK_QUEUES["ingest"])
    job = make_job(alice)
    for name in ("dispatch", "refresh", "collect", "ingest", "preview", "purge_images"):
        getattr(queue, name)(job)
    queue.poll("cometapi", "token")
    keys = {q.func().rsplit(".", 1)[1]: q.key for q in OrmQ.objects.all()}
    jobs, ingest, previews = (settings.TASK_QUEUES[n] for n in ("jobs", "ingest", "previews"))
    assert keys == {
        "dispatch": jobs,
        "refresh": jobs,
        "collect": ingest,
        "ingest": ingest,
        "preview": previews,
        "purge_images": jobs,
        "poll": jobs,
    }


def test_a_submit_that_finds_every_slot_taken_takes_its_place_in_line_without_a_task(
    fake: FakeProvider, alice: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """A burst of submits queues dispatches only for the free slots: the others wait in line,
    and the tick that sees a slot free sends the oldest of them."""
    settings.MJ_PROVIDER_RUNNING, settings.MJ_PROVIDER_QUEUED = 2, 0
    answers = iter(["3001", "3002", "3003"])
    fake.routes["/mj/submit/imagine"] = lambda r: httpx.Response(
        200, json={**load("cometapi/submit_success.json"), "result": next(answers)}
    )
    with django_capture_on_commit_callbacks(execute=True):
        jobs = [services.submit(owner=alice, prompt=f"burst {n}") for n in range(5)]
    dispatches = [q.task["args"] for q in OrmQ.objects.all() if q.func().endswith(".dispatch")]
    assert dispatches == [(jobs[0].pk,), (jobs[1].pk,)]
    for job in jobs:
        job.refresh_from_db()
    assert [job.slot_position for job in jobs] == [None, None, 0, 1, 2]
    assert queued_tasks("gallery.tasks.poll") == 1  # the chain that will send them is awake
    OrmQ.objects.all().delete()
    tasks.dispatch(jobs[0].pk)
    tasks.dispatch(jobs[1].pk)
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [
            task_answer("fetch_success.json", id="3001"),
            task_answer("fetch_in_progress.json", id="3002"),
        ]
    )
    sync.tick("simulator")  # the first one finished: its slot goes to the oldest in line
    (sent,) = [q.task["args"] for q in OrmQ.objects.all() if q.func().endswith(".dispatch")]
    assert sent == (jobs[2].pk,)


def test_the_line_moves_up_in_one_statement_when_a_slot_frees(
    alice: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Every job sent moves each one behind it up a place: one UPDATE for the whole line,
    which leaves a job whose status moved on since the line was read as it is."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from gallery import dispatch

    settings.MJ_PROVIDER_RUNNING, settings.MJ_PROVIDER_QUEUED = 1, 0
    with django_capture_on_commit_callbacks(execute=True):
        jobs = [services.submit(owner=alice, prompt=f"line {n}") for n in range(6)]
    for job in jobs:
        job.refresh_from_db()
    assert [job.slot_position for job in jobs] == [None, 0, 1, 2, 3, 4]
    Job.objects.filter(pk=jobs[0].pk).update(status=Job.Status.FAILED)  # its slot is free
    OrmQ.objects.all().delete()
    with CaptureQueriesContext(connection) as queries:
        assert dispatch.fill_slots(jobs[0].provider, timezone.now()) == 1
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 2  # the oldest's dispatch claimed, the rest's places
    (sent,) = [q.task["args"] for q in OrmQ.objects.all() if q.func().endswith(".dispatch")]
    assert sent == (jobs[1].pk,)
    places = dict(
        Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("pk", "slot_position")
    )
    assert [places[job.pk] for job in jobs[2:]] == [0, 1, 2, 3]
    # A job cancelled after the line was read keeps its row as it is.
    stale = Job.objects.get(pk=jobs[5].pk)
    Job.objects.filter(pk=stale.pk).update(status=Job.Status.CANCELLED)
    fresh = Job.objects.get(pk=jobs[4].pk)
    assert Job.objects.place_in_line({stale.pk: 0, fresh.pk: 1}) == 1
    assert Job.objects.get(pk=stale.pk).slot_position == 3
    assert Job.objects.get(pk=fresh.pk).slot_position == 1


def test_a_spawned_worker_is_warmed_before_its_first_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """django-q2's post_spawn (sent in each new worker process) builds what the first task
    would otherwise pay for: the URL resolver's reverse table and the SSL context."""
    from django.urls import clear_url_caches, get_resolver
    from django_q.signals import post_spawn

    from gallery.providers import base

    base.ssl_context.cache_clear()
    clear_url_caches()  # a fresh resolver, as a new process has
    assert not get_resolver()._populated
    post_spawn.send(sender="django_q", proc_name="Process-1")
    assert base.ssl_context.cache_info().currsize == 1
    assert get_resolver()._populated


def test_each_task_logs_its_cpu_and_wall_time_when_task_logging_is_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """bench/throughput.py reads these lines (MJWEB_TASK_LOG_LEVEL=INFO); at the default
    level nothing is kept or logged."""
    import logging

    from django_q.signals import post_execute_in_worker, pre_execute

    task = {"id": "abc", "func": "gallery.tasks.ingest", "name": "ingest-x"}
    cost = logging.getLogger("gallery.tasks.cost")
    with caplog.at_level(logging.WARNING, logger="gallery.tasks.cost"):
        pre_execute.send(sender="django_q", func=None, task=task)
        assert tasks._began == {}
        post_execute_in_worker.send(sender="django_q", func=None, task=task)
    assert not [r for r in caplog.records if r.name == cost.name]
    with caplog.at_level(logging.INFO, logger="gallery.tasks.cost"):
        pre_execute.send(sender="django_q", func=None, task=task)
        sum(range(2_000_000))  # some CPU
        post_execute_in_worker.send(sender="django_q", func=None, task=task)
    (line,) = [r.getMessage() for r in caplog.records if r.name == cost.name]
    func, name, _, cpu, _, _, wall, _ = line.removeprefix("task ").split()
    assert (func, name) == ("gallery.tasks.ingest", "(ingest-x)")
    assert float(cpu) > 0 and float(wall) > 0
    assert tasks._began == {}
