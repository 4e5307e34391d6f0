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


@functools.lru_cache(maxsize=256)
def render(picture: Picture) -> bytes:
    """The final PNG; kept for the 256 most recent pictures, as every poll may ask again."""
    if picture.kind == "single":
        return _png(_draw(picture.scenes[0], SIZE, picture.detail))
    grid = Image.new("RGB", (SIZE, SIZE))
    for i, scene in enumerate(picture.scenes[:4]):
        grid.paste(_draw(scene, TILE, picture.detail), ((i % 2) * TILE, (i // 2) * TILE))
    return _png(grid)


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
