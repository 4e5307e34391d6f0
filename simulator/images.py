"""Deterministic landscape pictures for the provider simulator.

Every picture is a view through a camera onto an endless procedural world (sky, sun or
moon, ridges, water) defined in world coordinates. That is what keeps the transforms
honest: a zoom out widens the camera over the same world, a pan moves it, and a
variation adds a seeded perturbation to the world itself. Only Pillow is used, and the
same inputs always give byte-identical PNGs (no metadata, no unseeded randomness).

A frame has the shape of its camera (--ar, a blend's dimensions): the square around it is
drawn and cropped. Grid tiles are TILE pixels along their long side, upscales twice that,
Upscale (Subtle / Creative) twice again; a pan grows the frame by half towards its side.
Over the world come the user's pictures (image prompts, a blend's inputs) and, for Vary
(Region), the parent's own pixels outside the mask; both sit in world coordinates, so a
later zoom or pan keeps them in place.

This module is the public API and the composition of pictures (grid, upscale, variation,
zoom, pan, blend, region, previews); the world model is in simulator.scene, the drawing in
simulator.painting, the user's pictures are read by simulator.uploads.
"""

from __future__ import annotations

import functools
import io
import multiprocessing
import os
import random
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace

from PIL import Image, ImageFilter, ImageOps, features

from simulator.painting import _draw, _png
from simulator.scene import Camera as Camera
from simulator.scene import Color as Color
from simulator.scene import Inpaint, Perturb, Picture, Reference, Scene, _digest
from simulator.scene import Rect as Rect

TILE = 512  # long side of a grid's tile
SIZE = 1024  # long side of an upscale: twice its tile
UPSCALED = 2048  # long side of Upscale (Subtle / Creative): twice the upscale
DRAW_MAX = 1024  # drawn at most this large; larger pictures are enlarged
PREVIEW_WIDTH = 256

_PREVIEW_FORMAT = "WEBP" if features.check("webp") else "PNG"
PREVIEW_CONTENT_TYPE = "image/webp" if _PREVIEW_FORMAT == "WEBP" else "image/png"

Arg = float | int | str | None  # an op's knob: variation strength, zoom factor, pan direction


# -- public API -------------------------------------------------------------------------


def derive(seed: int, *parts: object) -> int:
    """A child seed: the same parent seed and parts always give the same child."""
    return _digest(seed, *parts) & 0x7FFFFFFF


def frame_size(aspect: float, long: int) -> tuple[int, int]:
    """Pixel width and height of a frame of this shape whose long side is `long`."""
    if aspect >= 1:
        return long, max(1, round(long / aspect))
    return max(1, round(long * aspect)), long


def picture_size(picture: Picture) -> tuple[int, int]:
    """The pixel size of a picture's PNG."""
    if picture.kind == "upload":
        with Image.open(io.BytesIO(picture.image)) as im:
            return im.size
    w, h = frame_size(picture.scenes[0].camera.aspect, _long(picture))
    return (2 * w, 2 * h) if picture.kind == "grid" else (w, h)


def _long(picture: Picture) -> int:
    return picture.long or (TILE if picture.kind == "grid" else SIZE)


