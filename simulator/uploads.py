"""The user's pictures that reach the simulator: image prompts, a blend's inputs, the image
to describe and a region's mask. Data URLs are decoded, links downloaded (http(s) only,
size-capped, with a timeout), and every picture checked and normalised to an RGB (or, for
masks, L) PNG. Also the four prompts Describe makes from a picture.

Anything unusable raises `BadImage` with a sentence saying what is wrong: a submit answers
it as a refusal (code 4, HTTP 400), a task whose link fails reports it as its failReason.
"""

from __future__ import annotations

import base64
import binascii
import colorsys
import io
import math
import random
import re
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable

from PIL import Image, ImageStat, UnidentifiedImageError

MAX_BYTES = 10 * 1024 * 1024  # one picture, encoded
MAX_PIXELS = 40_000_000  # one picture, decoded: refused before it is decoded
TIMEOUT = 10.0  # seconds for one download
REFERENCE_LONG = 256  # image prompts and blend inputs are kept this small
DESCRIBED_LONG = 1024  # the described image, as its imageUrl serves it

_DATA_URL = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.S
)
_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)


class BadImage(Exception):
    """A picture the simulator cannot use; `str()` says why."""


Fetch = Callable[[str], bytes]


def leading_urls(prompt: str) -> tuple[list[str], str]:
    """Midjourney's image prompts: the links a prompt starts with, and the text after them."""
    words = prompt.split()
    urls = []
    while words and _URL.match(words[0]):
        urls.append(words.pop(0))
    return urls, " ".join(words)


def is_link(text: str) -> bool:
    return bool(_URL.match(text.strip()))


