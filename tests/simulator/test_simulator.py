"""The provider simulator: engine state machine, images and the live HTTP surface.

No Django settings or database are needed: time comes from a fake clock that the tests
advance, and the server listens on a free loopback port.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from simulator import console, images
from simulator.engine import Engine, SubmitError, phase
from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock

DURATION = 10.0


@pytest.fixture
def server(clock: FakeClock) -> Iterator[SimulatorServer]:
    with SimulatorServer(duration=DURATION, clock=clock) as srv:
        yield srv


@pytest.fixture
def api(server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        yield c


def imagine(api: httpx.Client, prompt: str = "red fox in snow", prefix: str = "") -> str:
    answer = api.post(f"{prefix}/mj/submit/imagine", json={"prompt": prompt, "state": "s"})
    assert answer.status_code == 200
    assert answer.json()["code"] == 1
    return answer.json()["result"]


def fetch(api: httpx.Client, task_id: str) -> dict[str, Any]:
    answer = api.get(f"/mj/task/{task_id}/fetch")
    assert answer.status_code == 200
    return answer.json()


def finish(api: httpx.Client, clock: FakeClock, task_id: str) -> dict[str, Any]:
    clock.now += DURATION * 3 + 1  # long enough even for relax mode
    task = fetch(api, task_id)
    assert task["status"] == "SUCCESS"
    return task


def press(
    api: httpx.Client, task: dict[str, Any], label_or_emoji: str, **extra: Any
) -> httpx.Response:
    button = next(b for b in task["buttons"] if label_or_emoji in (b["label"], b["emoji"]))
    return api.post(
        "/mj/submit/action", json={"taskId": task["id"], "customId": button["customId"], **extra}
    )


def png(api: httpx.Client, task_id: str) -> bytes:
    answer = api.get(f"/mj/image/{task_id}")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    return answer.content


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size


# -- engine ------------------------------------------------------------------------------


def test_it_walks_through_the_gateway_statuses_to_success(clock: FakeClock) -> None:
    engine = Engine(duration=DURATION, clock=clock, seed=7)
    task = engine.imagine("pig --v 6.1")
    seen: list[tuple[str, int]] = []
    for _ in range(110):
        p = phase(task, clock.now)
        if not seen or seen[-1] != (p.status, p.progress):
            seen.append((p.status, p.progress))
        clock.now += DURATION / 100
    statuses = [status for status, _ in seen]
    assert statuses[:4] == ["", "NOT_START", "SUBMITTED", "IN_PROGRESS"]
    assert statuses[-1] == "SUCCESS"
    running = [progress for status, progress in seen if status == "IN_PROGRESS"]
    assert running == sorted(running) and running[0] == 0 and running[-1] < 100
    assert len(set(running) - {0}) >= 4


def test_it_refuses_actions_with_gateway_codes(clock: FakeClock) -> None:
    engine = Engine(duration=DURATION, clock=clock, seed=1)
    task = engine.imagine("ocean at dusk")
    with pytest.raises(SubmitError) as unfinished:
        engine.action(task.id, f"MJ::JOB::reroll::0::{task.hash}::SOLO")
    assert (unfinished.value.code, unfinished.value.description) == (4, "关联任务状态错误")
    with pytest.raises(SubmitError) as missing:
        engine.action("1234567890123456", "MJ::JOB::upsample::1::x")
    assert missing.value.code == 3
    with pytest.raises(SubmitError) as empty:
        engine.imagine("  ")
    assert (empty.value.code, empty.value.description) == (4, "prompt不能为空")


def test_it_fails_a_task_on_demand(clock: FakeClock) -> None:
    engine = Engine(duration=DURATION, clock=clock, seed=3)
    task = engine.imagine("a quiet lake")
    clock.now += DURATION / 2
    engine.fail(task.id, "[Banned prompt detected] test")
    view = engine.view(task.id, "http://sim")
    assert view is not None
    assert (view["status"], view["progress"], view["failReason"]) == (
        "FAILURE",
        "100%",
        "[Banned prompt detected] test",
    )
    assert view["finishTime"] is not None and view["buttons"] == []
    assert engine.image(task.id) is None


def test_same_prompt_and_seed_give_identical_bytes() -> None:
    assert images.render_grid("red fox in snow", 42) == images.render_grid("red fox in snow", 42)
    assert images.render_grid("red fox in snow", 42) != images.render_grid("red fox in snow", 43)


def test_the_painter_draws_a_new_tasks_picture_ahead_in_another_process() -> None:
    """With paint_ahead (the stand-alone simulator's default), a task's picture is drawn in
    a painter process as soon as the task exists: by the time it is asked for, it is kept,
    the same bytes as drawn here. Stopped, pictures are drawn when asked again."""
    images.paint_ahead(1)
    try:
        task = Engine(duration=DURATION).imagine("a painter's harbour")
        with images._lock:  # handed to the painter (spawning it takes longer than this)
            future = images._pending[task.picture]
        assert images.render(task.picture) == images.draw(task.picture) == future.result()
        with images._lock:  # the painter's result is kept once it settles
            assert images._finals.get(task.picture) == future.result()
            assert task.picture not in images._pending
        images.render_ahead(task.picture)  # kept: not drawn again
        with images._lock:
            assert task.picture not in images._pending
    finally:
        images.stop_painting()
    other = images.picture_for("imagine", "a harbour without a painter", 78)
    images.render_ahead(other)  # no painter: nothing pending, drawn when asked
    with images._lock:
        assert other not in images._pending
    assert images.render(other) == images.draw(other)


def test_a_zoom_out_keeps_the_parent_view_in_the_middle() -> None:
    source = images.picture_for("imagine", "pig", 5).scenes[0]
    with Image.open(io.BytesIO(images.render(images.Picture("single", (source,))))) as im:
        parent = im.convert("RGB").resize((256, 256), Image.Resampling.BOX)
    zoom = images.picture_for("zoom", "pig", 9, source, 2.0)
    with Image.open(io.BytesIO(images.render(zoom))) as im:
        grid = im.convert("RGB")
    # each 512px tile shows the parent's whole view in its central 256px square
    for left, top in ((0, 0), (512, 0), (0, 512), (512, 512)):
        middle = grid.crop((left + 128, top + 128, left + 384, top + 384))
        assert mean_error(parent, middle) < 8
        assert mean_error(parent, grid.crop((left, top, left + 256, top + 256))) > 8


def test_a_pan_left_widens_the_picture_and_keeps_the_parent_on_the_right() -> None:
    source = images.picture_for("imagine", "ocean at dusk", 11).scenes[2]
    with Image.open(io.BytesIO(images.render(images.Picture("single", (source,))))) as im:
        parent = im.convert("RGB").resize((341, 341), Image.Resampling.BOX)
    pan = images.picture_for("pan", "ocean at dusk", 12, source, "left")
    assert images.picture_size(pan) == (1024, 682)  # tiles of 3:2, half again as wide
    with Image.open(io.BytesIO(images.render(pan))) as im:
        tile = im.convert("RGB").crop((0, 0, 512, 341))
    kept, revealed = tile.crop((171, 0, 512, 341)), tile.crop((0, 0, 171, 341))
    assert mean_error(parent, kept) < 8
    assert mean_error(parent.crop((0, 0, 171, 341)), revealed) > 2


def test_ids_stay_unique_within_one_millisecond(clock: FakeClock) -> None:
    engine = Engine(duration=DURATION, clock=clock, wall_clock=lambda: 1730621826.053, seed=5)
    ids = [engine.imagine(f"prompt {i}").id for i in range(300)]
    assert len(set(ids)) == 300
    assert all(re.fullmatch(r"\d{16}", i) for i in ids)
    assert ids[0].startswith("1730621826053")


def mean_error(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


# -- HTTP --------------------------------------------------------------------------------


def test_imagine_progresses_and_ends_with_nine_buttons(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    task_id = imagine(api)
    assert re.fullmatch(r"\d{16}", task_id)
    first = fetch(api, task_id)
    assert (first["status"], first["progress"], first["imageUrl"]) == ("", "0%", "")
    assert first["startTime"] is None and first["finishTime"] is None and first["state"] == "s"
    statuses, progresses = [], []
    for _ in range(105):
        clock.now += DURATION / 100
        task = fetch(api, task_id)
        statuses.append(task["status"])
        if task["status"] == "IN_PROGRESS":
            progresses.append(task["progress"])
            assert re.fullmatch(rf".*/mj/image/{task_id}\?rand=\d+", task["imageUrl"])
            assert task["buttons"] == []
    order = ["", "NOT_START", "SUBMITTED", "IN_PROGRESS", "SUCCESS"]
    assert [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s] == order
    assert len(set(progresses)) >= 5 and "100%" not in progresses
    assert task["progress"] == "100%"
    assert task["imageUrl"] == f"{server.base_url}/mj/image/{task_id}"
    assert task["submitTime"] <= task["startTime"] <= task["finishTime"]
    assert set(task) == {
        "id",
        "action",
        "customId",
        "botType",
        "prompt",
        "promptEn",
        "description",
        "state",
        "submitTime",
        "startTime",
        "finishTime",
        "imageUrl",
        "status",
        "progress",
        "failReason",
        "buttons",
        "maskBase64",
        "properties",
    }
    ids = [b["customId"] for b in task["buttons"]]
    job = ids[0].split("::")[-1]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", job)
    assert ids == [f"MJ::JOB::upsample::{i}::{job}" for i in range(1, 5)] + [
        f"MJ::JOB::reroll::0::{job}::SOLO"
    ] + [f"MJ::JOB::variation::{i}::{job}" for i in range(1, 5)]
    assert [b["label"] for b in task["buttons"]] == [
        "U1",
        "U2",
        "U3",
        "U4",
        "",
        "V1",
        "V2",
        "V3",
        "V4",
    ]
    assert task["buttons"][4]["emoji"] == "🔄"


def test_list_by_condition_returns_known_tasks_in_request_order(api: httpx.Client) -> None:
    a, b = imagine(api, "one"), imagine(api, "two")
    answer = api.post("/mj/task/list-by-condition", json={"ids": [b, "9999999999999999", a]})
    assert [t["id"] for t in answer.json()] == [b, a]
    assert api.post("/mj/task/list-by-condition", json={}).json() == []
    assert api.post("/mj/task/list-by-condition", json={"ids": "x"}).json() == []


def test_the_task_list_returns_every_task_newest_first_with_its_state(api: httpx.Client) -> None:
    a = api.post("/mj/submit/imagine", json={"prompt": "one", "state": "job-a"}).json()["result"]
    b = api.post("/mj/submit/imagine", json={"prompt": "two", "state": "job-b"}).json()["result"]
    listed = api.get("/mj/task/list").json()
    assert [(t["id"], t["state"]) for t in listed] == [(b, "job-b"), (a, "job-a")]
    assert api.post("/mj/task/list").status_code == 405


def test_reroll_makes_a_new_different_grid(api: httpx.Client, clock: FakeClock) -> None:
    parent = finish(api, clock, imagine(api))
    answer = press(api, parent, "🔄", state="r1")
    assert answer.status_code == 200
    assert answer.json()["code"] == 1
    child_id = answer.json()["result"]
    assert child_id != parent["id"] and re.fullmatch(r"\d{16}", child_id)
    child = finish(api, clock, child_id)
    assert (child["action"], child["prompt"], child["state"]) == ("REROLL", parent["prompt"], "r1")
    assert child["buttons"][0]["customId"] != parent["buttons"][0]["customId"]
    assert png(api, child_id) != png(api, parent["id"])


def test_upscale_gives_a_single_larger_image_with_its_buttons(
    api: httpx.Client, clock: FakeClock
) -> None:
    parent = finish(api, clock, imagine(api))
    answer = press(api, parent, "U2").json()
    assert answer["code"] == 1
    up = finish(api, clock, answer["result"])
    assert up["action"] == "UPSCALE"
    job = up["buttons"][0]["customId"].split("::")[4]
    assert [(b["customId"], b["label"], b["emoji"]) for b in up["buttons"]] == [
        (f"MJ::JOB::upsample_v6_2x_subtle::1::{job}::SOLO", "Upscale (Subtle)", ""),
        (f"MJ::JOB::upsample_v6_2x_creative::1::{job}::SOLO", "Upscale (Creative)", ""),
        (f"MJ::JOB::low_variation::1::{job}::SOLO", "Vary (Subtle)", "🪄"),
        (f"MJ::JOB::high_variation::1::{job}::SOLO", "Vary (Strong)", "🪄"),
        (f"MJ::Inpaint::1::{job}::SOLO", "Vary (Region)", "🖌️"),
        (f"MJ::Outpaint::50::1::{job}::SOLO", "Zoom Out 2x", "🔍"),
        (f"MJ::Outpaint::75::1::{job}::SOLO", "Zoom Out 1.5x", "🔍"),
        (f"MJ::CustomZoom::{job}", "Custom Zoom", "🔍"),
        (f"MJ::JOB::pan_left::1::{job}::SOLO", "", "⬅️"),
        (f"MJ::JOB::pan_right::1::{job}::SOLO", "", "➡️"),
        (f"MJ::JOB::pan_up::1::{job}::SOLO", "", "⬆️"),
        (f"MJ::JOB::pan_down::1::{job}::SOLO", "", "⬇️"),
    ]
    assert size_of(png(api, up["id"])) == (1024, 1024)
    # the upscale is tile 2 of the grid, drawn at twice the size
    with Image.open(io.BytesIO(png(api, parent["id"]))) as grid:
        tile = grid.convert("RGB").crop((512, 0, 1024, 512)).resize((64, 64))
    with Image.open(io.BytesIO(png(api, up["id"]))) as single:
        big = single.convert("RGB").resize((64, 64))
    assert mean_error(tile, big) < 8
    again = finish(api, clock, press(api, up, "Upscale (Creative)").json()["result"])
    assert again["action"] == "UPSCALE" and len(again["buttons"]) == 12
    assert size_of(png(api, again["id"])) == (2048, 2048)
    zoom = finish(api, clock, press(api, up, "Zoom Out 2x").json()["result"])
    assert zoom["action"] == "ZOOM" and len(zoom["buttons"]) == 9
    pan = finish(api, clock, press(api, up, "⬅️").json()["result"])
    assert pan["action"] == "PAN" and size_of(png(api, pan["id"])) == (1024, 682)


def test_action_refusals(api: httpx.Client, clock: FakeClock) -> None:
    running = imagine(api)
    refused = api.post(
        "/mj/submit/action", json={"taskId": running, "customId": "MJ::JOB::upsample::1::whatever"}
    ).json()
    assert (refused["code"], refused["description"], refused["result"]) == (
        4,
        "关联任务状态错误",
        None,
    )
    parent = finish(api, clock, running)
    bogus = "MJ::JOB::upsample::9::00000000-0000-4000-8000-000000000000"
    unknown = api.post("/mj/submit/action", json={"taskId": parent["id"], "customId": bogus}).json()
    assert (unknown["code"], unknown["description"]) == (4, f"unknown_action:{bogus}")
    missing = api.post(
        "/mj/submit/action",
        json={"taskId": "1111111111111111", "customId": parent["buttons"][0]["customId"]},
    ).json()
    assert (missing["code"], missing["description"]) == (3, "关联任务不存在或已失效")


def test_submit_validation(api: httpx.Client) -> None:
    empty = api.post("/mj/submit/imagine", json={"prompt": ""})
    assert empty.status_code == 200
    assert empty.json() == {
        "code": 4,
        "description": "prompt不能为空",
        "result": None,
        "properties": {},
    }
    broken = api.post(
        "/mj/submit/imagine", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json() == {"code": 4, "description": "参数错误", "result": None, "properties": {}}


def test_unknown_routes_methods_and_tasks(api: httpx.Client) -> None:
    unknown = api.get("/mj/task/1234567890123456/fetch")
    assert unknown.status_code == 400
    assert unknown.json() == {"description": "task_no_found ", "type": "upstream_error", "code": 4}
    assert api.get("/nowhere").status_code == 404
    assert api.get("/mj/nowhere").json() == {"error": "not_found"}
    assert api.get("/mj/submit/imagine").status_code == 405
    missing = api.get("/mj/image/1234567890123456")
    assert missing.status_code == 404
    assert missing.json() == {"error": "midjourney_task_not_found"}


def test_auth_when_a_key_is_set(clock: FakeClock) -> None:
    with SimulatorServer(duration=DURATION, clock=clock, api_key="sk-secret") as srv:
        url = f"{srv.base_url}/mj/submit/imagine"
        body = {"prompt": "cat"}
        denied = httpx.post(url, json=body)
        assert denied.status_code == 401
        error = denied.json()["error"]
        assert re.fullmatch(r"Invalid token \(request id: \w+\)", error["message"])
        assert (error["type"], error["param"], error["code"]) == (
            "comet_api_error",
            "",
            "invalid_request",
        )
        assert (
            httpx.post(url, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        for headers in (
            {"Authorization": "Bearer sk-secret"},
            {"Authorization": "sk-secret"},
            {"mj-api-secret": "sk-secret"},
        ):
            answer = httpx.post(url, json=body, headers=headers)
            assert answer.status_code == 200 and answer.json()["code"] == 1
        task_id = answer.json()["result"]
        clock.now += DURATION + 1
        assert httpx.get(f"{srv.base_url}/mj/image/{task_id}").status_code == 200  # no key


def test_images_follow_the_task(api: httpx.Client, clock: FakeClock) -> None:
    task_id = imagine(api)
    assert api.get(f"/mj/image/{task_id}").status_code == 404
    clock.now += DURATION * 0.5
    task = fetch(api, task_id)
    assert task["status"] == "IN_PROGRESS"
    preview = api.get(task["imageUrl"])
    assert preview.status_code == 200
    assert preview.headers["cache-control"] == "no-store"
    assert preview.headers["content-type"] in ("image/webp", "image/png")
    assert int(preview.headers["content-length"]) == len(preview.content)
    width, _ = size_of(preview.content)
    clock.now += DURATION
    final = api.get(f"/mj/image/{task_id}")
    assert final.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert size_of(final.content) == (1024, 1024)
    assert width < 1024 and len(preview.content) < len(final.content)


def test_mode_prefixes_scale_the_duration(api: httpx.Client, clock: FakeClock) -> None:
    relax = imagine(api, "slow", prefix="/mj-relax")
    turbo = imagine(api, "quick", prefix="/mj-turbo")
    fast = imagine(api, "normal", prefix="/mj-fast")
    clock.now += DURATION * 0.6
    assert api.get(f"/mj-turbo/mj/task/{turbo}/fetch").json()["status"] == "SUCCESS"
    assert fetch(api, fast)["status"] == "IN_PROGRESS"
    clock.now += DURATION
    assert fetch(api, fast)["status"] == "SUCCESS"
    assert fetch(api, relax)["status"] == "IN_PROGRESS"
    clock.now += DURATION * 2
    assert fetch(api, relax)["status"] == "SUCCESS"


def test_remix_waits_in_modal_until_confirmed(api: httpx.Client, clock: FakeClock) -> None:
    parent = finish(api, clock, imagine(api))
    answer = press(api, parent, "V3", enableRemix=True).json()
    assert answer["code"] == 21 and answer["description"] == "Waiting for window confirm"
    assert answer["properties"] == {"finalPrompt": parent["prompt"], "remix": True}
    child_id = answer["result"]
    clock.now += DURATION * 2
    assert fetch(api, child_id)["status"] == "MODAL"
    confirmed = api.post(
        "/mj/submit/modal", json={"taskId": child_id, "prompt": "red fox in snow at night"}
    )
    assert confirmed.json()["code"] == 1 and confirmed.json()["result"] == child_id
    assert fetch(api, child_id)["status"] == "SUBMITTED"
    child = finish(api, clock, child_id)
    assert child["prompt"] == "red fox in snow at night" and child["action"] == "VARIATION"
    again = api.post("/mj/submit/modal", json={"taskId": child_id}).json()
    assert again["code"] == 4


def test_the_model_pages_responses_form_is_answered_as_the_reroll_it_names(
    api: httpx.Client, clock: FakeClock
) -> None:
    parent = finish(api, clock, imagine(api))
    answer = api.post(
        "/v1/responses", json={"model": "mj-fast-reroll", "input": {"task_id": parent["id"]}}
    )
    assert answer.status_code == 200 and answer.json()["code"] == 1
    child = finish(api, clock, answer.json()["result"])
    assert (child["action"], child["prompt"]) == ("REROLL", parent["prompt"])
    # An upscale has no reroll button: refused as the press would be; an unknown task too.
    up = finish(api, clock, press(api, parent, "U1").json()["result"])
    refused = api.post(
        "/v1/responses", json={"model": "mj_relax_reroll", "input": {"task_id": up["id"]}}
    )
    assert refused.json()["code"] == 4
    missing = api.post("/v1/responses", json={"model": "mj-fast-reroll", "input": {"task_id": "0"}})
    assert missing.json()["code"] == 3
    for bad in (
        {"model": "gpt-4o", "input": {"task_id": parent["id"]}},
        {"model": "mj-fast-reroll"},
    ):
        assert api.post("/v1/responses", json=bad).status_code == 400


def test_the_console_routes_give_the_balance_and_the_task_log(clock: FakeClock) -> None:
    server = SimulatorServer(duration=DURATION, clock=clock, console_token="console-1")
    with server, httpx.Client(base_url=server.base_url, timeout=5) as api:
        parent = finish(api, clock, imagine(api))
        reroll = press(api, parent, "🔄").json()["result"]
        failed = imagine(api, prompt="a storm [sim:fail]")
        clock.now += DURATION * 3 + 1
        assert api.get("/api/user/self").status_code == 401
        wrong = api.get("/api/user/self", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["success"] is False
        auth = {"Authorization": "Bearer console-1"}
        me = api.get("/api/user/self", headers=auth).json()["data"]
        # Two billed at fast's price; the failed one refunded.
        assert me["used_quota"] == 2 * console.PRICES["FAST"]
        assert me["quota"] == server.console_quota - me["used_quota"]
        log = api.get("/api/task/self", params={"p": 1, "page_size": 2}, headers=auth).json()
        assert log["data"]["total"] == 3 and len(log["data"]["items"]) == 2
        one = api.get("/api/task/self", params={"task_id": reroll}, headers=auth).json()
        (row,) = one["data"]["items"]
        assert (row["action"], row["model_name"], row["status"]) == (
            "REROLL",
            "mj-fast-reroll",
            "SUCCESS",
        )
        assert row["quota"] == 28_000 and row["finish_time"] >= row["submit_time"] > 0
        gone = api.get("/api/task/self", params={"task_id": failed}, headers=auth).json()
        assert gone["data"]["items"][0]["status"] == "FAILURE"
        assert gone["data"]["items"][0]["quota"] == 0


def test_with_a_painter_success_waits_for_the_picture_as_a_provider_s_does(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A painter behind its work holds a finished task at its last step; SUCCESS comes, with
    its finishTime, when the picture exists, never before."""
    from collections import OrderedDict
    from concurrent.futures import Future

    engine = Engine(duration=DURATION, clock=clock, seed=11)
    task = engine.imagine("a lighthouse")
    drawing: Future[bytes] = Future()
    monkeypatch.setattr(images, "_painter", object())  # a painter, whose work we hand in
    monkeypatch.setattr(images, "_finals", OrderedDict())  # this test's pictures only
    monkeypatch.setattr(images, "_drawn", {})
    monkeypatch.setitem(images._pending, task.picture, drawing)
    clock.now += DURATION * 1.5
    late = phase(task, clock.now)
    assert late.status == "IN_PROGRESS" and late.progress == max(p for _, p in task.schedule)
    drawn_wall = task.submit_ms / 1000 + DURATION * 1.25  # the painter finished then
    with images._lock:
        images._pending.pop(task.picture)
        images._keep(task.picture, b"png")
        images._drawn[task.picture] = drawn_wall
    done = phase(task, clock.now)
    assert done.status == "SUCCESS"
    assert done.finished_at == pytest.approx(task.submitted_at + DURATION * 1.25)
    # Drawn before its time: SUCCESS at its time, as without a painter.
    images._drawn[task.picture] = task.submit_ms / 1000
    assert phase(task, clock.now).finished_at == pytest.approx(task.origin + task.duration)
    monkeypatch.setattr(images, "_painter", None)
    assert phase(task, clock.now).status == "SUCCESS"
