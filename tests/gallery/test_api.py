"""The JSON API in midjourney-proxy's protocol, driven with a personal token against the
simulator through the task functions: imagine -> reroll -> U2 -> a Remix action, with the
credits, the lineage and the notifyHook deliveries checked, and the answers in the shapes a
midjourney-proxy client reads."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from django.test import Client
from PIL import Image as PILImage

from billing import ledger
from gallery import notify, queue, sync, tasks
from gallery.models import Job
from mjweb import tokens
from mjweb.models import ApiToken
from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock, point_product_at

pytestmark = [pytest.mark.django_db]


class Hooks:
    """A caller's notifyHook endpoint, reached through notify.TRANSPORT."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.answer = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append((dict(request.headers), json.loads(request.content)))
        return httpx.Response(self.answer)

    def of(self, task_id: str) -> list[str]:
        return [body["status"] for _, body in self.received if body["id"] == task_id]


@pytest.fixture
def stack(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SimulatorServer, FakeClock, Hooks]]:
    clock = FakeClock()
    hooks = Hooks()
    monkeypatch.setattr(notify, "TRANSPORT", httpx.MockTransport(hooks))
    # The worker's delivery, run at once after each change (what the change's commit and
    # queue.notify ask the worker to do).
    monkeypatch.setattr(notify, "on_commit", lambda callback: callback())
    monkeypatch.setattr(
        queue, "notify", lambda pk, status, attempt: notify.deliver(pk, status, attempt)
    )
    with SimulatorServer(port=0, duration=6.0, api_key="k", clock=clock) as server:
        point_product_at(server, settings, monkeypatch, api_key="k")
        settings.MJ_WEBHOOKS = False
        settings.SITE_URL = "https://studio.example.com"
        yield server, clock, hooks


