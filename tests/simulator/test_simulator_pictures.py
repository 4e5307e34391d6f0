"""The simulator's pictures on CometAPI's midjourney-proxy surface: shapes from --ar, the
sizes of upscales and pans, image prompts, Blend, Describe, Vary (Region) and Custom Zoom,
their refusals, and the fault injection and webhooks they share with the other tasks."""

from __future__ import annotations

import base64
import io
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from simulator.faults import Faults
from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock, HookReceiver

DURATION = 10.0


class PictureHost:
    """A tiny web server for image links: path -> (status, body)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, bytes]] = {}
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = host.files.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def put(self, name: str, body: bytes, status: int = 200) -> str:
        self.files[f"/{name}"] = (status, body)
        return f"{self.base}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def host() -> Iterator[PictureHost]:
    served = PictureHost()
    yield served
    served.close()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[SimulatorServer]:
    with SimulatorServer(duration=DURATION, clock=clock) as srv:
        yield srv


@pytest.fixture
def api(server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        yield c


def solid(color: str, size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def halves(left: str, right: str, size: tuple[int, int] = (96, 64)) -> bytes:
    im = Image.new("RGB", size, left)
    ImageDraw.Draw(im).rectangle((size[0] // 2, 0, size[0], size[1]), fill=right)
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def data_url(body: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{base64.b64encode(body).decode()}"


def submit(api: httpx.Client, path: str, **body: Any) -> dict[str, Any]:
    answer = api.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def submitted(api: httpx.Client, path: str, **body: Any) -> str:
    answer = submit(api, path, **body)
    assert answer["code"] == 1, answer
    return answer["result"]


def fetch(api: httpx.Client, task_id: str) -> dict[str, Any]:
    answer = api.get(f"/mj/task/{task_id}/fetch")
    assert answer.status_code == 200
    return answer.json()


def finish(api: httpx.Client, clock: FakeClock, task_id: str) -> dict[str, Any]:
    clock.now += DURATION * 3 + 1
    task = fetch(api, task_id)
    assert task["status"] == "SUCCESS", task
    return task


def press(api: httpx.Client, task: dict[str, Any], label: str, **extra: Any) -> dict[str, Any]:
    button = next(b for b in task["buttons"] if label in (b["label"], b["emoji"]))
    return submit(api, "/mj/submit/action", taskId=task["id"], customId=button["customId"], **extra)


def made(api: httpx.Client, clock: FakeClock, path: str, **body: Any) -> dict[str, Any]:
    return finish(api, clock, submitted(api, path, **body))


def picture(api: httpx.Client, task: dict[str, Any]) -> Image.Image:
    answer = api.get(task["imageUrl"])
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(answer.content)) as im:
        return im.convert("RGB")


def tiles(grid: Image.Image) -> list[Image.Image]:
    w, h = grid.width // 2, grid.height // 2
    return [grid.crop((x * w, y * h, x * w + w, y * h + h)) for y in (0, 1) for x in (0, 1)]


def mean_error(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def redness(im: Image.Image) -> float:
    r, _, b = ImageStat.Stat(im).mean
    return r - b


# -- shapes and sizes ----------------------------------------------------------------------


def test_ar_shapes_the_grid_and_its_tiles(api: httpx.Client, clock: FakeClock) -> None:
    wide = picture(api, made(api, clock, "/mj/submit/imagine", prompt="a harbor --ar 3:2"))
    assert wide.size == (1024, 682)
    assert all(t.size == (512, 341) for t in tiles(wide))
    tall = picture(api, made(api, clock, "/mj/submit/imagine", prompt="a tower --ar 9:16"))
    assert tall.size == (576, 1024)
    square = picture(api, made(api, clock, "/mj/submit/imagine", prompt="a tower"))
    assert square.size == (1024, 1024)
    # the parameter does not change the look: the same prompt without it is the same world
    assert max(wide.size) <= 1024 and max(tall.size) <= 1024


@pytest.mark.parametrize("ar", ["0:1", "3:", "x:2", "9:1", "1:5"])
def test_a_bad_aspect_ratio_is_refused(api: httpx.Client, ar: str) -> None:
    answer = submit(api, "/mj/submit/imagine", prompt=f"a harbor --ar {ar}")
    assert answer["code"] == 4 and "aspect ratio" in answer["description"]


def test_upscales_are_larger_and_pans_widen(api: httpx.Client, clock: FakeClock) -> None:
    grid_task = made(api, clock, "/mj/submit/imagine", prompt="a harbor at dusk --ar 3:2")
    grid = picture(api, grid_task)
    up_task = finish(api, clock, press(api, grid_task, "U2")["result"])
    up = picture(api, up_task)
    assert up.size == (1024, 683)  # twice the 512x341 tile
    assert mean_error(tiles(grid)[1].resize((64, 43)), up.resize((64, 43))) < 8
    subtle = picture(api, finish(api, clock, press(api, up_task, "Upscale (Subtle)")["result"]))
    assert subtle.size == (2048, 1365)
    # a pan left: tiles half again as wide as the parent, the parent on their right
    left = picture(api, finish(api, clock, press(api, up_task, "⬅️")["result"]))
    tile = tiles(left)[0]
    assert tile.width / tile.height == pytest.approx(1.5 * 1.5, rel=0.02)
    kept = tile.crop((tile.width // 3 + 1, 0, tile.width, tile.height))
    assert mean_error(up.resize(kept.size), kept) < 10
    revealed = tile.crop((0, 0, tile.width // 3, tile.height))
    assert mean_error(up.resize(kept.size).crop((0, 0, *revealed.size)), revealed) > 2
    # a pan up: taller, the parent at the bottom
    top = tiles(picture(api, finish(api, clock, press(api, up_task, "⬆️")["result"])))[0]
    assert top.height / top.width == pytest.approx(1.5 / 1.5, rel=0.02)
    kept = top.crop((0, top.height // 3 + 1, top.width, top.height))
    assert mean_error(up.resize(kept.size), kept) < 10
    # zoom out 2x: the same shape, the parent shrunk into the middle
    zoom = tiles(picture(api, finish(api, clock, press(api, up_task, "Zoom Out 2x")["result"])))
    w, h = zoom[0].size
    assert (w, h) == (512, 341)
    middle = zoom[0].crop((w // 4, h // 4, w // 4 + w // 2, h // 4 + h // 2))
    assert mean_error(up.resize(middle.size), middle) < 10


# -- image prompts -------------------------------------------------------------------------


def test_image_prompts_colour_the_picture(api: httpx.Client, clock: FakeClock) -> None:
    prompt = "a quiet valley"
    red = made(
        api, clock, "/mj/submit/imagine", prompt=prompt, base64Array=[data_url(solid("red"))]
    )
    blue = made(
        api, clock, "/mj/submit/imagine", prompt=prompt, base64Array=[data_url(solid("blue"))]
    )
    assert redness(picture(api, red)) > redness(picture(api, blue)) + 40
    # a reroll keeps them
    again = finish(api, clock, press(api, red, "🔄")["result"])
    assert redness(picture(api, again)) > redness(picture(api, blue)) + 40


def test_image_links_at_the_start_of_the_prompt_are_downloaded(
    api: httpx.Client, clock: FakeClock, host: PictureHost
) -> None:
    link = host.put("red.png", solid("red"))
    red = made(api, clock, "/mj/submit/imagine", prompt=f"{link} a quiet valley")
    plain = made(api, clock, "/mj/submit/imagine", prompt="a quiet valley")
    assert redness(picture(api, red)) > redness(picture(api, plain)) + 30
    missing = submitted(api, "/mj/submit/imagine", prompt=f"{host.base}/gone.png a valley")
    clock.now += DURATION * 3
    failed = fetch(api, missing)
    assert failed["status"] == "FAILURE"
    assert "could not be downloaded: HTTP 404" in failed["failReason"]
    text = host.put("notes.png", b"just some text")
    broken = submitted(api, "/mj/submit/imagine", prompt=f"{text} a valley")
    clock.now += DURATION * 3
    assert "is not an image" in fetch(api, broken)["failReason"]


def bomb() -> bytes:
    """A PNG whose header claims 100000 x 100000 pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ([data_url(bomb())], "too many pixels"),
        ([data_url(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)], "base64Array[0] is"),
        (["data:image/png;base64,@@@"], "not valid base64"),
        (["not a data url"], "not a data URL"),
        ([data_url(b"plain text")], "not an image"),
        (["data:text/plain;base64,aGVsbG8="], "not an image"),
        ("data:image/png;base64,aGVsbG8=", "list of data URLs"),
        ([data_url(solid("red"))] * 6, "at most 5"),
    ],
)
def test_a_bad_image_prompt_is_refused_with_code_4(
    api: httpx.Client, given: Any, words: str
) -> None:
    answer = submit(api, "/mj/submit/imagine", prompt="a valley", base64Array=given)
    assert answer["code"] == 4 and words in answer["description"], answer


