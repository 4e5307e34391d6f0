"""Deterministic landscape pictures for the provider simulator.

Every picture is a view through a camera onto an endless procedural world (sky, sun or
moon, ridges, water) defined in world coordinates. That is what keeps the transforms
honest: a zoom out widens the camera over the same world, a pan moves it, and a
variation adds a seeded perturbation to the world itself. Only Pillow is used, and the
same inputs always give byte-identical PNGs (no metadata, no unseeded randomness).

This module is the public API and the composition of pictures (grid, upscale, variation,
zoom, pan, previews); the world model is in simulator.scene, the drawing in
simulator.painting.
"""

from __future__ import annotations

import functools
import io
import multiprocessing
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace

from PIL import Image, ImageFilter, features

from simulator.painting import _draw, _png
from simulator.scene import Camera as Camera
from simulator.scene import Color as Color
from simulator.scene import Perturb, Picture, Scene, _digest
from simulator.scene import Rect as Rect

TILE = 512
SIZE = 1024
PREVIEW_WIDTH = 256

_PREVIEW_FORMAT = "WEBP" if features.check("webp") else "PNG"
PREVIEW_CONTENT_TYPE = "image/webp" if _PREVIEW_FORMAT == "WEBP" else "image/png"

Arg = float | int | str | None  # an op's knob: variation strength, zoom factor, pan direction


# -- public API -------------------------------------------------------------------------


def derive(seed: int, *parts: object) -> int:
    """A child seed: the same parent seed and parts always give the same child."""
    return _digest(seed, *parts) & 0x7FFFFFFF


def picture_for(
    op: str, prompt: str, seed: int, source: Scene | None = None, arg: Arg = None
) -> Picture:
    """What a task draws. `source` is the parent's tile or upscale; `arg` the op's knob."""
    if op == "imagine":
        return Picture("grid", tuple(Scene(prompt, derive(seed, "tile", i)) for i in range(4)))
    if source is None:
        raise ValueError(f"{op} needs a source scene")
    if op == "upscale":
        return Picture("single", (source,), detail=1)
    if op in ("upscale_subtle", "upscale_creative"):
        if op == "upscale_creative":
            source = replace(source, perturbs=(*source.perturbs, Perturb(seed, 0.08)))
        return Picture("single", (source,), detail=2)
    if op == "variation":  # V1-V4 (0.3), Vary (Subtle) 0.12, Vary (Strong) 0.45
        strength = float(arg) if arg is not None else 0.3
        tiles = tuple(Perturb(derive(seed, "var", i), strength) for i in range(4))
        return Picture(
            "grid", tuple(replace(source, perturbs=(*source.perturbs, p)) for p in tiles)
        )
    cam = source.camera
    if op == "zoom":
        factor = float(arg) if arg is not None else 2.0
        new_cam = replace(cam, width=cam.width * factor)
    elif op == "pan":
        dx, dy = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[str(arg)]
        new_cam = replace(cam, cx=cam.cx + dx * cam.width / 2, cy=cam.cy + dy * cam.width / 2)
    else:
        raise ValueError(f"unknown op {op!r}")
    # the parent's view stays exactly as it was; each tile invents different surroundings
    tiles = tuple(Perturb(derive(seed, op, i), 0.9, keep=cam.rect()) for i in range(4))
    return Picture(
        "grid",
        tuple(replace(source, camera=new_cam, perturbs=(*source.perturbs, p)) for p in tiles),
    )


