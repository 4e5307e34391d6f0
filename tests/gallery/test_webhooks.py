"""Webhooks are hints: authenticated, de-duplicated, and only ever trigger a fetch."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from gallery import downloads, sync, tasks, webhooks
from gallery.models import Job
from tests.conftest import load
from tests.gallery.factories import answer_through, make_job, png_bytes

pytestmark = pytest.mark.django_db


def hook_url(token: str | None = None) -> str:
    return reverse("gallery:hook_cometapi", args=[token or webhooks.path_token()])


def post(client: Client, url: str, body: Any) -> Any:
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(url, data, content_type="application/json")


def collects() -> int:
    """The reads of one job queued by hooks saying it ended: in the ingest queue, which
    stores what they bring in the same task."""
    queued = [q for q in OrmQ.objects.all() if q.func() == "gallery.tasks.collect"]
    assert {q.key for q in queued} <= {settings.TASK_QUEUES["ingest"]}
    return len(queued)


def test_the_hook_url_is_unguessable_and_on_site_url(settings: Any) -> None:
    settings.MJ_WEBHOOKS = True
    settings.SITE_URL = "https://studio.example.com"
    url = webhooks.url("cometapi")
    assert url.startswith("https://studio.example.com/hooks/cometapi/")
    assert len(webhooks.path_token()) >= 32
    settings.MJ_WEBHOOKS = False
    assert webhooks.url("cometapi") == ""


def polls() -> int:
    return sum(1 for q in OrmQ.objects.all() if q.func() == "gallery.tasks.poll")


def test_a_progress_delivery_wakes_the_poll_and_costs_no_read(client: Client, alice: Any) -> None:
    job = make_job(alice, status=Job.Status.RUNNING, provider_job_id="1773314942177684")
    delivery = load("cometapi/fetch_in_progress.json")
    for _ in range(5):  # a burst of progress hooks
        assert post(client, hook_url(), delivery).status_code == 200
    assert collects() == 0
    assert polls() == 1  # one link of the poll chain, not one per hook
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING  # the hook itself changes nothing


def test_an_ending_delivery_costs_one_read_and_its_repeats_none(client: Client, alice: Any) -> None:
    job = make_job(alice, status=Job.Status.RUNNING, provider_job_id="1773314942177684")
    post(client, hook_url(), load("cometapi/fetch_success.json"))
    post(client, hook_url(), load("cometapi/fetch_success.json"))  # duplicated delivery
    assert collects() == 1
    Job.objects.filter(pk=job.pk).update(hinted_at=timezone.now() - timedelta(seconds=2))
    post(client, hook_url(), load("cometapi/fetch_success.json"))
    assert collects() == 2


def test_a_wrong_token_is_a_404_and_changes_nothing(client: Client, alice: Any) -> None:
    make_job(alice, status=Job.Status.RUNNING, provider_job_id="1773314942177684")
    response = post(client, hook_url("not-the-token"), load("cometapi/fetch_success.json"))
    assert response.status_code == 404
    assert collects() == 0


def test_an_unknown_task_is_ignored_quickly(client: Client) -> None:
    response = post(client, hook_url(), {**load("cometapi/fetch_success.json"), "id": "42"})
    assert response.status_code == 200
    assert response.json()["ignored"] == "unknown task"
    assert collects() == 0


@pytest.mark.parametrize("body", ["not json", "[]", '{"status": "SUCCESS"}', '{"id": ""}'])
def test_malformed_deliveries_are_refused(client: Client, body: str) -> None:
    assert post(client, hook_url(), body).status_code == 400
    assert collects() == 0


def test_hooks_take_only_post_and_need_no_csrf_token(alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    make_job(alice, status=Job.Status.RUNNING, provider_job_id="1773314942177684")
    assert client.get(hook_url()).status_code == 405
    assert post(client, hook_url(), load("cometapi/fetch_success.json")).status_code == 200


def reading_success(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """The provider answers every read with the finished task; (paths read, images fetched)."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=load("cometapi/fetch_success.json"))

    answer_through(monkeypatch, handler)
    downloaded: list[str] = []

    def download(url: str, **kwargs: Any) -> bytes:
        downloaded.append(url)
        return png_bytes((64, 64))

    monkeypatch.setattr(downloads, "download", download)
    return seen, downloaded


def ingests_queued() -> list[str]:
    return [q.key for q in OrmQ.objects.all() if q.func() == "gallery.tasks.ingest"]


