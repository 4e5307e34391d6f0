"""One bad provider answer stalls nothing: it is fitted to our columns, or it skips its one
job, and every other job of the tick moves on (deadlines included)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import DatabaseError
from django.utils import timezone
from django_q.models import OrmQ

from gallery import services, sync, tasks
from gallery.models import Job
from tests.conftest import load
from tests.gallery.factories import FakeProvider, json_answer, make_job

pytestmark = pytest.mark.django_db

LONG_URL = "https://cdn.example.com/" + "a" * 1100 + ".png"


def at_provider(owner: Any, task_id: str, **fields: Any) -> Job:
    fields.setdefault("deadline_at", timezone.now() + timedelta(minutes=10))
    fields.setdefault("status", Job.Status.RUNNING)
    return make_job(owner, provider_job_id=task_id, **fields)


def task(base: str, **changes: Any) -> dict[str, Any]:
    return {**load(f"cometapi/{base}"), **changes}


def queued(func: str) -> int:
    return sum(1 for q in OrmQ.objects.all() if q.func() == f"gallery.tasks.{func}")


def test_hostile_fields_are_fitted_and_every_job_moves(fake: FakeProvider, alice: Any) -> None:
    long_preview = at_provider(alice, "2001", progress=10)
    nul_failure = at_provider(alice, "2002")
    fine = at_provider(alice, "2003")
    nul_prompt = at_provider(alice, "2004")
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [
            task("fetch_in_progress.json", id="2001", imageUrl=LONG_URL, progress="55%"),
            task("fetch_failure.json", id="2002", failReason="banned\x00 word"),
            task("fetch_success.json", id="2003"),
            task(
                "fetch_success.json",
                id="2004",
                properties={"finalPrompt": "fox\x00 at night"},
                buttons=[{"customId": "MJ::JOB::reroll::0::h::SOLO", "label": "x\x00" * 500}],
            ),
        ]
    )
    assert sync.tick("simulator") is True
    for job in (long_preview, nul_failure, fine, nul_prompt):
        job.refresh_from_db()
    assert (long_preview.progress, long_preview.preview_url) == (55, "")
    assert nul_failure.status == Job.Status.FAILED
    assert "\x00" not in nul_failure.fail_reason and "banned" in nul_failure.fail_reason
    assert fine.result_url and queued("ingest") == 2
    assert nul_prompt.final_prompt == "fox at night"
    assert all("\x00" not in b["label"] and len(b["label"]) <= 200 for b in nul_prompt.buttons)
    assert "\x00" not in str(nul_prompt.provider_payload)


def test_a_success_whose_image_url_cannot_be_kept_fails_that_job_and_says_why(
    fake: FakeProvider, alice: Any
) -> None:
    job = services.submit(owner=alice, prompt="a fox")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, provider_job_id="2101")
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [task("fetch_success.json", id="2101", imageUrl=LONG_URL)]
    )
    sync.tick("simulator")
    job.refresh_from_db()
    assert (job.status, job.fail_kind, job.charge) == ("failed", "image_unavailable", "released")
    assert f"{len(LONG_URL)} characters long" in job.fail_note


def test_a_report_that_cannot_be_applied_skips_its_job_and_the_tick_goes_on(
    fake: FakeProvider, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    poisoned = at_provider(alice, "2201", progress=5)
    moving = at_provider(alice, "2202", progress=5)
    late = at_provider(alice, "2203", deadline_at=timezone.now() - timedelta(seconds=1))
    fake.routes["/mj/task/list-by-condition"] = json_answer(
        [task("fetch_in_progress.json", id=t, progress="60%") for t in ("2201", "2202", "2203")]
    )
    apply = sync.apply_snapshot

    def apply_or_break(job: Job, snapshot: Any) -> None:
        if job.pk == poisoned.pk:
            raise DatabaseError("value too long for type character varying(1000)")
        apply(job, snapshot)

    monkeypatch.setattr(sync, "apply_snapshot", apply_or_break)
    for _ in range(3):  # the same poison on every tick changes nothing for the others
        assert sync.tick("simulator") is True
    poisoned.refresh_from_db()
    moving.refresh_from_db()
    late.refresh_from_db()
    assert (poisoned.status, poisoned.progress) == ("running", 5)
    assert moving.progress == 60
    assert (late.status, late.fail_kind) == ("failed", "timeout")


def test_a_submit_answer_with_a_task_id_we_cannot_keep_fails_the_job(
    fake: FakeProvider, alice: Any
) -> None:
    job = services.submit(owner=alice, prompt="a fox")
    fake.routes["/mj/submit/imagine"] = json_answer(
        {**load("cometapi/submit_success.json"), "result": "9" * 100}
    )
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert (job.status, job.fail_kind, job.charge) == ("failed", "provider_error", "released")
    assert job.provider_job_id == ""
    assert "task id we cannot keep" in job.fail_note
