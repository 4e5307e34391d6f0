"""The simulator's pictures on PiAPI's surface (unified task API and legacy v2): aspect_ratio
and --ar, image links in the prompt, blend, describe, inpaint and custom outpaint, and their
refusals, webhooks and key checks."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageDraw

from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock, HookReceiver
from tests.simulator.test_simulator_pictures import (
    PictureHost,
    halves,
    mean_error,
    redness,
    region_mask,
    solid,
    tiles,
)

DURATION = 10.0
KEY = "piapi-test-key"


@pytest.fixture
def host() -> Iterator[PictureHost]:
    served = PictureHost()
    yield served
    served.close()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[SimulatorServer]:
    with SimulatorServer(duration=DURATION, clock=clock, api_key=KEY) as srv:
        yield srv


@pytest.fixture
def api(server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10, headers={"X-API-Key": KEY}) as c:
        yield c


def post(api: httpx.Client, task_type: str, config: Any = None, **fields: Any) -> httpx.Response:
    body = {"model": "midjourney", "task_type": task_type, "input": fields}
    if config is not None:
        body["config"] = config
    return api.post("/api/v1/task", json=body)


def create(api: httpx.Client, task_type: str, config: Any = None, **fields: Any) -> str:
    answer = post(api, task_type, config, **fields)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["task_id"]


def get(api: httpx.Client, task_id: str) -> dict[str, Any]:
    answer = api.get(f"/api/v1/task/{task_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def ended(api: httpx.Client, clock: FakeClock, task_id: str) -> dict[str, Any]:
    clock.now += DURATION * 3 + 1
    return get(api, task_id)


def done(api: httpx.Client, clock: FakeClock, task_type: str, **fields: Any) -> dict[str, Any]:
    data = ended(api, clock, create(api, task_type, **fields))
    assert data["status"] == "completed", data
    return data


def picture(api: httpx.Client, url: str) -> Image.Image:
    answer = api.get(url)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(answer.content)) as im:
        return im.convert("RGB")


def upscaled(api: httpx.Client, clock: FakeClock, prompt: str, **extra: Any) -> dict[str, Any]:
    grid = done(api, clock, "imagine", prompt=prompt, **extra)
    return done(api, clock, "upscale", origin_task_id=grid["task_id"], index="2")


# -- shapes --------------------------------------------------------------------------------


def test_aspect_ratio_and_ar_shape_the_picture(api: httpx.Client, clock: FakeClock) -> None:
    wide = done(api, clock, "imagine", prompt="a harbor", aspect_ratio="16:9")
    assert picture(api, wide["output"]["image_url"]).size == (1024, 576)
    tall = done(api, clock, "imagine", prompt="a harbor --ar 2:3")
    assert picture(api, tall["output"]["image_url"]).size == (682, 1024)
    up = done(api, clock, "upscale", origin_task_id=wide["task_id"], index="1")
    assert picture(api, up["output"]["image_url"]).size == (1024, 576)
    pan = done(api, clock, "pan", origin_task_id=up["task_id"], direction="right")
    tile = tiles(picture(api, pan["output"]["image_url"]))[0]
    assert tile.width / tile.height == pytest.approx(16 / 9 * 1.5, rel=0.02)


@pytest.mark.parametrize("ratio", ["wide", "0:3", "9:1", 1.5])
def test_a_bad_aspect_ratio_is_refused(api: httpx.Client, ratio: Any) -> None:
    answer = post(api, "imagine", prompt="a harbor", aspect_ratio=ratio)
    assert answer.status_code == 400 and "aspect ratio" in answer.json()["message"]


def test_the_legacy_imagine_takes_aspect_ratio(api: httpx.Client, clock: FakeClock) -> None:
    answer = api.post("/mj/v2/imagine", json={"prompt": "a harbor", "aspect_ratio": "3:2"})
    task_id = answer.json()["task_id"]
    clock.now += DURATION * 3
    result = api.post("/mj/v2/fetch", json={"task_id": task_id}).json()["task_result"]
    assert picture(api, result["image_url"]).size == (1024, 682)


# -- image links in the prompt -------------------------------------------------------------


def test_image_links_at_the_start_of_the_prompt(
    api: httpx.Client, clock: FakeClock, host: PictureHost
) -> None:
    red, blue = host.put("red.png", solid("red")), host.put("blue.png", solid("blue"))
    reddish = done(api, clock, "imagine", prompt=f"{red} {red} a quiet valley")
    bluish = done(api, clock, "imagine", prompt=f"{blue} a quiet valley")
    assert redness(picture(api, reddish["output"]["image_url"])) > 40 + redness(
        picture(api, bluish["output"]["image_url"])
    )
    failed = ended(api, clock, create(api, "imagine", prompt=f"{host.base}/none.png a valley"))
    assert failed["status"] == "failed"
    assert "could not be downloaded: HTTP 404" in failed["error"]["message"]
    big = host.put("big.png", b"\0" * (10 * 1024 * 1024 + 10))
    failed = ended(api, clock, create(api, "imagine", prompt=f"{big} a valley"))
    assert "larger than 10 MB" in failed["error"]["message"]


# -- blend ---------------------------------------------------------------------------------


def test_blend_unified_and_legacy(api: httpx.Client, clock: FakeClock, host: PictureHost) -> None:
    links = [host.put("a.png", solid("red")), host.put("b.png", halves("yellow", "white"))]
    data = done(api, clock, "blend", image_urls=links, dimension="landscape")
    assert data["task_type"] == "blend" and "upscale1" in data["output"]["actions"]
    grid = picture(api, data["output"]["image_url"])
    assert grid.size == (1024, 682)
    other = [host.put("c.png", solid("navy")), host.put("d.png", solid("green"))]
    blended = done(api, clock, "blend", image_urls=other)
    assert picture(api, blended["output"]["image_url"]).size == (1024, 1024)
    assert (
        mean_error(
            grid.resize((256, 256)), picture(api, blended["output"]["image_url"]).resize((256, 256))
        )
        > 40
    )
    answer = api.post("/mj/v2/blend", json={"image_urls": links, "dimension": "portrait"})
    assert answer.json()["status"] == "success"
    clock.now += DURATION * 3
    fetched = api.post("/mj/v2/fetch", json={"task_id": answer.json()["task_id"]}).json()
    assert fetched["status"] == "finished" and fetched["meta"]["task_type"] == "blend"
    assert picture(api, fetched["task_result"]["image_url"]).size == (682, 1024)
    broken = create(api, "blend", image_urls=[links[0], f"{host.base}/x.png"])
    failed = ended(api, clock, broken)
    assert failed["status"] == "failed" and "blend image 2" in failed["error"]["message"]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"image_urls": ["https://a.example/1.png"]}, "2 to 5 images, not 1"),
        ({"image_urls": ["https://a.example/1.png"] * 6}, "2 to 5 images, not 6"),
        ({"image_urls": "https://a.example/1.png"}, "list of 2 to 5"),
        ({"image_urls": ["file:///etc/passwd", "https://a.example/1.png"]}, "http(s)"),
        ({"image_urls": ["https://a.example/1.png"] * 2, "dimension": "wide"}, "dimension"),
    ],
)
def test_blend_refusals(api: httpx.Client, fields: dict[str, Any], words: str) -> None:
    answer = post(api, "blend", **fields)
    assert answer.status_code == 400 and words in answer.json()["message"]
    legacy = api.post("/mj/v2/blend", json=fields).json()
    assert legacy["status"] == "failed" and words in legacy["message"]


# -- describe ------------------------------------------------------------------------------


def test_describe_unified_and_legacy(
    api: httpx.Client, clock: FakeClock, host: PictureHost
) -> None:
    wide = host.put("wide.png", solid("orange", (320, 180)))
    data = done(api, clock, "describe", image_url=wide)
    output = data["output"]
    assert len(output["prompts"]) == 4
    assert all(p.endswith("--ar 16:9") and "orange" in p for p in output["prompts"])
    assert output["description"].startswith("1️⃣ ") and "\n\n4️⃣ " in output["description"]
    assert picture(api, output["image_url"]).size == (320, 180)
    square = host.put("square.png", solid("navy", (200, 200)))
    answer = api.post("/mj/v2/describe", json={"image_url": square})
    clock.now += DURATION * 3
    result = api.post("/mj/v2/fetch", json={"task_id": answer.json()["task_id"]}).json()
    prompts = result["task_result"]["prompts"]
    assert prompts != output["prompts"] and all(p.endswith("--ar 1:1") for p in prompts)
    assert result["task_result"]["description"].count("️⃣") == 4
    failed = ended(api, clock, create(api, "describe", image_url=f"{host.base}/missing.png"))
    assert failed["status"] == "failed" and "HTTP 404" in failed["error"]["message"]
    assert failed["output"]["prompts"] == []


def test_describe_needs_a_link(api: httpx.Client) -> None:
    for fields in ({}, {"image_url": "data:image/png;base64,AAAA"}, {"image_url": 3}):
        answer = post(api, "describe", **fields)
        assert answer.status_code == 400 and "image_url" in answer.json()["message"]


# -- inpaint and custom outpaint ------------------------------------------------------------


def test_upscale_actions_offer_inpaint_and_custom_outpaint(
    api: httpx.Client, clock: FakeClock
) -> None:
    up = upscaled(api, clock, "snowy mountains")
    assert {"inpaint", "outpaint_custom"} <= set(up["output"]["actions"])


@pytest.mark.parametrize("bare", [False, True])
def test_inpaint_repaints_only_the_mask(api: httpx.Client, clock: FakeClock, bare: bool) -> None:
    up = upscaled(api, clock, "snowy mountains at dawn")
    encoded = base64.b64encode(region_mask((64, 64))).decode()
    mask = encoded if bare else f"data:image/png;base64,{encoded}"
    data = done(
        api, clock, "inpaint", origin_task_id=up["task_id"], mask=mask, prompt="a red balloon"
    )
    parent = picture(api, up["output"]["image_url"])
    expected = parent.resize((512, 512), Image.Resampling.LANCZOS)
    third = 512 // 3
    for tile in tiles(picture(api, data["output"]["image_url"])):
        diff = ImageChops.difference(tile, expected)
        ImageDraw.Draw(diff).rectangle((third - 8, third - 8, 2 * third + 8, 2 * third + 8), 0)
        assert diff.getbbox() is None
        inside = (third + 8, third + 8, 2 * third - 8, 2 * third - 8)
        assert mean_error(tile.crop(inside), expected.crop(inside)) > 3


@pytest.mark.parametrize(
    ("mask", "words"),
    [
        (None, "mask is required"),
        ("@@@", "not valid base64"),
        (base64.b64encode(b"not a picture").decode(), "not an image"),
        (base64.b64encode(solid("black")).decode(), "marks nothing"),
    ],
)
def test_inpaint_refusals(
    api: httpx.Client, clock: FakeClock, mask: str | None, words: str
) -> None:
    up = upscaled(api, clock, "snowy mountains")
    fields: dict[str, Any] = {"origin_task_id": up["task_id"], "prompt": "x"}
    if mask is not None:
        fields["mask"] = mask
    answer = post(api, "inpaint", **fields)
    assert answer.status_code == 400 and words in answer.json()["message"]


def test_custom_outpaint_and_the_fixed_ones(api: httpx.Client, clock: FakeClock) -> None:
    up = upscaled(api, clock, "a lake with a boat", aspect_ratio="3:2")
    parent = picture(api, up["output"]["image_url"])
    for fields in (
        {"zoom_ratio": "custom", "prompt": "a lake with a boat --zoom 2"},
        {"zoom_ratio": "2"},
    ):
        data = done(api, clock, "outpaint", origin_task_id=up["task_id"], **fields)
        tile = tiles(picture(api, data["output"]["image_url"]))[0]
        w, h = tile.size
        assert (w, h) == (512, 341)
        middle = tile.crop((w // 4, h // 4, w // 4 + w // 2, h // 4 + h // 2))
        assert mean_error(parent.resize(middle.size), middle) < 10
    one_and_a_half = done(api, clock, "outpaint", origin_task_id=up["task_id"], zoom_ratio="1.5")
    assert one_and_a_half["status"] == "completed"
    for prompt in ("a lake", "a lake --zoom 2.5"):
        refused = post(
            api, "outpaint", origin_task_id=up["task_id"], zoom_ratio="custom", prompt=prompt
        )
        assert refused.status_code == 400
        assert refused.json()["message"] == "zoom must be between 1 and 2"


# -- keys and webhooks ---------------------------------------------------------------------


def test_the_new_task_types_need_the_key(server: SimulatorServer, host: PictureHost) -> None:
    link = host.put("a.png", solid("red"))
    with httpx.Client(base_url=server.base_url, timeout=10) as anonymous:
        body = {"model": "midjourney", "task_type": "describe", "input": {"image_url": link}}
        assert anonymous.post("/api/v1/task", json=body).status_code == 401
        legacy = anonymous.post("/mj/v2/blend", json={"image_urls": [link, link]})
        assert legacy.status_code == 401


def test_a_describe_webhook_carries_the_prompts(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock, host: PictureHost
) -> None:
    receiver = HookReceiver()
    try:
        link = host.put("a.png", solid("teal", (300, 200)))
        config = {"webhook_config": {"endpoint": receiver.url, "secret": "s3"}}
        task_id = create(api, "describe", config, image_url=link)
        clock.now += DURATION * 3
        server.piapi.scan_webhooks()
        (body,) = receiver.wait_for(1)
        assert body["data"]["task_id"] == task_id and body["data"]["status"] == "completed"
        assert len(body["data"]["output"]["prompts"]) == 4
        assert receiver.received[0][0]["x-webhook-secret"] == "s3"
    finally:
        receiver.close()