# -- blend ---------------------------------------------------------------------------------


def test_blend_mixes_its_inputs_into_a_grid(api: httpx.Client, clock: FakeClock) -> None:
    pair = [data_url(solid("red")), data_url(solid("yellow"))]
    task = made(api, clock, "/mj/submit/blend", base64Array=pair, state="s1")
    assert task["action"] == "BLEND" and task["state"] == "s1"
    assert [b["label"] or b["emoji"] for b in task["buttons"]] == [
        *("U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4")
    ]
    grid = picture(api, task)
    assert grid.size == (1024, 1024)
    parts = tiles(grid)
    # every tile mixes red and yellow, each in its own shares
    assert all(ImageStat.Stat(t).mean[0] > 150 and ImageStat.Stat(t).mean[2] < 90 for t in parts)
    assert all(mean_error(a, b) > 1 for i, a in enumerate(parts) for b in parts[i + 1 :])
    other = made(
        api,
        clock,
        "/mj/submit/blend",
        base64Array=[data_url(solid("blue")), data_url(solid("green"))],
    )
    assert mean_error(grid, picture(api, other)) > 40
    # its tiles upscale like an imagine's
    up = finish(api, clock, press(api, task, "U1")["result"])
    assert picture(api, up).size == (1024, 1024) and len(up["buttons"]) == 12


