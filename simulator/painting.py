"""Drawing primitives of the simulator's pictures: one scene's world painted with Pillow
(sky, sun or moon, stars and clouds, ridges with their rims and trees, water), and PNG
encoding. simulator.images composes these into grids, upscales, zooms and pans.
"""

from __future__ import annotations

import io
import itertools
import math

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from simulator.scene import Camera, Color, Scene, _hash01, _Layer, _mix, _World, _world

_SS = 2  # masks are drawn at 2x and reduced: ImageDraw polygons have no antialiasing


# -- drawing ----------------------------------------------------------------------------


class _View:
    def __init__(self, camera: Camera, size: int) -> None:
        self.size = size
        self.scale = size / camera.width
        self.x0, self.y0 = camera.cx - camera.width / 2, camera.cy - camera.width / 2

    def px(self, x: float) -> float:
        return (x - self.x0) * self.scale

    def py(self, y: float) -> float:
        return (y - self.y0) * self.scale

    def wx(self, px: float) -> float:
        return self.x0 + px / self.scale

    def wy(self, py: float) -> float:
        return self.y0 + py / self.scale


def _column(size: int, colors: list[Color]) -> Image.Image:
    col = Image.new("RGB", (1, len(colors)))
    col.putdata(colors)
    return col.resize((size, size), Image.Resampling.NEAREST)


def _sky(world: _World, view: _View) -> Image.Image:
    c = world.colors
    # the stop above the top keeps zoomed-out skies from ending in a flat band
    zenith = _mix(c["top"], c["ink"], 0.5)
    stops = [(-2.4, zenith), (-1.0, c["top"]), (-0.45, c["mid"]), (0.03, c["horizon"])]
    rows: list[Color] = []
    for r in range(view.size):
        y = view.wy(r + 0.5)
        color = stops[-1][1]
        for (ya, ca), (yb, cb) in itertools.pairwise(stops):
            if y < yb:
                t = min(1.0, max(0.0, (y - ya) / (yb - ya)))
                color = _mix(ca, cb, t * t * (3 - 2 * t))
                break
        rows.append(color)
    return _column(view.size, rows)