def draw(picture: Picture) -> bytes:
    """The final PNG, drawn now."""
    if picture.kind == "single":
        return _png(_draw(picture.scenes[0], SIZE, picture.detail))
    grid = Image.new("RGB", (SIZE, SIZE))
    for i, scene in enumerate(picture.scenes[:4]):
        grid.paste(_draw(scene, TILE, picture.detail), ((i % 2) * TILE, (i // 2) * TILE))
    return _png(grid)


# The 256 most recent finals are kept, as every poll may ask again; with paint_ahead() each
# is drawn in another process as soon as its task exists.
_KEEP = 256
_finals: OrderedDict[Picture, bytes] = OrderedDict()
_pending: dict[Picture, Future[bytes]] = {}
_lock = threading.Lock()
_painter: ProcessPoolExecutor | None = None


def render(picture: Picture) -> bytes:
    """The final PNG: kept, being drawn ahead (then waited for), or drawn now."""
    with _lock:
        body = _finals.get(picture)
        if body is not None:
            _finals.move_to_end(picture)
            return body
        future = _pending.get(picture)
    body: bytes | None = None
    if future is not None:
        try:
            body = future.result()
        except Exception:  # the painter died or was stopped: draw it here
            body = None
    if body is None:
        body = draw(picture)
    with _lock:
        _pending.pop(picture, None)
        _keep(picture, body)
    return body


def _keep(picture: Picture, body: bytes) -> None:
    _finals[picture] = body
    _finals.move_to_end(picture)
    while len(_finals) > _KEEP:
        _finals.popitem(last=False)


def _lower_priority() -> None:
    # The painter stands for the provider's own machines: on a machine it shares with the
    # studio it takes the CPU the studio leaves.
    os.nice(10)


def paint_ahead(processes: int = 1) -> None:
    """From now on, draw each new task's picture in `processes` other processes as soon as
    the task exists (render_ahead), as a provider has it ready when it reports SUCCESS: the
    server's threads only hand out bytes, and no drawing holds their interpreter lock."""
    global _painter
    if _painter is None and processes > 0:
        _painter = ProcessPoolExecutor(
            processes, multiprocessing.get_context("spawn"), initializer=_lower_priority
        )


def stop_painting() -> None:
    global _painter
    painter, _painter = _painter, None
    if painter is not None:
        painter.shutdown(wait=False, cancel_futures=True)


def render_ahead(picture: Picture) -> None:
    """Start drawing `picture` in the painter, if there is one and it is not drawn yet."""
    with _lock:
        painter = _painter
        if painter is None or picture in _finals or picture in _pending:
            return
        future = _pending[picture] = painter.submit(draw, picture)

    def settled(done: Future[bytes]) -> None:
        with _lock:
            _pending.pop(picture, None)
            if not done.cancelled() and done.exception() is None:
                _keep(picture, done.result())

    future.add_done_callback(settled)


def render_grid(
    prompt: str, seed: int, op: str = "imagine", source: Scene | None = None, arg: Arg = None
) -> bytes:
    return render(picture_for(op, prompt, seed, source, arg))


def render_single(
    prompt: str, seed: int, source: Scene | None = None, op: str = "upscale", tile: int = 1
) -> bytes:
    if source is None:
        source = picture_for("imagine", prompt, seed).scenes[tile - 1]
    return render(picture_for(op, prompt, seed, source))


@functools.lru_cache(maxsize=256)
def preview(picture: Picture, progress: int) -> bytes:
    return render_preview(render(picture), progress)


# The widest low-resolution look a preview starts from (at 100%).
_PREVIEW_SOURCE_WIDTH = 64


@functools.lru_cache(maxsize=256)
def _preview_source(final_png: bytes) -> Image.Image:
    """The final image shrunk once to _PREVIEW_SOURCE_WIDTH: each progress step of a task
    starts from it instead of decoding the full PNG again."""
    with Image.open(io.BytesIO(final_png)) as im:
        im = im.convert("RGB")
        width = min(_PREVIEW_SOURCE_WIDTH, im.width)
        return im.resize((width, max(1, round(width * im.height / im.width))), Image.Resampling.BOX)


def render_preview(final_png: bytes, progress: int) -> bytes:
    """A blurry low-resolution look at the final image that sharpens as progress grows."""
    p = min(100, max(0, progress)) / 100
    im = _preview_source(final_png)
    small_w = min(im.width, round(12 + 52 * p))
    small = im.resize(
        (small_w, max(1, round(small_w * im.height / im.width))), Image.Resampling.BOX
    )
    out = small.resize(
        (PREVIEW_WIDTH, round(PREVIEW_WIDTH * small.height / small.width)), Image.Resampling.BICUBIC
    )
    out = out.filter(ImageFilter.GaussianBlur(0.5 + 6 * (1 - p)))
    buf = io.BytesIO()
    out.save(buf, _PREVIEW_FORMAT, **({"quality": 70} if _PREVIEW_FORMAT == "WEBP" else {}))
    return buf.getvalue()