@pytest.mark.parametrize(
    ("dimensions", "size"), [("LANDSCAPE", (1024, 682)), ("PORTRAIT", (682, 1024))]
)
def test_blend_dimensions_shape_the_grid(
    api: httpx.Client, clock: FakeClock, dimensions: str, size: tuple[int, int]
) -> None:
    pair = [data_url(solid("red")), data_url(halves("white", "black"))]
    task = made(api, clock, "/mj/submit/blend", base64Array=pair, dimensions=dimensions)
    assert picture(api, task).size == size


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"base64Array": [data_url(solid("red"))]}, "2 to 5 images, not 1"),
        ({"base64Array": [data_url(solid("red"))] * 6}, "2 to 5 images, not 6"),
        ({"base64Array": "x"}, "list of 2 to 5"),
        ({}, "list of 2 to 5"),
        ({"base64Array": [data_url(solid("red")), "data:image/png;base64,AAAA"]}, "base64Array[1]"),
        ({"base64Array": [data_url(solid("red"))] * 2, "dimensions": "WIDE"}, "dimensions"),
    ],
)
def test_blend_refusals(api: httpx.Client, body: dict[str, Any], words: str) -> None:
    answer = submit(api, "/mj/submit/blend", **body)
    assert answer["code"] == 4 and words in answer["description"], answer


# -- describe ------------------------------------------------------------------------------


def test_describe_reads_shape_and_colours(api: httpx.Client, clock: FakeClock) -> None:
    wide = made(api, clock, "/mj/submit/describe", base64=data_url(solid("red", (300, 200))))
    assert wide["action"] == "DESCRIBE"
    text = wide["promptEn"]
    assert text == wide["properties"]["finalPrompt"]
    assert text.startswith("1️⃣ ") and "\n\n2️⃣ " in text and "\n\n3️⃣ " in text
    assert "\n\n4️⃣ " in text
    prompts = text.split("\n\n")
    assert len(prompts) == 4 and all(p.endswith("--ar 3:2") for p in prompts)
    assert "red" in text
    assert [b["customId"] for b in wide["buttons"]] == [
        *(f"MJ::Job::PicReader::{i}" for i in range(1, 5)),
        "MJ::Picread::Retry",
    ]
    assert picture(api, wide).size == (300, 200)  # the described image itself
    tall = made(api, clock, "/mj/submit/describe", base64=data_url(solid("navy", (200, 400))))
    assert tall["promptEn"] != text and "--ar 1:2" in tall["promptEn"]
    assert "navy" in tall["promptEn"] and "red" not in tall["promptEn"]


def test_describe_prompts_wait_for_success(api: httpx.Client, clock: FakeClock) -> None:
    task_id = submitted(api, "/mj/submit/describe", base64=data_url(solid("red")))
    clock.now += DURATION / 2
    running = fetch(api, task_id)
    assert running["status"] == "IN_PROGRESS" and running["promptEn"] == ""