@pytest.fixture
def api(alice: Any) -> Client:
    _, plain = tokens.create(alice, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {plain}")


def post(client: Client, path: str, body: Any) -> Any:
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def run(job_code: str, clock: FakeClock) -> Job:
    """What the worker does with a submitted job: dispatch, poll, store."""
    job = Job.objects.get(code=job_code)
    tasks.dispatch(job.pk)
    return finish(job.pk, clock)


def finish(pk: int, clock: FakeClock) -> Job:
    job = Job.objects.get(pk=pk)
    for _ in range(40):
        clock.now += 0.5
        sync.tick(job.provider)
        job.refresh_from_db()
        if job.result_url or job.status in (Job.Status.MODAL, Job.Status.FAILED):
            break
    if job.result_url:
        tasks.ingest(job.pk)
    job.refresh_from_db()
    return job


def test_imagine_reroll_u2_and_a_remix_action_through_the_api(
    stack: tuple[SimulatorServer, FakeClock, Hooks],
    api: Client,
    alice: Any,
) -> None:
    _, clock, hooks = stack
    hook = "https://client.example.org/mj/hook"
    answer = post(
        api,
        "/mj-relax/mj/submit/imagine",
        {"prompt": "a lighthouse at dawn", "state": "batch-7", "notifyHook": hook},
    )
    assert answer["code"] == 1 and answer["description"] == "Submit success"
    grid_id = answer["result"]
    grid = run(grid_id, clock)
    assert grid.status == Job.Status.SUCCEEDED and grid.mode == "relax"
    task = api.get(f"/mj/task/{grid_id}/fetch").json()
    assert task["status"] == "SUCCESS" and task["progress"] == "100%"
    assert task["action"] == "IMAGINE" and task["state"] == "batch-7" and task["mode"] == "RELAX"
    assert task["failReason"] == "" and task["prompt"] == "a lighthouse at dawn"
    assert isinstance(task["submitTime"], int) and task["finishTime"] >= task["submitTime"]
    ids = [button["customId"] for button in task["buttons"]]
    assert f"MJ::JOB::upsample::2::{grid_id}" in ids
    assert f"MJ::JOB::reroll::0::{grid_id}::SOLO" in ids
    assert f"MJ::JOB::variation::1::{grid_id}" in ids and len(ids) == 9
    reroll_button = next(b for b in task["buttons"] if "reroll" in b["customId"])
    assert reroll_button["emoji"] == "🔄" and reroll_button["type"] == 2
    # The picture is ours, behind a signed link.
    assert task["imageUrl"].startswith("https://studio.example.com/api/images/")
    picture = Client().get(task["imageUrl"].removeprefix("https://studio.example.com"))
    assert picture.status_code == 200
    with PILImage.open(io.BytesIO(b"".join(picture.streaming_content))) as decoded:
        assert decoded.size == (1024, 1024)
    assert Client().get("/api/images/forged-token/").status_code == 404

    reroll = post(
        api,
        "/mj/submit/action",
        {"taskId": grid_id, "customId": ids[ids.index(f"MJ::JOB::reroll::0::{grid_id}::SOLO")]},
    )
    assert reroll["code"] == 1
    rerolled = run(reroll["result"], clock)
    u2 = post(
        api,
        "/mj/submit/action",
        {"taskId": grid_id, "customId": f"MJ::JOB::upsample::2::{grid_id}"},
    )
    upscaled = run(u2["result"], clock)
    assert rerolled.status == upscaled.status == Job.Status.SUCCEEDED
    assert rerolled.parent_id == upscaled.parent_id == grid.pk
    assert rerolled.mode == "relax"  # a follow-up keeps its parent's mode
    fetched = api.get(f"/mj/task/{u2['result']}/fetch").json()
    assert fetched["action"] == "UPSCALE" and fetched["properties"]["parentId"] == grid_id

    # Remix: the variation waits for the prompt (MODAL), the modal answer sends it.
    alice.remix_mode = True
    alice.save(update_fields=["remix_mode"])
    body = {"taskId": grid_id, "customId": f"MJ::JOB::variation::1::{grid_id}"}
    remix = post(api, "/mj/submit/action", {**body, "notifyHook": hook})
    # CometAPI parks the task in MODAL once it has it: 1 now, MODAL when fetched.
    assert remix["code"] == 1
    waiting = run(remix["result"], clock)
    assert waiting.status == Job.Status.MODAL
    assert api.get(f"/mj/task/{remix['result']}/fetch").json()["status"] == "MODAL"
    modal = post(
        api, "/mj/submit/modal", {"taskId": remix["result"], "prompt": "a lighthouse at dusk"}
    )
    assert modal["code"] == 1
    tasks.submit_modal(waiting.pk)
    remixed = finish(waiting.pk, clock)
    assert remixed.status == Job.Status.SUCCEEDED, (remixed.status, remixed.fail_note)
    assert remixed.remix_prompt == "a lighthouse at dusk" or "dusk" in remixed.final_prompt

    # Credits: every job held and charged its price, once.
    charged = sum(job.cost for job in Job.objects.filter(owner=alice))
    assert ledger.account_for(alice).balance == 1000 - charged
    assert ledger.account_for(alice).held == 0

    listed = post(api, "/mj/task/list-by-condition", {"ids": [grid_id, u2["result"], "nope"]})
    assert {task["id"] for task in listed} == {grid_id, u2["result"]}

    # The notifyHook heard every change of the jobs that named it, signed.
    assert hooks.of(grid_id) == ["SUBMITTED", "IN_PROGRESS", "SUCCESS"]
    assert hooks.of(reroll["result"]) == []  # it named no hook
    assert hooks.of(remix["result"]) == ["MODAL", "SUBMITTED", "IN_PROGRESS", "SUCCESS"]
    headers, body = hooks.received[0]
    stamp, mac = headers["x-mjweb-signature"].split(",")
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    secret = tokens.notify_secret(alice)
    expected = hmac.new(secret.encode(), stamp[2:].encode() + b"." + raw, hashlib.sha256)
    assert mac == f"v1={expected.hexdigest()}"


def test_refusals_come_in_the_protocols_codes(
    stack: tuple[SimulatorServer, FakeClock, Hooks], api: Client, alice: Any, bob: Any
) -> None:
    _, clock, _ = stack
    assert post(api, "/mj/submit/imagine", {"prompt": "  "})["code"] == 4
    assert (
        post(api, "/mj/submit/imagine", {"prompt": "x", "notifyHook": "http://10.0.0.5/h"})["code"]
        == 4
    )
    assert (
        post(api, "/mj/submit/imagine", {"prompt": "x", "notifyHook": "ftp://a.example/"})["code"]
        == 4
    )
    assert (
        post(
            api, "/mj/submit/action", {"taskId": "nope", "customId": "MJ::JOB::reroll::0::x::SOLO"}
        )["code"]
        == 3
    )
    grid = run(post(api, "/mj/submit/imagine", {"prompt": "a harbour"})["result"], clock)
    assert (
        post(api, "/mj/submit/action", {"taskId": str(grid.code), "customId": "MJ::nonsense"})[
            "code"
        ]
        == 4
    )
    # Someone else's task is unknown to this token.
    _, other = tokens.create(bob, "bob's")
    bobs = Client(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert bobs.get(f"/mj/task/{grid.code}/fetch").status_code == 400
    assert (
        post(
            bobs,
            "/mj/submit/action",
            {"taskId": str(grid.code), "customId": f"MJ::JOB::reroll::0::{grid.code}::SOLO"},
        )["code"]
        == 3
    )
    # Out of credits: code 4, quota_not_enough first, nothing held.
    admin = type(alice).objects.create_superuser("root", "root@example.com", "x")
    ledger.adjust(alice, -ledger.account_for(alice).available, actor=admin, reason="t", key="t")
    broke = post(api, "/mj/submit/imagine", {"prompt": "another harbour"})
    assert broke["code"] == 4 and broke["description"].startswith("quota_not_enough")
    assert ledger.account_for(alice).held == 0
    bad = api.post("/mj/submit/imagine", "{nope", content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_json"
    listed = api.post(
        "/mj/task/list-by-condition", json.dumps({"ids": "x"}), content_type="application/json"
    )
    assert listed.status_code == 400


def test_tokens_are_shown_once_stored_hashed_and_revocable(
    alice: Any, alice_client: Client
) -> None:
    page = alice_client.post("/accounts/tokens/", {"name": "my script", "expires": "30"})
    text = page.content.decode()
    token = ApiToken.objects.get(user=alice)
    start = text.index(ApiToken.PREFIX, text.index('id="new-token"'))
    plain = text[start : text.index("<", start)]
    assert token.digest == hashlib.sha256(plain.encode()).hexdigest() and plain not in token.digest
    assert token.expires_at is not None and token.name == "my script"
    again = alice_client.get("/accounts/tokens/").content.decode()
    assert plain not in again and f"{ApiToken.PREFIX}{token.hint}…" in again
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert client.get("/mj/task/00000000-0000-0000-0000-000000000000/fetch").status_code == 400
    token.refresh_from_db()
    assert token.last_used_at is not None
    alice_client.post(f"/accounts/tokens/{token.pk}/revoke/")
    assert client.get("/mj/task/00000000-0000-0000-0000-000000000000/fetch").status_code == 401
    assert Client().get("/mj/task/x/fetch").status_code == 401
    assert Client(HTTP_AUTHORIZATION="Bearer mjw_forged").get("/mj/task/x/fetch").status_code == 401


def test_the_command_makes_a_working_token_and_expired_ones_stop(alice: Any) -> None:
    out = io.StringIO()
    call_command("create_api_token", "alice", "--name", "nightly", "--days", "1", stdout=out)
    plain = out.getvalue().strip()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert client.get("/mj/task/x/fetch").status_code == 400  # known token, unknown task
    ApiToken.objects.update(expires_at="2000-01-01T00:00:00Z")
    assert client.get("/mj/task/x/fetch").status_code == 401


def test_each_token_has_its_own_rate(alice: Any, settings: Any) -> None:
    settings.MJWEB_RATES = {**settings.MJWEB_RATES, "api": [("mjweb.tokens.rate_key", "2/m")]}
    first = Client(HTTP_AUTHORIZATION=f"Bearer {tokens.create(alice, 'a')[1]}")
    second = Client(HTTP_AUTHORIZATION=f"Bearer {tokens.create(alice, 'b')[1]}")
    codes = [first.get("/mj/task/x/fetch").status_code for _ in range(3)]
    assert codes == [400, 400, 429]
    assert second.get("/mj/task/x/fetch").status_code == 400


def test_a_failing_hook_is_tried_again_later_and_a_private_one_never(
    alice: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    hooks = Hooks()
    hooks.answer = 503
    monkeypatch.setattr(notify, "TRANSPORT", httpx.MockTransport(hooks))
    later: list[tuple[int, str, int]] = []
    monkeypatch.setattr(
        queue, "notify_later", lambda pk, status, attempt, when: later.append((pk, status, attempt))
    )
    from tests.gallery.factories import make_job

    job = make_job(alice, notify_hook="https://client.example.org/h", status=Job.Status.RUNNING)
    notify.deliver(job.pk, "running", 1)
    assert len(hooks.received) == 1 and later == [(job.pk, "running", 2)]
    notify.deliver(job.pk, "running", settings.MJ_NOTIFY_ATTEMPTS)
    assert later == [(job.pk, "running", 2)]  # the last try: given up
    monkeypatch.setattr(notify, "TRANSPORT", None)
    Job.objects.filter(pk=job.pk).update(notify_hook="http://127.0.0.1:8000/inside")
    notify.deliver(job.pk, "running", 1)
    assert later == [(job.pk, "running", 2)]  # refused before any connection: not retried
    assert not notify.acceptable("http://169.254.169.254/latest") and notify.acceptable(
        "https://hooks.example.com/x"
    )


def test_the_openapi_description_lists_every_route(client: Client) -> None:
    schema = client.get("/api/openapi.json").json()
    assert set(schema["paths"]) == {
        "/mj/submit/imagine",
        "/mj/submit/action",
        "/mj/submit/modal",
        "/mj/submit/blend",
        "/mj/submit/describe",
        "/mj/task/{id}/fetch",
        "/mj/task/list-by-condition",
    }


def through(client: Client) -> httpx.MockTransport:
    """An httpx transport into this site (the test client), for a client library."""

    def handler(request: httpx.Request) -> httpx.Response:
        answer = client.generic(
            request.method,
            request.url.raw_path.decode(),
            request.content,
            content_type=request.headers.get("content-type", "application/json"),
            HTTP_AUTHORIZATION=request.headers.get("authorization", ""),
        )
        return httpx.Response(
            answer.status_code,
            content=answer.content,
            headers={"content-type": answer.get("Content-Type", "application/json")},
        )

    return httpx.MockTransport(handler)


def test_a_midjourney_proxy_client_reads_our_answers(
    stack: tuple[SimulatorServer, FakeClock, Hooks], alice: Any, settings: Any
) -> None:
    """Our own CometAPI adapter, written from midjourney-proxy's documents, as the client."""
    from gallery.providers.base import TaskStatus, button_from_dict
    from gallery.providers.cometapi import CometAPI

    _, clock, _ = stack
    _, plain = tokens.create(alice, "a client")
    client = CometAPI(
        name="mjweb",
        base_url="http://testserver",
        api_key=plain,
        mode_prefixes={"fast": "/mj-fast", "relax": "/mj-relax", "turbo": "/mj-turbo"},
        transport=through(Client()),
    )
    with client:
        submitted = client.imagine(prompt="a lighthouse in fog", mode="turbo", state="s1")
        job = Job.objects.get(code=submitted.provider_job_id)
        assert job.mode == "turbo" and job.api_state == "s1"
        waiting = client.fetch(submitted.provider_job_id)
        assert waiting is not None and waiting.status is TaskStatus.PENDING
        run(submitted.provider_job_id, clock)
        done = client.fetch(submitted.provider_job_id)
        assert done is not None and done.status is TaskStatus.SUCCEEDED and done.progress == 100
        assert done.image_url.startswith("https://studio.example.com/api/images/")
        assert {(b.action, b.index) for b in done.buttons if b.index} == {
            (action, n) for action in ("upscale", "variation") for n in (1, 2, 3, 4)
        }
        reroll = next(b for b in done.buttons if b.action == "reroll")
        again = client.action(
            parent_job_id=submitted.provider_job_id,
            button=button_from_dict(reroll.as_dict()),
            mode="turbo",
            state="s2",
            remix=False,
            prompt="",
        )
        child = Job.objects.get(code=again.provider_job_id)
        assert child.parent_id == job.pk and child.action == "reroll"
        # A failure reads as one, with the provider's words.
        failing = client.imagine(prompt="a storm [sim:fail]", mode="fast", state="")
        run(failing.provider_job_id, clock)
        failed = client.fetch(failing.provider_job_id)
        assert failed is not None and failed.status is TaskStatus.FAILED
        assert failed.fail_reason  # the provider's own words, passed on
        both = client.fetch_many([submitted.provider_job_id, failing.provider_job_id])
        assert set(both) == {submitted.provider_job_id, failing.provider_job_id}


def test_hostile_bodies_get_clear_answers_never_a_500(alice: Any) -> None:
    from tests.test_fuzz import POSTS

    _, plain = tokens.create(alice, "fuzz")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plain}", raise_request_exception=False)
    paths = [
        "/mj/submit/imagine",
        "/mj-turbo/mj/submit/imagine",
        "/mj/submit/action",
        "/mj/submit/modal",
        "/mj/task/list-by-condition",
    ]
    broken = []
    for path in paths:
        for label, post in POSTS:
            answer = client.post(path, **post)
            if answer.status_code >= 500:
                broken.append(f"{path} {label}: {answer.status_code}")
        fields = {
            "taskId": ["x"],
            "customId": {"a": 1},
            "prompt": 5,
            "notifyHook": ["h"],
            "ids": [[1], None, {}],
        }
        answer = client.post(path, json.dumps(fields), content_type="application/json")
        if answer.status_code >= 500:
            broken.append(f"{path} odd fields: {answer.status_code}")
    assert client.get("/mj/task/%00/fetch").status_code < 500
    assert not broken, broken


def test_an_action_under_a_speed_prefix_is_sent_in_that_speed(api: Client, alice: Any) -> None:
    from tests.gallery.factories import make_finished_job

    parent = make_finished_job(alice, mode=Job.Mode.RELAX)
    body = {"taskId": str(parent.code), "customId": "MJ::JOB::upsample::1::h"}
    assert post(api, "/mj-fast/mj/submit/action", body)["code"] == 1
    assert (
        post(api, "/mj/submit/action", body | {"customId": "MJ::JOB::upsample::2::h"})["code"] == 1
    )
    kids = dict(Job.objects.filter(parent=parent).values_list("index", "mode"))
    assert kids == {1: "fast", 2: "relax"}