def decode_data_url(text: str, what: str, *, bare: bool = False) -> bytes:
    """The bytes of a base64 data URL (`bare`: plain base64 is accepted too)."""
    if not isinstance(text, str) or not text.strip():
        raise BadImage(f"{what} is empty")
    match = _DATA_URL.match(text.strip())
    if match is None:
        if not bare:
            raise BadImage(f"{what} is not a data URL (data:image/png;base64,...)")
        payload = text.strip()
    else:
        if ";base64" not in match["params"].lower():
            raise BadImage(f"{what} is not base64-encoded")
        if match["type"] and not match["type"].lower().startswith("image/"):
            raise BadImage(f"{what} is {match['type']}, not an image")
        payload = match["data"]
    payload = re.sub(r"\s+", "", payload)
    if len(payload) > MAX_BYTES * 4 // 3 + 4:
        raise BadImage(f"{what} is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadImage(f"{what} is not valid base64") from None


def download(url: str, what: str, timeout: float = TIMEOUT) -> bytes:
    """GET an http(s) link: at most MAX_BYTES, within `timeout` seconds per read."""
    if not is_link(url):
        raise BadImage(f"{what} must be an http(s) link")
    request = urllib.request.Request(url.strip(), headers={"User-Agent": "mjsim/1.0"})
    # straight to the host, as the webhooks go: an HTTP proxy from the environment must not
    # stand between the provider and the studio's picture links
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as answer:
            body = answer.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise BadImage(f"{what} could not be downloaded: HTTP {exc.code}") from None
    except TimeoutError:
        raise BadImage(f"{what} could not be downloaded: timed out after {timeout:g} s") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BadImage(f"{what} could not be downloaded: {reason}") from None
    if len(body) > MAX_BYTES:
        raise BadImage(f"{what} is larger than {MAX_BYTES // (1024 * 1024)} MB")
    return body


MAX_IMAGE_PROMPTS = 5


def image_prompts(prompt: str, data_urls: object = None) -> tuple[tuple[bytes, ...], str | None]:
    """An imagine's image prompts, as RGB PNGs: CometAPI's `base64Array` (data URLs) and the
    links the prompt starts with (Midjourney's syntax, PiAPI's only way). A bad data URL or
    too many pictures raise BadImage (the submit is refused); a link that cannot be used
    gives the failReason returned second, as Midjourney fails such a job later."""
    if data_urls is None:
        data_urls = []
    if not isinstance(data_urls, list) or not all(isinstance(d, str) for d in data_urls):
        raise BadImage("base64Array must be a list of data URLs")
    links, _ = leading_urls(prompt)
    if len(data_urls) + len(links) > MAX_IMAGE_PROMPTS:
        raise BadImage(f"at most {MAX_IMAGE_PROMPTS} image prompts are taken")
    what = "base64Array[{}]"
    pictures = [
        picture(decode_data_url(d, what.format(i)), what.format(i))[0]
        for i, d in enumerate(data_urls)
    ]
    for i, link in enumerate(links):
        label = f"image prompt {i + 1} ({link})"
        try:
            pictures.append(picture(download(link, label), label)[0])
        except BadImage as bad:
            return (), str(bad)
    return tuple(pictures), None


def linked_pictures(
    links: list[str], what: str, long: int = REFERENCE_LONG
) -> tuple[list[tuple[bytes, tuple[int, int]]], str | None]:
    """Download and check each link: the pictures, or the failReason of the first bad one."""
    found = []
    for i, link in enumerate(links):
        label = f"{what} {i + 1} ({link})" if len(links) > 1 else f"{what} ({link})"
        try:
            found.append(picture(download(link, label), label, long))
        except BadImage as bad:
            return [], str(bad)
    return found, None


def _open(raw: bytes, what: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(raw))
            if im.width * im.height > MAX_PIXELS:
                raise BadImage(f"{what} has too many pixels ({im.width}x{im.height})")
            im.load()
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"{what} has too many pixels") from None
    except UnidentifiedImageError:
        raise BadImage(f"{what} is not an image") from None
    except Exception:  # a decoder's own error on a corrupt file (OSError, struct.error...)
        raise BadImage(f"{what} is a broken image") from None
    if im.width < 1 or im.height < 1:
        raise BadImage(f"{what} is empty")
    return im


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def picture(raw: bytes, what: str, long: int = REFERENCE_LONG) -> tuple[bytes, tuple[int, int]]:
    """An RGB PNG no longer than `long` on its long side, and the picture's original size.
    Transparency is laid over white, as a browser shows it."""
    im = _open(raw, what)
    size = im.size
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    im = im.convert("RGB")
    im.thumbnail((long, long), Image.Resampling.LANCZOS)
    return _png(im), size


def mask(raw: bytes, size: tuple[int, int], what: str = "maskBase64") -> bytes:
    """A region mask scaled to the picture's `size`: an L PNG of 0 (keep) and 255 (repaint).
    White repaints; transparent pixels keep."""
    im = _open(raw, what)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        black = Image.new("RGBA", im.size, (0, 0, 0, 255))
        im = Image.alpha_composite(black, im)
    im = im.convert("L").resize(size, Image.Resampling.BILINEAR)
    im = im.point(lambda v: 255 if v >= 128 else 0)
    if im.getbbox() is None:
        raise BadImage(f"{what} marks nothing to repaint (it is black everywhere)")
    return _png(im)


# -- describe ---------------------------------------------------------------------------

_RATIOS = ((1, 1), (5, 4), (4, 3), (3, 2), (16, 9), (2, 1), (21, 9))
_NAMES = {  # a few colour words Midjourney users write, by sRGB value
    "black": (12, 12, 14),
    "charcoal": (54, 57, 62),
    "grey": (128, 128, 128),
    "silver": (196, 198, 202),
    "white": (246, 246, 244),
    "crimson": (170, 20, 40),
    "red": (220, 40, 40),
    "coral": (246, 120, 100),
    "orange": (240, 140, 30),
    "amber": (250, 190, 40),
    "gold": (212, 175, 55),
    "yellow": (245, 230, 70),
    "olive": (120, 120, 40),
    "lime": (150, 220, 60),
    "green": (50, 150, 60),
    "emerald": (20, 120, 80),
    "teal": (20, 128, 128),
    "turquoise": (64, 210, 200),
    "sky blue": (120, 180, 235),
    "blue": (40, 80, 200),
    "navy": (20, 30, 90),
    "indigo": (75, 40, 130),
    "violet": (140, 90, 200),
    "purple": (110, 40, 120),
    "magenta": (210, 40, 160),
    "pink": (245, 170, 200),
    "brown": (120, 75, 40),
    "tan": (210, 180, 140),
    "beige": (235, 220, 190),
}


