"""Deterministic landscape pictures for the provider simulator.

Every picture is a view through a camera onto an endless procedural world (sky, sun or
moon, ridges, water) defined in world coordinates. That is what keeps the transforms
honest: a zoom out widens the camera over the same world, a pan moves it, and a
variation adds a seeded perturbation to the world itself. Only Pillow is used, and the
same inputs always give byte-identical PNGs (no metadata, no unseeded randomness).
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import io
import itertools
import math
import random
import re
from dataclasses import dataclass, replace

from PIL import Image, ImageChops, ImageDraw, ImageFilter, features

TILE = 512
SIZE = 1024
PREVIEW_WIDTH = 256
_SS = 2  # masks are drawn at 2x and reduced: ImageDraw polygons have no antialiasing

_PREVIEW_FORMAT = "WEBP" if features.check("webp") else "PNG"
PREVIEW_CONTENT_TYPE = "image/webp" if _PREVIEW_FORMAT == "WEBP" else "image/png"

Color = tuple[int, int, int]
Rect = tuple[float, float, float, float]  # world x0, y0, x1, y1 (y grows downwards)
Arg = float | int | str | None  # an op's knob: variation strength, zoom factor, pan direction


@dataclass(frozen=True)
class Camera:
    cx: float = 0.0
    cy: float = -0.2
    width: float = 1.6  # world units across the (square) frame

    def rect(self) -> Rect:
        half = self.width / 2
        return (self.cx - half, self.cy - half, self.cx + half, self.cy + half)


@dataclass(frozen=True)
class Perturb:
    """A seeded change to the world; `keep` leaves a region (the parent's view) untouched."""

    seed: int
    strength: float
    keep: Rect | None = None


@dataclass(frozen=True)
class Scene:
    prompt: str
    seed: int
    perturbs: tuple[Perturb, ...] = ()
    camera: Camera = Camera()


@dataclass(frozen=True)
class Picture:
    kind: str  # "grid" (four 512px tiles) or "single" (one 1024px image)
    scenes: tuple[Scene, ...]
    detail: int = 0  # extra noise octaves: upscales show finer ridges and more trees


# -- style: what the prompt decides -------------------------------------------------------

_KEYS = ("top", "mid", "horizon", "sun", "far", "near", "light", "water", "ink")
_PALETTES: dict[str, str] = {  # colours in _KEYS order
    "dusk": "1b2448 74406f f59a73 ffe3ae a0607e 23162c ffc08c 3b2c4e 140c1c",
    "dawn": "5a8fcf e3b7c6 ffe2b8 fff6dc a5b3cc 34425e ffe6bd 8aa3c4 26304a",
    "day": "2a66bd 6fa8e6 d8ecfb fffbea 8aa6c0 24432f fff0c0 3a78aa 183524",
    "night": "03050d 0e1733 2c3c6a f4f1e2 2e3a5e 070a14 b9c8f0 111a34 04060c",
    "snow": "5e8cc4 b5cdea eef4fb ffffff 8299bb f2f6fb ffffff 8fabcc 3a4f68",
    "desert": "3f6fb4 93bde0 f6e3c0 fffaf0 dba06c a9502a ffd9a0 6b8fb5 6e3119",
    "teal": "06131f 17475a 8fd9c0 effff6 2c6468 071b21 c2ffe6 123543 04141a",
    "autumn": "4d3f80 df8259 ffd6a3 fff0c0 bb6a4e 3e1d22 ffcb88 5e3a55 2a1216",
}
_PALETTE_WORDS = {
    "night": "night moon moonlit moonlight star stars starry midnight galaxy nocturnal",
    "snow": "snow snowy winter ice icy frost frozen arctic glacier",
    "desert": "desert dune dunes sand sahara canyon",
    "dusk": "dusk sunset evening twilight",
    "dawn": "dawn sunrise morning",
    "autumn": "autumn fall maple harvest",
    "teal": "aurora alien nebula mystic",
    "day": "day noon summer sunny",
}
_FAMILY_WORDS = {
    "sea": "ocean sea beach coast wave waves harbor sailing island",
    "lake": "lake river pond reflection fjord boat",
    "dunes": "desert dune dunes sand sahara",
    "forest": "forest tree trees wood woods pine pines jungle fox deer",
    "mountains": "mountain mountains peak peaks alps cliff volcano",
}
_FAMILIES = ("mountains", "lake", "dunes", "sea", "forest")
_STARRY = {"night", "teal"}


def _digest(*parts: object) -> int:
    data = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def _words(prompt: str) -> list[str]:
    # MJ parameters (--v 6.1, --ar 16:9) must not change the look of a prompt
    text = re.sub(r"--\S+(\s+[^-\s]\S*)?", " ", prompt.lower())
    return re.findall(r"\w+", text)


def _style(prompt: str) -> tuple[str, str, float]:
    words = _words(prompt)
    key = _digest("style", " ".join(words))

    def pick(table: dict[str, str], fallback: tuple[str, ...]) -> str:
        for word in words:
            for name, vocab in table.items():
                if word in vocab.split():
                    return name
        return fallback[key % len(fallback)]

    palette = pick(_PALETTE_WORDS, tuple(_PALETTES))
    family = pick(_FAMILY_WORDS, _FAMILIES)
    hue = ((key >> 16) % 1000 / 1000 - 0.5) * 0.06  # same prompt, same hue nudge
    return palette, family, hue


def _rgb(hex_color: str, hue: float = 0.0) -> Color:
    r, g, b = (int(hex_color[i : i + 2], 16) / 255 for i in (0, 2, 4))
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    r, g, b = colorsys.hsv_to_rgb((h + hue) % 1.0, s, v)
    return (round(r * 255), round(g * 255), round(b * 255))


def _mix(a: Color, b: Color, t: float) -> Color:
    t = min(1.0, max(0.0, t))
    red, green, blue = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return (red, green, blue)


# -- noise -------------------------------------------------------------------------------


def _hash01(i: int, seed: int) -> float:
    h = (i * 374761393 + seed * 668265263) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    return (h ^ (h >> 16)) / 4294967296.0


def _fbm(x: float, seed: int, octaves: int, ridged: bool) -> float:
    """Fractal value noise in [-1, 1]; ridged noise folds it into sharp peaks."""
    total = norm = 0.0
    amp = 1.0
    for octave in range(octaves):
        s = seed + octave * 1013
        i = math.floor(x)
        f = x - i
        a = _hash01(i, s)
        v = a + (_hash01(i + 1, s) - a) * f * f * (3 - 2 * f)
        v = 1 - 4 * abs(v - 0.5) if ridged else 2 * v - 1
        total += amp * v
        norm += amp
        amp *= 0.5
        x *= 2.03
    return total / norm


def _keep_weight(x: float, keep: Rect | None, ramp: float = 0.3) -> float:
    """0 inside the kept columns, easing to 1 at `ramp` world units outside them."""
    if keep is None:
        return 1.0
    t = min(1.0, max(keep[0] - x, 0.0, x - keep[2]) / ramp)
    return t * t * (3 - 2 * t)


# -- world ------------------------------------------------------------------------------


@dataclass
class _Layer:
    base: float
    amp: float
    freq: float
    octaves: int
    ridged: bool
    noise: int
    color: Color
    trees: bool
    bumps: list[Perturb]
    lift: tuple[Rect, float, float] | None = None  # framing ridge: rises left/right of a view

    def height(self, x: float, detail: int) -> float:
        n = _fbm(x * self.freq, self.noise, self.octaves + detail, self.ridged)
        y = self.base - self.amp * (n if self.ridged else 0.5 + 0.5 * n)
        for p in self.bumps:
            w = p.strength * _keep_weight(x, p.keep)
            if w > 0:
                y -= self.amp * 1.6 * w * _fbm(x * self.freq * 0.8, p.seed, 3, False)
        if self.lift is not None:
            keep, left, right = self.lift
            rough = 0.75 + 0.5 * _fbm(x * 4, self.noise + 7, 3, False)
            y -= (left if x < keep[0] else right) * _keep_weight(x, keep, 0.5) * rough
        return y


@dataclass
class _World:
    colors: dict[str, Color]
    family: str
    starry: bool
    sun: tuple[float, float, float]  # x, y, radius
    water: float | None  # world y of the waterline
    layers: list[_Layer]
    front: list[_Layer]  # framing foreground from zooms and pans, drawn over any water
    seed: int


_FAMILY_LAYERS = {  # far to near: "base-y amplitude frequency octaves r(idged)|s(mooth)"
    "mountains": "-.02 .5 1.6 5 r, .08 .4 2 5 r, .2 .28 1.7 4 r, .36 .22 1.3 4 s, .5 .14 1.1 3 s",
    "forest": "0 .2 1.6 4 s, .1 .18 1.4 4 s, .24 .16 1.2 3 s, .4 .14 1 3 s",
    "dunes": "0 .16 1.1 2 s, .12 .2 .9 2 s, .28 .22 .8 2 s, .46 .2 .7 2 s",
    "lake": "-.02 .42 1.7 5 r, .04 .3 2.1 5 r, .09 .12 1.5 4 s",
    "sea": ".01 .08 2.2 4 s",
}


def _world(scene: Scene) -> _World:
    palette, family, hue = _style(scene.prompt)
    rng = random.Random(_digest("world", " ".join(_words(scene.prompt)), scene.seed))
    free = [p for p in scene.perturbs if p.keep is None]
    hue += rng.uniform(-0.02, 0.02) + sum(
        p.strength * (_hash01(1, p.seed) - 0.5) * 0.04 for p in free
    )
    colors = {k: _rgb(v, hue) for k, v in zip(_KEYS, _PALETTES[palette].split(), strict=True)}
    sun = [rng.uniform(-0.5, 0.5), rng.uniform(-0.62, -0.22), rng.uniform(0.05, 0.09)]
    for p in free:  # variations move the sun a little, zooms and pans never do
        sun[0] += (_hash01(2, p.seed) - 0.5) * 0.5 * p.strength
        sun[1] += (_hash01(3, p.seed) - 0.5) * 0.25 * p.strength
    specs = [spec.split() for spec in _FAMILY_LAYERS[family].split(",")]
    if family in ("mountains", "forest", "dunes") and rng.random() < 0.5:
        specs.pop(rng.randrange(1, len(specs) - 1))  # vary the depth structure
    layers = []
    for k, (base, amp, freq, octaves, kind) in enumerate(specs):
        color = _mix(colors["far"], colors["near"], k / max(1, len(specs) - 1))
        jitter = (rng.uniform(-0.04, 0.04), rng.uniform(0.75, 1.2), rng.uniform(0.8, 1.25))
        trees = family == "forest" and k >= len(specs) - 2
        layers.append(
            _Layer(
                float(base) + jitter[0],
                float(amp) * jitter[1],
                float(freq) * jitter[2],
                int(octaves),
                kind == "r",
                rng.getrandbits(30),
                color,
                trees,
                list(scene.perturbs),
            )
        )
    water = {"lake": 0.1, "sea": 0.0}.get(family)
    if water is not None:
        water += rng.uniform(-0.02, 0.04)
    # a zoom or pan reveals new ground under and beside the parent's view: a nearer ridge
    # that stays below the kept rectangle inside it and climbs up beside it
    front = []
    bottom = scene.camera.rect()[3]
    for p in scene.perturbs:
        if p.keep is None:
            continue
        r = random.Random(p.seed)
        base, k = p.keep[3] + 0.14, 1
        while base - 0.2 < bottom:  # a deep pan down needs several ridges to fill the view
            color = _mix(colors["near"], colors["ink"], 0.5 + 0.15 * k)
            lift = (p.keep, r.uniform(0.05, 0.7) / k, r.uniform(0.05, 0.7) / k)
            shape = (r.uniform(1.5, 3.0), 5, False, r.getrandbits(30), color)
            front.append(_Layer(base, 0.12, *shape, family in ("forest", "lake"), [], lift))
            base, k = base + r.uniform(0.22, 0.34), k + 1
    starry, seed = palette in _STARRY, rng.getrandbits(30)
    return _World(colors, family, starry, (sun[0], sun[1], sun[2]), water, layers, front, seed)


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


def _glow(img: Image.Image, mask: Image.Image, color: Color, radius: float) -> None:
    if radius > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(radius))
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
        edge = ImageChops.subtract(mask, moved).filter(ImageFilter.GaussianBlur(blur))
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
    img.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


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


def render_preview(final_png: bytes, progress: int) -> bytes:
    """A blurry low-resolution look at the final image that sharpens as progress grows."""
    p = min(100, max(0, progress)) / 100
    with Image.open(io.BytesIO(final_png)) as im:
        im = im.convert("RGB")
        small_w = round(12 + 52 * p)
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