def test_collect_reads_the_one_job_and_stores_its_result_in_the_same_task(
    monkeypatch: pytest.MonkeyPatch, alice: Any
) -> None:
    seen, downloaded = reading_success(monkeypatch)
    job = make_job(alice, status=Job.Status.RUNNING, provider_job_id="1773314942177684")
    tasks.collect(job.pk)
    assert seen == ["/mj/task/1773314942177684/fetch"]
    job.refresh_from_db()
    # The result is stored by the same task: it does not wait behind a queue.
    assert job.status == Job.Status.SUCCEEDED and len(job.buttons) == 9
    assert job.images.count() == 1 and len(downloaded) == 1  # the tiles come after
    assert ingests_queued() == []
    tasks.collect(job.pk)  # ended: a repeat reads and stores nothing
    assert len(seen) == 1 and len(downloaded) == 1


def test_a_resync_that_finds_the_result_hands_it_to_the_ingest_queue(
    monkeypatch: pytest.MonkeyPatch, alice: Any
) -> None:
    seen, downloaded = reading_success(monkeypatch)
    job = make_job(alice, status=Job.Status.RUNNING, provider_job_id="1773314942177684")
    tasks.refresh(job.pk)
    assert seen == ["/mj/task/1773314942177684/fetch"]
    job.refresh_from_db()
    # Recorded (its slot is free), stored by an ingest of its own, not by the jobs queue.
    assert job.status == Job.Status.RUNNING and job.result_url and job.awaits_ingest
    assert downloaded == []
    assert ingests_queued() == [settings.TASK_QUEUES["ingest"]]
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.images.count() == 1