def aspect_text(width: int, height: int) -> str:
    """The common ratio nearest the picture's shape, as --ar writes it."""
    shape = width / height
    best = min(
        ((w, h) for a, b in _RATIOS for w, h in ((a, b), (b, a))),
        key=lambda r: abs(math.log(shape * r[1] / r[0])),
    )
    return f"{best[0]}:{best[1]}"


def _colour_name(rgb: tuple[int, int, int]) -> str:
    return min(_NAMES, key=lambda n: sum((a - b) ** 2 for a, b in zip(rgb, _NAMES[n], strict=True)))


def dominant_colours(png: bytes, count: int = 3) -> list[str]:
    """The names of the picture's main colours, most covering first, each once."""
    with Image.open(io.BytesIO(png)) as im:
        small = im.convert("RGB").resize((64, 64), Image.Resampling.BOX)
    quantised = small.quantize(8, method=Image.Quantize.MEDIANCUT)
    palette = quantised.getpalette() or []
    names: list[str] = []
    for _, index in sorted(quantised.getcolors() or [], reverse=True):
        r, g, b = palette[index * 3 : index * 3 + 3]
        name = _colour_name((r, g, b))
        if name not in names:
            names.append(name)
    while len(names) < count:
        names.append(names[-1] if names else "grey")
    return names[:count]


def describe(png: bytes, size: tuple[int, int], seed: int) -> list[str]:
    """Four prompts for a picture, as Describe writes them: from its shape (--ar), its main
    colours, its brightness and saturation; `seed` picks among the phrasings."""
    width, height = size
    ar = aspect_text(width, height)
    c1, c2, c3 = dominant_colours(png)
    with Image.open(io.BytesIO(png)) as im:
        rgb = im.convert("RGB")
        light = ImageStat.Stat(rgb.convert("L")).mean[0] / 255
        r, g, b = (v / 255 for v in ImageStat.Stat(rgb).mean)
    saturation = colorsys.rgb_to_hsv(r, g, b)[1]
    bright = (
        "dark, low-key"
        if light < 0.25
        else "moody, dimly lit"
        if light < 0.45
        else "softly lit"
        if light < 0.7
        else "bright, airy high-key"
    )
    vivid = "vivid, saturated" if saturation > 0.45 else "muted" if saturation < 0.15 else "warm"
    shape = (
        "panoramic" if width > height * 1.2 else "vertical" if height > width * 1.2 else "square"
    )
    rng = random.Random(seed)
    subject = rng.choice(("landscape", "still life", "street scene", "abstract composition"))
    style = rng.choice(("oil painting", "photograph", "watercolor", "digital illustration"))
    return [
        f"a {bright} {subject} in {c1} and {c2} tones, {vivid} colors --ar {ar}",
        f"{c1} dominated {style} with touches of {c2} and {c3}, {shape} framing --ar {ar}",
        f"an abstract study of {c2} shapes against a {c1} background, {bright} --ar {ar}",
        f"{shape} {style}, {vivid} {c1} palette, {c3} highlights, cinematic light --ar {ar}",
    ]


def describe_text(prompts: list[str]) -> str:
    """The four prompts as Midjourney's Describe message numbers them."""
    marks = ("1️⃣", "2️⃣", "3️⃣", "4️⃣")
    return "\n\n".join(f"{mark} {text}" for mark, text in zip(marks, prompts, strict=True))