def picture_for(
    op: str, prompt: str, seed: int, source: Scene | None = None, arg: Arg = None
) -> Picture:
    """What a task draws. `source` is the parent's tile or upscale (for an imagine or a
    blend: the template of its tiles, with their shape and the user's pictures); `arg` the
    op's knob."""
    if op == "imagine":
        template = source or Scene(prompt, 0)
        return Picture(
            "grid",
            tuple(replace(template, prompt=prompt, seed=derive(seed, "tile", i)) for i in range(4)),
        )
    if source is None:
        raise ValueError(f"{op} needs a source scene")
    if op == "blend":  # each tile mixes the inputs in other shares
        return Picture(
            "grid", tuple(_blend_tile(source, derive(seed, "blend", i)) for i in range(4))
        )
    if op == "upscale":
        return Picture("single", (source,), detail=1)
    if op in ("upscale_subtle", "upscale_creative"):
        if op == "upscale_creative":
            source = replace(source, perturbs=(*source.perturbs, Perturb(seed, 0.08)))
        return Picture("single", (source,), detail=2, long=UPSCALED)
    if op == "variation":  # V1-V4 (0.3), Vary (Subtle) 0.12, Vary (Strong) 0.45
        strength = float(arg) if arg is not None else 0.3
        tiles = tuple(Perturb(derive(seed, "var", i), strength) for i in range(4))
        return Picture(
            "grid", tuple(replace(source, perturbs=(*source.perturbs, p)) for p in tiles)
        )
    if op == "inpaint":  # the source's last overlay is the Inpaint; inside it, a new world
        tiles = tuple(Perturb(derive(seed, "region", i), 0.9) for i in range(4))
        return Picture(
            "grid", tuple(replace(source, perturbs=(*source.perturbs, p)) for p in tiles)
        )
    cam = source.camera
    if op == "zoom":  # Zoom Out 2x / 1.5x, Custom Zoom: the same frame over more world
        factor = float(arg) if arg is not None else 2.0
        new_cam = replace(cam, width=cam.width * factor)
    elif op == "pan":  # the frame grows by half in that direction, the parent's view kept
        w, h = cam.extent()
        direction = str(arg)
        if direction in ("left", "right"):
            w2, h2 = w * 1.5, h
            cx, cy = cam.cx + (w / 4 if direction == "right" else -w / 4), cam.cy
        elif direction in ("up", "down"):
            w2, h2 = w, h * 1.5
            cx, cy = cam.cx, cam.cy + (h / 4 if direction == "down" else -h / 4)
        else:
            raise ValueError(f"unknown pan direction {direction!r}")
        new_cam = Camera(cx, cy, max(w2, h2), w2 / h2)
    else:
        raise ValueError(f"unknown op {op!r}")
    # the parent's view stays exactly as it was; each tile invents different surroundings
    tiles = tuple(Perturb(derive(seed, op, i), 0.9, keep=cam.rect()) for i in range(4))
    return Picture(
        "grid",
        tuple(replace(source, camera=new_cam, perturbs=(*source.perturbs, p)) for p in tiles),
    )


def _blend_tile(source: Scene, seed: int) -> Scene:
    rng = random.Random(seed)
    overlays = []
    for overlay in source.overlays:
        if isinstance(overlay, Reference):
            raw = [0.1 + rng.random() ** 2 for _ in overlay.images]
            weights = tuple(w / sum(raw) for w in raw)
            overlay = replace(overlay, weights=weights, angle=rng.uniform(0, 360))
        overlays.append(overlay)
    return replace(source, seed=seed, overlays=tuple(overlays))


def upload(png: bytes) -> Picture:
    """The user's own picture (Describe shows the image it describes)."""
    return Picture("upload", (), image=png)


def with_references(scene: Scene, pictures: tuple[bytes, ...], alpha: float) -> Scene:
    """The scene with the user's pictures over its frame: equal shares, at `alpha`."""
    if not pictures:
        return scene
    share = 1 / len(pictures)
    ref = Reference(scene.camera.rect(), pictures, (share,) * len(pictures), alpha)
    return replace(scene, overlays=(*scene.overlays, ref))


def with_region(scene: Scene, parent: Picture, mask: bytes) -> Scene:
    """The scene with the parent's picture kept outside `mask` (Vary (Region))."""
    return replace(scene, overlays=(*scene.overlays, Inpaint(scene.camera.rect(), parent, mask)))


# -- drawing ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _decoded(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        return im.copy()


