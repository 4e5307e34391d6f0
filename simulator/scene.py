"""The world a simulator picture shows: the scene model (camera, perturbations, scenes,
pictures), the style a prompt decides, seeded noise, and the procedural world built from a
scene. No pixels here: simulator.painting draws a world, simulator.images composes pictures.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import random
import re
from dataclasses import dataclass

Color = tuple[int, int, int]
Rect = tuple[float, float, float, float]  # world x0, y0, x1, y1 (y grows downwards)


@dataclass(frozen=True)
class Camera:
    cx: float = 0.0
    cy: float = -0.2
    width: float = 1.6  # world units across the frame's long side
    aspect: float = 1.0  # the frame's width over its height (--ar 3:2 is 1.5)

    def extent(self) -> tuple[float, float]:
        """World width and height of the frame."""
        if self.aspect >= 1:
            return self.width, self.width / self.aspect
        return self.width * self.aspect, self.width

    def rect(self) -> Rect:
        """What the frame shows, in world coordinates."""
        w, h = self.extent()
        return (self.cx - w / 2, self.cy - h / 2, self.cx + w / 2, self.cy + h / 2)

    def square(self) -> Camera:
        """The square frame around this one (it is drawn, then cropped to the shape)."""
        return Camera(self.cx, self.cy, self.width)


@dataclass(frozen=True)
class Perturb:
    """A seeded change to the world; `keep` leaves a region (the parent's view) untouched."""

    seed: int
    strength: float
    keep: Rect | None = None


@dataclass(frozen=True)
class Reference:
    """The user's pictures laid over the world at `rect` (world coordinates, so zooms and
    pans keep them where they were): image prompts as a faint copy, a blend's inputs as a
    strong mix. `images` are RGB PNGs; `weights` their share of the mix."""

    rect: Rect
    images: tuple[bytes, ...]
    weights: tuple[float, ...]
    alpha: float
    angle: float | None = None  # a blend's tile: each picture sweeps in from its own side


@dataclass(frozen=True)
class Inpaint:
    """Vary (Region): outside the mask the frame shows `parent` exactly, inside it the world
    drawn anew. `mask` is a PNG (mode L, the parent's pixel size): 255 = repaint."""

    rect: Rect
    parent: Picture
    mask: bytes


@dataclass(frozen=True)
class Scene:
    prompt: str
    seed: int
    perturbs: tuple[Perturb, ...] = ()
    camera: Camera = Camera()
    overlays: tuple[Reference | Inpaint, ...] = ()


@dataclass(frozen=True)
class Picture:
    # "grid" (four tiles), "single" (one image) or "upload" (the user's own image, as given)
    kind: str
    scenes: tuple[Scene, ...]
    detail: int = 0  # extra noise octaves: upscales show finer ridges and more trees
    long: int = 0  # pixels along the long side of a tile or single; 0: the kind's default
    image: bytes = b""  # an upload's PNG


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
    text = re.sub(r"\S+://\S+", " ", text)  # image prompts are not words of the style
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
