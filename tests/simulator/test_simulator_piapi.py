"""The simulator's PiAPI surface (unified and legacy), live on a free loopback port.

Time is a fake clock the tests advance; only the webhook tests wait (on an Event, a few
seconds at most) for the server's watcher thread and its sender.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from simulator.piapi import Delivery
from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock, HookReceiver

DURATION = 10.0
KEY = "pk-sim"
NOBODY = "00000000-0000-4000-8000-000000000000"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
GRID = [
    "upscale1", "upscale2", "upscale3", "upscale4", "reroll",
    "variation1", "variation2", "variation3", "variation4",
]  # fmt: skip
UPSCALED = [
    "upscale_subtle", "upscale_creative", "low_variation", "high_variation", "inpaint",
    "outpaint_2x", "outpaint_1.5x", "outpaint_custom", "pan_left", "pan_right", "pan_up",
    "pan_down",
]  # fmt: skip


@pytest.fixture
def server(clock: FakeClock) -> Iterator[SimulatorServer]:
    with SimulatorServer(duration=DURATION, clock=clock, api_key=KEY) as srv:
        yield srv


@pytest.fixture
def api(server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10, headers={"X-API-Key": KEY}) as c:
        yield c


def create(
    api: httpx.Client, task_type: str, config: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    body = {
        "model": "midjourney",
        "task_type": task_type,
        "input": fields,
        "config": config or {"service_mode": ""},
    }
    answer = api.post("/api/v1/task", json=body)
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    assert (payload["code"], payload["message"]) == (200, "success")
    return payload["data"]


def get(api: httpx.Client, task_id: str) -> dict[str, Any]:
    answer = api.get(f"/api/v1/task/{task_id}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["code"] == 200
    return answer.json()["data"]


def finish(api: httpx.Client, clock: FakeClock, task_id: str) -> dict[str, Any]:
    clock.now += DURATION * 3 + 1  # long enough even for relax mode
    data = get(api, task_id)
    assert data["status"] == "completed", data
    return data


def imagine(api: httpx.Client, clock: FakeClock, prompt: str = "red fox in snow") -> dict:
    return finish(api, clock, create(api, "imagine", prompt=prompt)["task_id"])


def png(api: httpx.Client, url: str) -> bytes:
    answer = api.get(url)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    return answer.content


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size


# -- unified API -----------------------------------------------------------------------


def test_imagine_progresses_to_completed_with_actions(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    created = create(api, "imagine", prompt="red fox in snow", process_mode="fast")
    task_id = created["task_id"]
    assert UUID.fullmatch(task_id)
    assert (created["model"], created["task_type"], created["status"]) == (
        "midjourney",
        "imagine",
        "pending",
    )
    assert created["input"] == {"prompt": "red fox in snow", "process_mode": "fast"}
    assert created["meta"]["started_at"] == "0001-01-01T00:00:00Z"
    assert created["error"] == {"code": 0, "raw_message": "", "message": "", "detail": None}
    statuses, progresses = [], []
    for _ in range(105):
        clock.now += DURATION / 100
        data = get(api, task_id)
        statuses.append(data["status"])
        if data["status"] == "processing":
            progresses.append(data["output"]["progress"])
            (preview,) = data["output"]["intermediate_image_urls"]
            assert re.fullmatch(r".*/mj/image/\d{16}\?rand=\d+", preview)
            assert data["output"]["actions"] == [] and data["output"]["image_url"] == ""
    order = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
    assert order == ["pending", "processing", "completed"]
    assert progresses == sorted(progresses) and len(set(progresses)) >= 4
    output = data["output"]
    assert output["progress"] == 100 and output["actions"] == GRID
    assert re.fullmatch(re.escape(server.base_url) + r"/mj/image/\d{16}", output["image_url"])
    assert output["intermediate_image_urls"] == []
    meta = data["meta"]
    assert meta["created_at"] <= meta["started_at"] <= meta["ended_at"]
    assert meta["ended_at"].endswith("+00:00")
    assert size_of(png(api, output["image_url"])) == (1024, 1024)


def test_reroll_with_an_edited_prompt_draws_the_new_prompt(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    parent = imagine(api, clock)
    child = create(
        api, "reroll", origin_task_id=parent["task_id"], prompt="red fox in snow at night"
    )
    assert child["task_id"] != parent["task_id"]
    child = finish(api, clock, child["task_id"])
    assert child["input"]["prompt"] == "red fox in snow at night"
    assert child["output"]["actions"] == GRID
    engine_id = child["output"]["image_url"].rsplit("/", 1)[1]
    task = server.engine.get(engine_id)
    assert task is not None and task.prompt == "red fox in snow at night"
    assert {scene.prompt for scene in task.picture.scenes} == {"red fox in snow at night"}
    assert png(api, child["output"]["image_url"]) != png(api, parent["output"]["image_url"])
    # a plain reroll keeps the parent's prompt
    plain = finish(api, clock, create(api, "reroll", origin_task_id=parent["task_id"])["task_id"])
    kept = server.engine.get(plain["output"]["image_url"].rsplit("/", 1)[1])
    assert kept is not None and kept.prompt == "red fox in snow"


def test_upscale_then_the_upscaled_actions(api: httpx.Client, clock: FakeClock) -> None:
    parent = imagine(api, clock)
    up = create(api, "upscale", origin_task_id=parent["task_id"], index="2")
    up = finish(api, clock, up["task_id"])
    assert up["task_type"] == "upscale" and up["output"]["actions"] == UPSCALED
    assert size_of(png(api, up["output"]["image_url"])) == (1024, 1024)
    origin = up["task_id"]
    subtle = finish(
        api, clock, create(api, "upscale", origin_task_id=origin, index="subtle")["task_id"]
    )
    assert subtle["output"]["actions"] == UPSCALED
    for task_type, fields in [
        ("variation", {"index": "low_variation", "prompt": "red fox in snow"}),
        ("variation", {"index": "high_variation"}),
        ("outpaint", {"zoom_ratio": "2"}),
        ("outpaint", {"zoom_ratio": 1.5}),
        ("pan", {"direction": "left"}),
    ]:
        task = create(api, task_type, origin_task_id=origin, **fields)
        assert finish(api, clock, task["task_id"])["output"]["actions"] == GRID, fields
    variation = create(api, "variation", origin_task_id=parent["task_id"], index="3", prompt="x")
    assert finish(api, clock, variation["task_id"])["input"]["prompt"] == "x"


@pytest.mark.parametrize(
    ("task_type", "fields", "message"),
    [
        ("reroll", {"origin_task_id": NOBODY}, "origin task not found"),
        ("upscale", {"index": "9"}, "invalid upscale parameters"),
        ("upscale", {"index": "subtle"}, "upscale_subtle is not available on the origin task"),
        ("outpaint", {"zoom_ratio": "3"}, "invalid outpaint parameters"),
        ("pan", {"direction": "sideways"}, "invalid pan parameters"),
        ("shorten", {}, "unsupported task_type 'shorten'"),
    ],
)  # fmt: skip
def test_unified_refusals(
    api: httpx.Client, clock: FakeClock, task_type: str, fields: dict[str, Any], message: str
) -> None:
    parent = imagine(api, clock)
    body = {
        "model": "midjourney",
        "task_type": task_type,
        "input": {"origin_task_id": parent["task_id"], **fields},
    }
    answer = api.post("/api/v1/task", json=body)
    assert answer.status_code == 400
    assert answer.json() == {"code": 400, "data": {}, "message": message}


def test_unified_validation(api: httpx.Client) -> None:
    running = create(api, "imagine", prompt="ocean")["task_id"]
    early = api.post(
        "/api/v1/task",
        json={"model": "midjourney", "task_type": "reroll", "input": {"origin_task_id": running}},
    )
    assert early.json()["message"] == "origin task is not completed"
    empty = api.post(
        "/api/v1/task", json={"model": "midjourney", "task_type": "imagine", "input": {}}
    )
    assert (empty.status_code, empty.json()["message"]) == (400, "prompt is required")
    assert api.post("/api/v1/task", json={"model": "suno", "input": {}}).status_code == 400
    broken = api.post("/api/v1/task", content=b"{oops")
    assert broken.json() == {"code": 400, "data": {}, "message": "invalid request body"}


def test_a_failure_reports_the_reason_in_both_shapes(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    task_id = create(api, "imagine", prompt="something")["task_id"]
    record = server.piapi.record(task_id)
    assert record is not None
    clock.now += DURATION / 2
    server.engine.fail(record.engine_id, "[Banned prompt detected] something")
    data = get(api, task_id)
    assert data["status"] == "failed"
    assert data["error"]["message"] == "[Banned prompt detected] something"
    assert data["error"]["code"] != 0 and data["output"]["actions"] == []
    legacy = api.post("/mj/v2/fetch", json={"task_id": task_id}).json()
    assert legacy["status"] == "failed"
    assert legacy["task_result"]["error_messages"] == ["[Banned prompt detected] something"]


# -- legacy API ------------------------------------------------------------------------


def test_legacy_imagine_fetch_and_reroll(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    answer = api.post(
        "/mj/v2/imagine",
        json={
            "prompt": "a cute cat",
            "skip_prompt_check": False,
            "process_mode": "relax",
            "aspect_ratio": "1:1",
            "webhook_endpoint": "",
            "webhook_secret": "",
        },
    ).json()
    assert set(answer) == {"task_id", "status", "message"}
    assert (answer["status"], answer["message"]) == ("success", "")
    task_id = answer["task_id"]

    def fetch() -> dict[str, Any]:
        reply = api.post("/mj/v2/fetch", json={"task_id": task_id})
        assert reply.status_code == 200
        return reply.json()

    first = fetch()
    assert first["status"] == "pending" and first["task_id"] == task_id
    assert first["meta"]["task_type"] == "imagine" and first["meta"]["process_mode"] == "relax"
    assert set(first["task_result"]) >= {
        "image_url", "image_urls", "discord_image_url", "temporary_image_urls",
        "task_progress", "intermediate_image_urls", "actions", "error_messages",
    }  # fmt: skip
    clock.now += DURATION * 3 * 0.5  # relax mode takes three times as long
    running = fetch()
    assert running["status"] == "processing"
    assert running["task_result"]["intermediate_image_urls"]
    clock.now += DURATION * 3
    done = fetch()
    assert done["status"] == "finished"
    assert done["task_result"]["task_progress"] == 100
    assert done["task_result"]["actions"] == GRID
    # the seed's reroll body, prompt edited
    reroll = api.post(
        "/mj/v2/reroll",
        json={
            "origin_task_id": task_id,
            "prompt": "a cute cat in a hat",
            "skip_prompt_check": False,
            "webhook_endpoint": "",
            "webhook_secret": "",
        },
    ).json()
    assert reroll["status"] == "success" and UUID.fullmatch(reroll["task_id"])
    clock.now += DURATION * 3 + 1
    child = api.post("/mj/v2/fetch", json={"task_id": reroll["task_id"]}).json()
    assert child["status"] == "finished" and child["meta"]["origin_task_id"] == task_id
    assert child["meta"]["task_param"]["prompt"] == "a cute cat in a hat"
    assert png(api, child["task_result"]["image_url"]) != png(api, done["task_result"]["image_url"])
    up = api.post("/mj/v2/upscale", json={"origin_task_id": reroll["task_id"], "index": "1"})
    assert up.json()["status"] == "success"


def test_legacy_refusals_answer_with_a_failed_status(api: httpx.Client) -> None:
    answer = api.post("/mj/v2/upscale", json={"origin_task_id": "nope", "index": "1"})
    assert answer.status_code == 200
    assert answer.json() == {"task_id": "", "status": "failed", "message": "origin task not found"}
    empty = api.post("/mj/v2/imagine", json={"prompt": " "}).json()
    assert (empty["status"], empty["message"]) == ("failed", "prompt is required")


# -- auth, routes ----------------------------------------------------------------------


def test_the_api_key_is_required(server: SimulatorServer, clock: FakeClock) -> None:
    body = {"model": "midjourney", "task_type": "imagine", "input": {"prompt": "cat"}}
    url = f"{server.base_url}/api/v1/task"
    denied = {"code": 401, "data": {}, "message": "invalid api key"}
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": f"Bearer {KEY}"}):
        answer = httpx.post(url, json=body, headers=headers)
        assert (answer.status_code, answer.json()) == (401, denied)
    fetch = httpx.post(f"{server.base_url}/mj/v2/fetch", json={"task_id": "x"})
    assert fetch.status_code == 401
    accepted = httpx.post(url, json=body, headers={"x-api-key": KEY})  # any header case
    assert accepted.status_code == 200
    clock.now += DURATION + 1
    image_url = httpx.get(
        f"{url}/{accepted.json()['data']['task_id']}", headers={"X-API-KEY": KEY}
    ).json()["data"]["output"]["image_url"]
    assert httpx.get(image_url).status_code == 200  # image links need no key


def test_unknown_tasks_routes_and_methods(api: httpx.Client) -> None:
    missing = {"code": 404, "data": {}, "message": "task not found"}
    unknown = api.get(f"/api/v1/task/{NOBODY}")
    assert (unknown.status_code, unknown.json()) == (404, missing)
    legacy = api.post("/mj/v2/fetch", json={"task_id": "00000000"})
    assert (legacy.status_code, legacy.json()) == (404, missing)
    assert api.post("/mj/v2/shorten", json={}).status_code == 404
    assert api.get("/api/v1/tasks").status_code == 404
    wrong = api.get("/api/v1/task")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    assert api.post("/api/v1/task/abc", json={}).status_code == 405
    assert api.get("/mj/v2/fetch").status_code == 405


def test_a_server_without_a_key_needs_none(clock: FakeClock) -> None:
    with SimulatorServer(duration=DURATION, clock=clock) as srv:
        body = {"model": "midjourney", "task_type": "imagine", "input": {"prompt": "cat"}}
        assert httpx.post(f"{srv.base_url}/api/v1/task", json=body).status_code == 200


# -- webhooks --------------------------------------------------------------------------


def test_unified_webhook_is_sent_once_with_the_secret(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock, receiver: HookReceiver
) -> None:
    config = {"service_mode": "", "webhook_config": {"endpoint": receiver.url, "secret": "s3"}}
    task_id = create(api, "imagine", config=config, prompt="a lighthouse")["task_id"]
    clock.now += DURATION + 1
    receiver.wait_for(1)
    headers, body = receiver.received[0]
    assert headers["x-webhook-secret"] == "s3"
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert set(payload) == {"timestamp", "data"} and isinstance(payload["timestamp"], int)
    assert payload["data"] == get(api, task_id)
    assert payload["data"]["status"] == "completed"
    assert server.piapi.scan_webhooks() == []  # each terminal state goes out once
    assert [d.task_id for d in server.piapi.deliveries] == [task_id]


def test_legacy_webhook_carries_the_fetch_json_and_no_secret_header(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock, receiver: HookReceiver
) -> None:
    answer = api.post(
        "/mj/v2/imagine",
        json={"prompt": "a cat", "webhook_endpoint": receiver.url, "webhook_secret": ""},
    ).json()
    record = server.piapi.record(answer["task_id"])
    assert record is not None
    server.engine.fail(record.engine_id, "[Invalid parameter] --foo")
    receiver.wait_for(1)
    headers, body = receiver.received[0]
    assert "x-webhook-secret" not in headers
    payload = json.loads(body)
    assert payload == api.post("/mj/v2/fetch", json={"task_id": answer["task_id"]}).json()
    assert payload["status"] == "failed"


def test_deliveries_can_be_shaped_for_fault_injection(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    hook = HookReceiver()
    try:
        server.piapi.shape_deliveries = lambda due: [*due, *due]  # every one twice
        config = {"webhook_config": {"endpoint": hook.url, "secret": ""}}
        create(api, "imagine", config=config, prompt="twice")
        clock.now += DURATION + 1
        hook.wait_for(2)
        assert hook.received[0][1] == hook.received[1][1]
        assert all(isinstance(d, Delivery) for d in server.piapi.deliveries)
    finally:
        hook.close()


def test_stop_ends_the_webhook_watcher(clock: FakeClock) -> None:
    srv = SimulatorServer(duration=DURATION, clock=clock).start()
    watcher = srv.piapi._watcher
    assert watcher is not None and watcher.is_alive()
    srv.stop()
    assert not watcher.is_alive() and srv.piapi._watcher is None