def _mixed(ref: Reference, size: tuple[int, int]) -> Image.Image:
    """The reference pictures mixed in their shares: evenly, or (a blend's tile) each one
    sweeping in along its own direction, so that every tile mixes them differently."""
    mix = Image.new("RGB", size)
    total = 0.0
    for k, (png, weight) in enumerate(zip(ref.images, ref.weights, strict=True)):
        fitted = ImageOps.fit(_decoded(png).convert("RGB"), size, Image.Resampling.BICUBIC)
        total += weight  # a running weighted mean of the pictures
        share = weight / total
        if ref.angle is None or k == 0:
            mix = Image.blend(mix, fitted, share)
            continue
        # a gradient twice the frame, turned and cut to its middle: no corner is left bare
        ramp = Image.linear_gradient("L").resize((512, 512), Image.Resampling.BILINEAR)
        ramp = ramp.rotate(ref.angle + 137.5 * k, Image.Resampling.BILINEAR)
        ramp = ramp.crop((128, 128, 384, 384)).resize(size, Image.Resampling.BILINEAR)
        levels = [min(255, round(v * 2 * share)) for v in range(256)]  # mean: its share
        mix = Image.composite(fitted, mix, ramp.point(levels))
    return mix


def _frame(scene: Scene, long: int, detail: int) -> Image.Image:
    """One scene drawn in its frame's shape: the square around it, cropped; then the
    user's pictures and kept regions laid over it."""
    drawn = min(long, DRAW_MAX)  # larger upscales are enlarged, as an upscaler does
    cam = scene.camera
    w, h = frame_size(cam.aspect, drawn)
    square = _draw(scene, drawn, detail)
    left, top = (drawn - w) // 2, (drawn - h) // 2
    img = square.crop((left, top, left + w, top + h))
    fx0, fy0, _, _ = cam.rect()
    scale = w / cam.extent()[0]
    for overlay in scene.overlays:
        x0, y0, x1, y1 = overlay.rect
        box = (round((x0 - fx0) * scale), round((y0 - fy0) * scale))
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        if isinstance(overlay, Reference):
            alpha = Image.new("L", size, round(255 * overlay.alpha))
            img.paste(_mixed(overlay, size), box, alpha)
        else:
            parent = _decoded(render(overlay.parent)).convert("RGB")
            keep = ImageOps.invert(_decoded(overlay.mask).convert("L"))
            if parent.size != size:
                parent = parent.resize(size, Image.Resampling.LANCZOS)
                keep = keep.resize(size, Image.Resampling.NEAREST)
            img.paste(parent, box, keep)
    if long != drawn:
        img = img.resize(frame_size(cam.aspect, long), Image.Resampling.LANCZOS)
    return img


def draw(picture: Picture) -> bytes:
    """The final PNG, drawn now."""
    if picture.kind == "upload":
        return picture.image
    long = _long(picture)
    if picture.kind == "single":
        return _png(_frame(picture.scenes[0], long, picture.detail))
    w, h = frame_size(picture.scenes[0].camera.aspect, long)
    grid = Image.new("RGB", (2 * w, 2 * h))
    for i, scene in enumerate(picture.scenes[:4]):
        grid.paste(_frame(scene, long, picture.detail), ((i % 2) * w, (i // 2) * h))
    return _png(grid)


# The 256 most recent finals are kept, as every poll may ask again; with paint_ahead() each
# is drawn in another process as soon as its task exists.
_KEEP = 256
_finals: OrderedDict[Picture, bytes] = OrderedDict()
_pending: dict[Picture, Future[bytes]] = {}
# When the painter finished each picture (wall clock, epoch s): a provider reports SUCCESS
# once its picture exists (ready_at).
_drawn: dict[Picture, float] = {}
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
        gone, _ = _finals.popitem(last=False)
        _drawn.pop(gone, None)


def ready_at(picture: Picture) -> float | None:
    """When `picture` existed, as a provider's SUCCESS means its picture does: with a painter,
    None while it is still being drawn, else the wall time it was finished; 0.0 where it is
    drawn on demand (no painter) or its drawing is not tracked any more."""
    with _lock:
        if _painter is None:
            return 0.0
        if picture in _pending:
            return None
        return _drawn.get(picture, 0.0)


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
                _drawn[picture] = time.time()

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