def _blur(mask: Image.Image, radius: float) -> Image.Image:
    """A Gaussian blur; a wide one is made on a copy reduced by up to a quarter of the
    radius and enlarged again: the same soft edge for a fraction of the work (the blur was
    a quarter of a picture's drawing time)."""
    factor = min(8, int(radius // 4))
    if factor < 2:
        return mask.filter(ImageFilter.GaussianBlur(radius))
    small = mask.reduce(factor).filter(ImageFilter.GaussianBlur(radius / factor))
    return small.resize(mask.size, Image.Resampling.BILINEAR)


def _glow(img: Image.Image, mask: Image.Image, color: Color, radius: float) -> None:
    if radius > 0:
        mask = _blur(mask, radius)
    img.paste(Image.new("RGB", img.size, color), (0, 0), mask)


def _heavens(img: Image.Image, world: _World, view: _View) -> None:
    c, s = world.colors, view.scale
    sx, sy, sr = (view.px(world.sun[0]), view.py(world.sun[1]), world.sun[2] * s)
    if world.starry:
        stars = ImageDraw.Draw(img)
        cell = 0.07
        rows = range(math.floor(view.wy(0) / cell), min(1, math.ceil(view.wy(view.size) / cell)))
        for i in range(math.floor(view.wx(0) / cell), math.ceil(view.wx(view.size) / cell)):
            for j in rows:  # stars sit in world cells, so zooms and pans keep them in place
                h = _hash01(i * 7919 + j, world.seed)
                if h < 0.55:
                    x = view.px((i + _hash01(i, j + 11)) * cell)
                    y = view.py((j + _hash01(j, i + 13)) * cell)
                    r = 0.4 + 1.2 * h * h * view.size / 512
                    a = 0.35 + h
                    stars.ellipse((x - r, y - r, x + r, y + r), fill=_mix(c["top"], c["sun"], a))
    haze = Image.new("L", img.size, 0)
    d = ImageDraw.Draw(haze)
    d.ellipse((sx - 4 * sr, sy - 4 * sr, sx + 4 * sr, sy + 4 * sr), fill=150)
    hy = view.py(0.02)
    d.ellipse((sx - 14 * sr, hy - 2.2 * sr, sx + 14 * sr, hy + 2.2 * sr), fill=110)
    _glow(img, haze, c["light"], 2.5 * sr)
    clouds = Image.new("L", img.size, 0)
    d = ImageDraw.Draw(clouds)
    cell = 0.35
    for i in range(math.floor(view.wx(0) / cell) - 1, math.ceil(view.wx(view.size) / cell) + 1):
        for j in range(4):
            h = _hash01(i * 31 + j, world.seed + 5)
            if h < 0.45:
                cx, cy = (i + h * 2) * cell, -0.85 + j * 0.16 + _hash01(i, j) * 0.1
                w, t = (0.12 + 0.3 * _hash01(j, i)) * s, (0.008 + 0.02 * h) * s
                d.ellipse(
                    (view.px(cx) - w, view.py(cy) - t, view.px(cx) + w, view.py(cy) + t),
                    fill=round(70 + 120 * h),
                )
    _glow(img, clouds, _mix(c["mid"], c["light"], 0.6), 0.012 * s)
    disc = Image.new("L", (img.width * _SS, img.height * _SS), 0)
    ImageDraw.Draw(disc).ellipse(
        (_SS * (sx - sr), _SS * (sy - sr), _SS * (sx + sr), _SS * (sy + sr)), fill=255
    )
    _glow(img, disc.reduce(_SS), c["sun"], 0)


def _paste(img: Image.Image, color: Color, mask: Image.Image, top: int) -> None:
    img.paste(Image.new("RGB", mask.size, color), (0, top), mask)


def _layer(
    img: Image.Image, world: _World, layer: _Layer, view: _View, detail: int, haze_to: Color
) -> None:
    size, s = view.size, view.scale
    step = max(2, size // 256)
    pad = step * math.ceil(0.1 * s / step)  # margin so shifted masks have no false edges
    pts = [
        (px, view.py(layer.height(view.wx(px), detail)))
        for px in range(-pad, size + pad + step, step)
    ]
    top = max(0, int(min(y for _, y in pts)) - 2)  # everything below happens under this row
    if top >= size:
        return
    w, h = size + 2 * pad, size + pad - top
    mask = Image.new("L", (w * _SS, h * _SS), 0)
    ImageDraw.Draw(mask).polygon(
        [((x + pad) * _SS, (y - top) * _SS) for x, y in pts] + [(w * _SS, h * _SS), (0, h * _SS)],
        fill=255,
    )
    mask = mask.reduce(_SS)
    inner = (pad, 0, pad + size, size - top)
    base_row = view.py(layer.base + 0.08) - top
    rows = [_mix(layer.color, haze_to, 0.5 * r / max(1.0, base_row)) for r in range(size - top)]
    col = Image.new("RGB", (1, size - top))
    col.putdata(rows)
    img.paste(col.resize((size, size - top), Image.Resampling.NEAREST), (0, top), mask.crop(inner))
    # embossing by offset: the mask minus itself moved towards the sun leaves a lit rim on
    # slopes that face it, moved away it leaves the shaded side
    dx = (view.px(world.sun[0]) - size / 2) / (size / 2)
    dx = math.copysign(max(0.35, min(1.0, abs(dx))), dx or 1.0)
    norm = math.hypot(dx, 0.45)
    vx, vy = dx / norm, -0.45 / norm

    def rim(shift: float, blur: float) -> Image.Image:
        moved = mask.transform(
            mask.size, Image.Transform.AFFINE, (1, 0, vx * shift, 0, 1, vy * shift)
        )
        edge = _blur(ImageChops.subtract(mask, moved), blur)
        return ImageChops.multiply(edge, mask).crop(inner)

    ink = world.colors["ink"]
    shade = rim(-0.07 * s, 0.025 * s).point(lambda v: v * 0.55)
    _paste(img, _mix(layer.color, ink, 0.5), shade, top)
    lit = rim(max(2.0, 0.01 * s), max(1.0, 0.003 * s))
    _paste(img, _mix(layer.color, world.colors["light"], 0.7), lit, top)
    if layer.trees:
        trees = Image.new("L", (size * _SS, h * _SS), 0)
        d = ImageDraw.Draw(trees)
        spacing = 0.011 * (0.6 if detail else 1.0)
        for i in range(math.floor(view.wx(0) / spacing), math.ceil(view.wx(size) / spacing)):
            r = _hash01(i, layer.noise)
            if r < 0.7:
                tx = (i + r) * spacing
                x, y = view.px(tx), view.py(layer.height(tx, detail)) - top
                tw, th = (0.006 + 0.006 * r) * s, (0.03 + 0.05 * _hash01(i, 7)) * s
                tree = [(x - tw, y + 3), (x, y - th), (x + tw, y + 3)]
                d.polygon([(_SS * a, _SS * b) for a, b in tree], fill=255)
        _paste(img, _mix(layer.color, ink, 0.6), trees.reduce(_SS), top)


def _water(img: Image.Image, sky: Image.Image, world: _World, view: _View) -> None:
    assert world.water is not None
    size, c = view.size, world.colors
    row = round(view.py(world.water))
    if row >= size:
        return
    row = max(row, 0)
    depth = size - row
    refl = Image.new("RGB", (size, depth), c["top"])
    # a lake mirrors the scene; open sea only the sky (a mirrored sun disc looks wrong there)
    mirror = img if world.family == "lake" else sky
    src = mirror.crop((0, max(0, row - depth), size, row)).transpose(
        Image.Transpose.FLIP_TOP_BOTTOM
    )
    refl.paste(src, (0, 0))
    refl = refl.filter(ImageFilter.BoxBlur(max(1, size // 300)))
    fade = Image.new("L", (1, depth))
    calm = 0 if world.family == "lake" else 70  # open sea: waves break up the mirror image
    fade.putdata(
        [round(80 + calm + (110 - calm) * (r / max(1, depth)) ** 0.8) for r in range(depth)]
    )
    refl.paste(Image.new("RGB", refl.size, c["water"]), (0, 0), fade.resize(refl.size))
    img.paste(refl, (0, row))
    sparkle = Image.new("L", img.size, 0)
    d = ImageDraw.Draw(sparkle)
    s = view.scale
    sunx = world.sun[0]
    for j in range(math.floor(world.water * 400) + 1, math.ceil(view.wy(size) * 400)):
        wy = j / 400
        dist = wy - world.water
        for k in range(3):
            h = _hash01(j * 3 + k, world.seed)
            spread = 0.03 + dist * 1.3
            wx = (sunx if k < 2 else view.wx(h * size)) + (h - 0.5) * 2 * spread
            half = (0.01 + 0.03 * _hash01(k, j)) * s
            d.line(
                (view.px(wx) - half, view.py(wy), view.px(wx) + half, view.py(wy)),
                fill=round(120 * (1 - min(1.0, abs(wx - sunx) / (spread + 0.2))) + 40),
                width=max(1, size // 512),
            )
    _glow(img, sparkle, c["light"], 0.6)


def _draw(scene: Scene, size: int, detail: int) -> Image.Image:
    world = _world(scene)
    view = _View(scene.camera, size)
    sky = _sky(world, view)
    img = sky.copy()
    _heavens(img, world, view)
    haze = world.colors["horizon"]
    for layer in world.layers:
        _layer(img, world, layer, view, detail, haze)
        haze = _mix(haze, world.colors["near"], 0.3)
    if world.water is not None:
        _water(img, sky, world, view)
    for layer in world.front:
        _layer(img, world, layer, view, detail, haze)
    return img


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    # Level 1: a third larger than the default 6, in half the time. The simulator stands for
    # a provider elsewhere, so it should cost the machine it shares with the studio little.
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()