def test_an_out_of_order_delivery_cannot_move_a_job_back(
    monkeypatch: pytest.MonkeyPatch, alice: Any
) -> None:
    answer_through(
        monkeypatch, lambda r: httpx.Response(200, json=load("cometapi/fetch_blank.json"))
    )
    job = make_job(alice, status=Job.Status.SUCCEEDED, provider_job_id="1773314942177684")
    tasks.refresh(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED


def test_submits_carry_our_hook_urls(settings: Any) -> None:
    from gallery.providers import get_provider

    settings.MJ_WEBHOOKS = True
    settings.SITE_URL = "https://studio.example.com"
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.startswith("/api/v1/"):
            return httpx.Response(200, json=load("piapi/unified_create_success.json"))
        return httpx.Response(200, json=load("cometapi/submit_success.json"))

    transport = httpx.MockTransport(handler)
    settings.MJ_SIMULATOR_PROTOCOL = "cometapi"
    with get_provider("simulator", hooks=webhooks.hooks(), transport=transport) as api:
        api.imagine(prompt="x", mode="fast", state="s")
    assert json.loads(seen[-1].content)["notifyHook"] == webhooks.url("cometapi")
    settings.MJ_SIMULATOR_PROTOCOL = "piapi"
    settings.PIAPI_API = "unified"
    with get_provider("simulator", hooks=webhooks.hooks(), transport=transport) as api:
        api.imagine(prompt="x", mode="fast", state="s")
    config = json.loads(seen[-1].content)["config"]["webhook_config"]
    assert config == {"endpoint": webhooks.url("piapi"), "secret": webhooks.piapi_secret()}


def piapi_url(token: str | None = None) -> str:
    return reverse("gallery:hook_piapi", args=[token or webhooks.path_token()])


def piapi_delivery(task_id: str, status: str = "completed", timestamp: int | None = None) -> str:
    body = load("piapi/webhook_unified.json")
    body["timestamp"] = int(timezone.now().timestamp()) if timestamp is None else timestamp
    body["data"]["task_id"] = task_id
    body["data"]["status"] = status
    return json.dumps(body)


def post_piapi(client: Client, body: str, secret: str | None, token: str | None = None) -> Any:
    headers = {} if secret is None else {"HTTP_X_WEBHOOK_SECRET": secret}
    return client.post(piapi_url(token), body, content_type="application/json", **headers)


@pytest.fixture
def piapi_job(alice: Any, settings: Any) -> Job:
    settings.MJ_PROVIDER = "piapi"
    return make_job(alice, provider="piapi", status=Job.Status.RUNNING,
                    provider_job_id="0f5b1c2e-7d7f-4e6b-9f1e-3c5a9d2b8e11")  # fmt: skip


def test_piapi_valid_delivery_hints_once_and_replays_change_nothing(
    client: Client, piapi_job: Job
) -> None:
    body = piapi_delivery(piapi_job.provider_job_id)
    assert post_piapi(client, body, webhooks.piapi_secret()).status_code == 200
    assert collects() == 1
    replay = post_piapi(client, body, webhooks.piapi_secret())
    assert replay.status_code == 200 and replay.json()["ignored"] == "duplicate delivery"
    assert collects() == 1


def test_piapi_progress_wakes_the_poll_and_an_end_costs_a_read(
    client: Client, piapi_job: Job
) -> None:
    body = piapi_delivery(piapi_job.provider_job_id, status="processing")
    assert post_piapi(client, body, webhooks.piapi_secret()).status_code == 200
    assert (collects(), polls()) == (0, 1)
    body = piapi_delivery(piapi_job.provider_job_id, status="completed")
    assert post_piapi(client, body, webhooks.piapi_secret()).status_code == 200
    assert collects() == 1


@pytest.mark.parametrize("secret", [None, "", "wrong", "WRONG-CASE"])
def test_piapi_needs_the_exact_secret(client: Client, piapi_job: Job, secret: str | None) -> None:
    response = post_piapi(client, piapi_delivery(piapi_job.provider_job_id), secret)
    assert response.status_code == 401
    assert collects() == 0


def test_piapi_wrong_token_is_a_404(client: Client, piapi_job: Job) -> None:
    body = piapi_delivery(piapi_job.provider_job_id)
    assert post_piapi(client, body, webhooks.piapi_secret(), token="nope").status_code == 404
    assert collects() == 0


def test_piapi_stale_and_unknown_deliveries_are_ignored(client: Client, piapi_job: Job) -> None:
    stale = piapi_delivery(piapi_job.provider_job_id, timestamp=1_000_000_000)
    assert post_piapi(client, stale, webhooks.piapi_secret()).json()["ignored"] == "stale delivery"
    unknown = piapi_delivery("11111111-2222-3333-4444-555555555555")
    assert post_piapi(client, unknown, webhooks.piapi_secret()).json()["ignored"] == "unknown task"
    assert collects() == 0


def test_piapi_malformed_delivery_is_refused(client: Client, piapi_job: Job) -> None:
    assert post_piapi(client, "{not json", webhooks.piapi_secret()).status_code == 400
    assert collects() == 0


def test_the_secret_is_compared_in_constant_time() -> None:
    from pathlib import Path

    source = Path(__file__).resolve().parents[2].joinpath("gallery", "hooks.py").read_text()
    assert "compare_digest" in source
    assert "secret ==" not in source and "== secret" not in source


def test_an_ending_delivery_always_fetches(client: Client, alice: Any) -> None:
    make_job(alice, status=Job.Status.RUNNING, provider_job_id="1773314942177684")
    post(client, hook_url(), load("cometapi/fetch_in_progress.json"))
    # Right after a progress hook, the success must not wait for the next poll.
    post(client, hook_url(), load("cometapi/fetch_success.json"))
    assert collects() == 1


def test_a_job_waiting_for_its_remix_prompt_does_not_time_out(
    monkeypatch: pytest.MonkeyPatch, alice: Any
) -> None:
    modal = {**load("cometapi/fetch_blank.json"), "status": "MODAL"}
    answer_through(monkeypatch, lambda r: httpx.Response(200, json=[modal]))
    job = make_job(alice, status=Job.Status.MODAL, provider_job_id="1773314942177684",
                   deadline_at=timezone.now() - timedelta(minutes=1))  # fmt: skip
    sync.tick("simulator")
    job.refresh_from_db()
    assert job.status == Job.Status.MODAL


def test_collect_reads_nothing_when_the_poll_recorded_the_result_first(
    monkeypatch: pytest.MonkeyPatch, alice: Any
) -> None:
    """The hook and the poll both saw the end: the poll's ingest stores it, and the read the
    hook asked for costs no provider call and no second download."""
    seen, downloaded = reading_success(monkeypatch)
    job = make_job(alice, status=Job.Status.RUNNING, provider_job_id="1773314942177684")
    Job.objects.filter(pk=job.pk).update(result_url="https://cdn.example.com/done.png")
    tasks.collect(job.pk)
    assert seen == [] and downloaded == []
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING and job.awaits_ingest


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"id": "1", "progress": NaN}', "NaN is not JSON"),
        (b'{"id": "1", "finishTime": 1e999}', "too large"),
        (b'{"id": "17\\u0000", "status": "SUCCESS"}', "holds a NUL"),
        (b'{"id": "' + b"7" * 500 + b'"}', "too long"),
        (b'{"status": "SUCCESS"}', "it has no id"),
        (b"\xff\xfe not text", "not UTF-8"),
    ],
)
def test_a_hostile_cometapi_hook_body_gets_a_400_that_says_why(
    client: Client, body: bytes, says: str
) -> None:
    answer = client.post(hook_url(), data=body, content_type="application/json")
    assert answer.status_code == 400
    assert says in answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"timestamp": Infinity, "data": {"task_id": "t1", "status": "completed"}}', "not JSON"),
        ('{"timestamp": 1e999, "data": {"task_id": "t1", "status": "completed"}}', "too large"),
        ('{"data": {"task_id": "t\\u0000", "status": "completed"}}', "holds a NUL"),
        ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    ],
)
def test_a_hostile_piapi_delivery_gets_a_400_that_says_why(
    client: Client, body: str, says: str
) -> None:
    answer = post_piapi(client, body, webhooks.piapi_secret())
    assert answer.status_code == 400
    assert says in answer.json()["error"]