def test_describe_a_link(api: httpx.Client, clock: FakeClock, host: PictureHost) -> None:
    link = host.put("pic.png", halves("white", "orange", (160, 90)))
    task = made(api, clock, "/mj/submit/describe", link=link)
    assert "--ar 16:9" in task["promptEn"] and "orange" in task["promptEn"]
    failed_id = submitted(api, "/mj/submit/describe", link=f"{host.base}/nothing.png")
    clock.now += DURATION * 3
    failed = fetch(api, failed_id)
    assert failed["status"] == "FAILURE" and "HTTP 404" in failed["failReason"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "base64 or link is required"),
        ({"base64": "data:image/png;base64,%%%"}, "not valid base64"),
        ({"base64": data_url(b"GIF89a broken")}, "image"),
        ({"base64": data_url(bomb())}, "too many pixels"),
        ({"link": "file:///etc/passwd"}, "http(s)"),
    ],
)
def test_describe_refusals(api: httpx.Client, body: dict[str, Any], words: str) -> None:
    answer = submit(api, "/mj/submit/describe", **body)
    assert answer["code"] == 4 and words in answer["description"], answer


# -- Vary (Region) and Custom Zoom ---------------------------------------------------------


def upscaled(api: httpx.Client, clock: FakeClock, prompt: str) -> dict[str, Any]:
    grid = made(api, clock, "/mj/submit/imagine", prompt=prompt)
    return finish(api, clock, press(api, grid, "U3")["result"])


def region_mask(size: tuple[int, int] = (200, 200)) -> bytes:
    """White (repaint) in the middle third, black elsewhere."""
    im = Image.new("L", size, 0)
    w, h = size
    ImageDraw.Draw(im).rectangle((w // 3, h // 3, 2 * w // 3, 2 * h // 3), fill=255)
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def test_vary_region_repaints_only_the_mask(api: httpx.Client, clock: FakeClock) -> None:
    up = upscaled(api, clock, "snowy mountains at dawn")
    assert any(b["customId"].startswith("MJ::Inpaint::1::") for b in up["buttons"])
    answer = press(api, up, "Vary (Region)")
    assert answer["code"] == 21  # always a modal, Remix or not
    task_id = answer["result"]
    assert fetch(api, task_id)["status"] == "MODAL"
    missing = submit(api, "/mj/submit/modal", taskId=task_id, prompt="a red balloon")
    assert missing["code"] == 4 and "maskBase64" in missing["description"]
    broken = submit(api, "/mj/submit/modal", taskId=task_id, maskBase64="data:image/png;base64,AA")
    assert broken["code"] == 4
    black = data_url(solid("black"))
    assert submit(api, "/mj/submit/modal", taskId=task_id, maskBase64=black)["code"] == 4
    assert fetch(api, task_id)["status"] == "MODAL"  # still waiting for a usable mask
    mask = data_url(region_mask())
    confirmed = submit(
        api, "/mj/submit/modal", taskId=task_id, prompt="a red balloon", maskBase64=mask
    )
    assert confirmed["code"] == 1
    done = finish(api, clock, task_id)
    assert done["action"] == "INPAINT" and len(done["buttons"]) == 9
    parent = picture(api, up)
    grid = picture(api, done)
    assert grid.size == (1024, 1024)
    expected = parent.resize((512, 512), Image.Resampling.LANCZOS)
    inside = (512 // 3 + 4, 512 // 3 + 4, 2 * 512 // 3 - 4, 2 * 512 // 3 - 4)
    for tile in tiles(grid):
        diff = ImageChops.difference(tile, expected)
        outside = diff.copy()
        outside.paste((0, 0, 0), (512 // 3 - 2, 512 // 3 - 2, 2 * 512 // 3 + 3, 2 * 512 // 3 + 3))
        assert outside.getbbox() is None  # every kept pixel is the parent's, exactly
        assert mean_error(tile.crop(inside), expected.crop(inside)) > 3
    parts = [t.crop(inside) for t in tiles(grid)]
    assert all(mean_error(a, b) > 1 for i, a in enumerate(parts) for b in parts[i + 1 :])
    # the upscale of a tile keeps the parent at its own size, pixel for pixel
    single = picture(api, finish(api, clock, press(api, done, "U2")["result"]))
    kept = ImageChops.difference(single, parent)
    kept.paste((0, 0, 0), (1024 // 3 - 3, 1024 // 3 - 3, 2 * 1024 // 3 + 4, 2 * 1024 // 3 + 4))
    assert single.size == parent.size and kept.getbbox() is None


def test_custom_zoom_takes_its_factor_from_the_prompt(api: httpx.Client, clock: FakeClock) -> None:
    up = upscaled(api, clock, "a lake with a boat --ar 3:2")
    button = next(b for b in up["buttons"] if b["customId"].startswith("MJ::CustomZoom::"))
    assert (button["label"], button["emoji"]) == ("Custom Zoom", "🔍")
    answer = press(api, up, "Custom Zoom")
    assert answer["code"] == 21
    task_id = answer["result"]
    assert fetch(api, task_id)["status"] == "MODAL"
    prompt = "a lake with a boat --ar 3:2"
    for edited in ("", " --zoom 3", " --zoom 0.5", " --zoom x"):
        refused = submit(api, "/mj/submit/modal", taskId=task_id, prompt=prompt + edited)
        assert refused == {**refused, "code": 4, "description": "zoom must be between 1 and 2"}
    zoomed = submit(api, "/mj/submit/modal", taskId=task_id, prompt=prompt + " --zoom 2")
    assert zoomed["code"] == 1
    done = finish(api, clock, task_id)
    assert done["action"] == "CUSTOM_ZOOM" and done["prompt"] == prompt + " --zoom 2"
    tile = tiles(picture(api, done))[0]
    assert tile.size == (512, 341)
    w, h = tile.size
    middle = tile.crop((w // 4, h // 4, w // 4 + w // 2, h // 4 + h // 2))
    assert mean_error(picture(api, up).resize(middle.size), middle) < 10


def test_a_remix_modal_ignores_no_mask(api: httpx.Client, clock: FakeClock) -> None:
    grid = made(api, clock, "/mj/submit/imagine", prompt="a harbor")
    answer = press(api, grid, "🔄", enableRemix=True)
    assert answer["code"] == 21
    assert submit(api, "/mj/submit/modal", taskId=answer["result"], prompt="a harbor")["code"] == 1


# -- faults, auth and webhooks -------------------------------------------------------------


def test_new_routes_need_the_key(clock: FakeClock) -> None:
    with (
        SimulatorServer(duration=DURATION, clock=clock, api_key="sk-secret") as srv,
        httpx.Client(base_url=srv.base_url, timeout=10) as c,
    ):
        pair = [data_url(solid("red"))] * 2
        for path, body in (
            ("/mj/submit/blend", {"base64Array": pair}),
            ("/mj/submit/describe", {"base64": pair[0]}),
        ):
            assert c.post(path, json=body).status_code == 401
            ok = c.post(path, json=body, headers={"Authorization": "Bearer sk-secret"})
            assert ok.status_code == 200 and ok.json()["code"] == 1


def test_injected_errors_and_queue_limits_reach_the_new_routes(
    server: SimulatorServer, api: httpx.Client
) -> None:
    pair = [data_url(solid("red"))] * 2
    server.faults = Faults(error_rate=1.0)
    assert api.post("/mj/submit/blend", json={"base64Array": pair}).status_code >= 429
    server.faults = Faults(queue_limit=1)
    assert submit(api, "/mj/submit/describe", base64=pair[0])["code"] == 1
    full = submit(api, "/mj/submit/blend", base64Array=pair)
    assert full["code"] in (23, 9)


def test_notify_hook_carries_describe_and_blend(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    receiver = HookReceiver()
    try:
        pair = [data_url(solid("red")), data_url(solid("blue"))]
        described = submitted(
            api, "/mj/submit/describe", base64=pair[0], notifyHook=receiver.url, state="d"
        )
        blended = submitted(api, "/mj/submit/blend", base64Array=pair, notifyHook=receiver.url)
        clock.now += DURATION * 3
        server.notify.scan()
        bodies = {b["id"]: b for b in receiver.wait_for(2)}
        assert bodies[described]["status"] == "SUCCESS" and bodies[described]["state"] == "d"
        assert bodies[described]["promptEn"].startswith("1️⃣ ")
        assert bodies[blended]["action"] == "BLEND" and bodies[blended]["status"] == "SUCCESS"
    finally:
        receiver.close()
