"""Turning downloaded bytes into what we store.

Pillow then decodes with a format allow-list and a per-call pixel cap on the declared size
(Pillow's process-wide MAX_IMAGE_PIXELS is left alone), and nothing we store keeps the
provider's metadata: a PNG picture keeps its pixel data as sent with every chunk but the
image's own dropped (re-encoding it would cost more than the rest of an ingest), anything
else is re-encoded as PNG; a grid tile is a PNG cut from the grid when first asked for,
thumbnails are WebP.

Encoding is the costly part of an ingest; Pillow releases the GIL while it encodes, so the
pieces of one picture are encoded on a few threads at once.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from PIL import Image as PILImage
from PIL import ImageOps

from gallery.downloads import ImageFetchError

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# Thumbnail widths, both WebP, for a srcset: the small one fills a gallery card (about
# 320 CSS px) on a 1x-1.5x screen; the large one the same card on a 2x-3x screen and the
# job page. A grid tile (1024 px from a 2048 px grid) gets both as well.
THUMB_WIDTH = 512
THUMB_LARGE_WIDTH = 1024
THUMB_WIDTHS = (THUMB_WIDTH, THUMB_LARGE_WIDTH)
THUMB_QUALITY = 82
# libwebp's effort, 0-6: 2 is within a few per cent of 4's size at about half its time.
THUMB_METHOD = 2
PNG_COMPRESS_LEVEL = 3
# Threads encoding the pieces of one picture at once.
ENCODE_THREADS = 4
# Bytes of grid tiles' pixels cut at once (tiles_at_once).
TILE_MEMORY = 24 * 1024 * 1024
# A thumbnail is box-reduced to within this factor of its width before its Lanczos resize
# (Pillow's reducing_gap), a band of about REDUCE_BAND pixels at a time.
REDUCING_GAP = 3.0
REDUCE_BAND = 2 * 1024 * 1024
# The share of MJ_IMAGE_MAX_PIXELS a WebP may have (pixel_cap).
WEBP_PIXEL_SHARE = 0.5

__all__ = ["ImageFetchError", "Picture", "decode", "renditions", "thumbnail", "tile_png"]


@dataclass(frozen=True)
class Picture:
    data: bytes
    format: str
    width: int
    height: int
    # The cleaned pixels, when `decode` made them: what renditions start from, so an ingest
    # decodes the provider's picture once. Not part of the picture's identity.
    pixels: PILImage.Image | None = field(default=None, compare=False, repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


# --- decoding and re-encoding -----------------------------------------------------------


def pixel_cap(fmt: str = "PNG") -> int:
    """Our cap, never above Pillow's own warning threshold (so that warning is moot).

    A WebP gets WEBP_PIXEL_SHARE of it: Pillow decodes one through a 4-byte RGBA canvas and
    a copy of that before the picture's own pixels, about 11 bytes a pixel where a PNG or a
    JPEG needs 3-4, and the cap is what keeps an ingest within its memory budget."""
    cap = settings.MJ_IMAGE_MAX_PIXELS
    if fmt == "WEBP":
        cap = int(cap * WEBP_PIXEL_SHARE)
    if PILImage.MAX_IMAGE_PIXELS:
        cap = min(cap, int(PILImage.MAX_IMAGE_PIXELS))
    return cap


def decode(data: bytes) -> Picture:
    """Validate untrusted bytes as a PNG, JPEG or WebP within the pixel cap.

    The cap is checked on the size the header declares, before any pixel is decoded; it is a
    per-call check rather than a change to Pillow's process-wide MAX_IMAGE_PIXELS, which
    threads decoding at once would race on. Pillow's own bomb error stays as a backstop.
    """
    try:
        with PILImage.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            if image.width * image.height > pixel_cap(str(image.format)):
                raise ImageFetchError(
                    f"The image is too large to decode: {image.width}x{image.height} pixels.",
                    permanent=True,
                )
            image.load()
            # A JPEG with a multi-picture extension opens as MPO: still a JPEG.
            fmt = "JPEG" if image.format == "MPO" else str(image.format)
            return Picture(
                data=data, format=fmt, width=image.width, height=image.height, pixels=_clean(image)
            )
    except PILImage.DecompressionBombError as exc:
        raise ImageFetchError(f"The image is too large to decode: {exc}", permanent=True) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageFetchError(f"Not a PNG, JPEG or WebP image: {exc}", permanent=True) from exc


def _clean(image: PILImage.Image) -> PILImage.Image:
    """Pixels only: EXIF orientation applied, then no EXIF, XMP, text chunks or ICC profile.

    `image` is ours (just decoded) and is changed in place: the orientation is applied to
    it, and it is returned as it is when already RGB or RGBA, so the largest admitted
    picture is held once, not three times over (bench/image_memory.py)."""
    ImageOps.exif_transpose(image, in_place=True)
    alpha = "A" in image.getbands() or "transparency" in image.info
    mode = "RGBA" if alpha else "RGB"
    # The same pixels in a plain Image: the decoder's buffers (a WebP's canvas) are let go
    # with the file object.
    clean = image._new(image.im) if image.mode == mode else image.convert(mode)
    clean.info = {}  # the PNG and WebP writers would copy an ICC profile from here
    return clean


def _encode_png(image: PILImage.Image) -> Picture:
    image.info = {}
    out = io.BytesIO()
    # Level 3: about three times faster than Pillow's default 6, and no larger on noisy art.
    image.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return Picture(data=out.getvalue(), format="PNG", width=image.width, height=image.height)


def _encode_webp(image: PILImage.Image, width: int, quality: int) -> Picture:
    if image.width > width:
        height = max(1, round(image.height * width / image.width))
        # What resize(reducing_gap=3.0) does, with the box reduction made a band of rows
        # at a time: Pillow reduces and resizes RGBA through a premultiplied copy of the
        # whole image (160 MB for the largest admitted picture).
        factor = int(image.width / width / REDUCING_GAP)
        if factor > 1:
            image = _reduced(image, factor)
        image = _resized(image, (width, height))
    image.info = {}
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=quality, method=THUMB_METHOD)
    return Picture(data=out.getvalue(), format="WEBP", width=image.width, height=image.height)


def _reduced(image: PILImage.Image, factor: int, band: int = REDUCE_BAND) -> PILImage.Image:
    """image.reduce(factor), the same pixels, made from bands of about REDUCE_BAND pixels
    (whole blocks of `factor` rows each, so every output pixel averages the same block)."""
    if band >= image.width * image.height:
        return image.reduce(factor)
    rows = max(1, band // (image.width * factor)) * factor
    out = PILImage.new(image.mode, (-(-image.width // factor), -(-image.height // factor)))
    for top in range(0, image.height, rows):
        strip = image.crop((0, top, image.width, min(top + rows, image.height)))
        out.paste(strip.reduce(factor), (0, top // factor))
    return out


def _resized(
    image: PILImage.Image, size: tuple[int, int], band: int = REDUCE_BAND
) -> PILImage.Image:
    """image.resize(size, LANCZOS), the same pixels, made a band of output rows at a time:
    each band is resized from the input rows under it and the filter's reach around them
    (Lanczos reaches 3 input pixels per output pixel's width), through Pillow's `box`."""
    width, height = size
    scale = image.height / height
    reach = 3 * max(scale, 1.0) + 2
    rows = max(1, int(band // (image.width * max(scale, 1.0))))
    if rows >= height:
        return image.resize(size, PILImage.Resampling.LANCZOS)
    out = PILImage.new(image.mode, size)
    for first in range(0, height, rows):
        last = min(first + rows, height)
        top = max(0, math.floor(first * scale - reach))
        bottom = min(image.height, math.ceil(last * scale + reach))
        strip = image.crop((0, top, image.width, bottom))
        box = (0.0, first * scale - top, float(image.width), last * scale - top)
        out.paste(
            strip.resize((width, last - first), PILImage.Resampling.LANCZOS, box=box), (0, first)
        )
    return out


def _opened_clean(picture: Picture) -> PILImage.Image:
    if picture.pixels is not None:
        return picture.pixels
    with PILImage.open(io.BytesIO(picture.data)) as image:
        return _clean(image)


def reencode_png(picture: Picture) -> Picture:
    """Re-encode as PNG without metadata (EXIF, XMP, text chunks, ICC) from the provider."""
    return _encode_png(_opened_clean(picture))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What a still PNG needs to show its pixels as they are: the header, the palette and its
# transparency, the data. Everything else (text, XMP, EXIF, ICC, time, gamma...) is dropped.
_PNG_KEPT = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}


def stripped_png(picture: Picture) -> Picture | None:
    """A PNG with only the chunks that make its pixels, without re-encoding them; None when
    it cannot be kept that way (not a PNG, animated, a bad chunk, or an EXIF orientation that
    needs the pixels turned), so the caller re-encodes it."""
    if picture.format != "PNG" or not picture.data.startswith(PNG_SIGNATURE):
        return None
    # Views, not slices: the kept chunks are copied once, by the join.
    data = memoryview(picture.data)
    kept: list[bytes | memoryview] = [PNG_SIGNATURE]
    at = len(PNG_SIGNATURE)
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = bytes(data[at + 4 : at + 8])
        end = at + 12 + length
        if end > len(data):
            return None
        if zlib.crc32(data[at + 4 : end - 4]) != struct.unpack(">I", data[end - 4 : end])[0]:
            return None
        if kind in (b"acTL", b"fcTL", b"fdAT"):
            return None  # animated: the re-encode keeps the still image only
        if kind == b"eXIf" and _orientation(bytes(data[at + 8 : end - 4])) not in (None, 1):
            return None
        if kind in _PNG_KEPT:
            kept.append(data[at:end])
        at = end
        if kind == b"IEND":
            break
    else:
        return None  # no IEND
    return Picture(data=b"".join(kept), format="PNG", width=picture.width, height=picture.height)


def _orientation(exif: bytes) -> int | None:
    try:
        value = PILImage.Exif()
        value.load(exif)
        return value.get(0x0112)
    except Exception:  # unreadable EXIF: be safe and let the re-encode apply or drop it
        return 0


def tile_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The four quarters of a grid, left to right, top to bottom.

    An odd size splits one pixel unevenly (the right or bottom tiles are a pixel larger),
    so every pixel belongs to exactly one tile.
    """
    mid_x, mid_y = width // 2, height // 2
    return [
        (0, 0, mid_x, mid_y),
        (mid_x, 0, width, mid_y),
        (0, mid_y, mid_x, height),
        (mid_x, mid_y, width, height),
    ]


def _grid_boxes(image: PILImage.Image) -> list[tuple[int, int, int, int]]:
    if image.width < 2 or image.height < 2:
        raise ImageFetchError(
            f"A {image.width}x{image.height} image is too small to be a grid.", permanent=True
        )
    return tile_boxes(image.width, image.height)


def tiles_at_once(image: PILImage.Image) -> int:
    """How many of a grid's tiles are cut and encoded at once: all four for the grids
    providers send (a 2048 px grid's tile is 3 MB of pixels), one at a time for a picture
    so large that four copies of its quarters would double what it holds."""
    quarter = image.width * image.height * len(image.getbands()) // 4
    return max(1, min(4, TILE_MEMORY // max(1, quarter)))


def tile_png(picture: Picture, index: int) -> Picture:
    """Tile `index` (1-4, by position) of a grid as a PNG: cut when it is first asked for
    (gallery.ingest.full_picture), as most tiles are only ever seen as thumbnails."""
    clean = _opened_clean(picture)
    return _encode_png(clean.crop(_grid_boxes(clean)[index - 1]))


def thumbnails(
    picture: Picture, widths: Iterable[int] = THUMB_WIDTHS, quality: int = THUMB_QUALITY
) -> list[Picture]:
    """WebP thumbnails at each width (never wider than the picture), in the order given."""
    clean = _opened_clean(picture)
    return [_encode_webp(clean, width, quality) for width in widths]


def thumbnail(picture: Picture, width: int = THUMB_WIDTH, quality: int = THUMB_QUALITY) -> Picture:
    return thumbnails(picture, (width,), quality)[0]


@dataclass(frozen=True)
class Rendition:
    """What we store of one whole picture: a clean PNG and its WebP thumbnails
    (THUMB_WIDTHS)."""

    png: Picture
    thumbs: tuple[Picture, ...]


@dataclass(frozen=True)
class TileRendition:
    """What we store of a grid's tile when its job ends: its size and WebP thumbnails
    (THUMB_WIDTHS). Its own PNG is cut from the grid when first asked for (`tile_png`)."""

    width: int
    height: int
    thumbs: tuple[Picture, ...]


def renditions(picture: Picture, *, grid: bool) -> tuple[Rendition, list[TileRendition]]:
    """Everything stored of a picture as its job ends: its rendition, then for a grid its
    four tiles' (decoded and cleaned once, the pieces encoded on ENCODE_THREADS threads).
    `first_rendition` and `later_renditions` are the same work in two steps."""
    first = first_rendition(picture)
    large, tiles = later_renditions(picture, grid=grid)
    return Rendition(png=first.png, thumbs=(*first.thumbs, large)), tiles


def first_rendition(picture: Picture) -> Rendition:
    """What a finished job needs to show: the picture as a clean PNG and its small thumbnail
    (THUMB_WIDTH) only. The PNG keeps the provider's pixel data when it can (`stripped_png`),
    so this costs a resize and one small WebP."""
    clean = _opened_clean(picture)
    whole = stripped_png(picture)
    if whole is not None:  # the usual case: one encode, no thread needed
        return Rendition(png=whole, thumbs=(_encode_webp(clean, THUMB_WIDTH, THUMB_QUALITY),))
    with ThreadPoolExecutor(max_workers=2) as pool:
        png = pool.submit(_encode_png, clean)
        small = pool.submit(_encode_webp, clean, THUMB_WIDTH, THUMB_QUALITY)
        return Rendition(png=png.result(), thumbs=(small.result(),))


def later_renditions(picture: Picture, *, grid: bool) -> tuple[Picture, list[TileRendition]]:
    """The rest, made once the job shows as finished: the picture's large thumbnail
    (THUMB_LARGE_WIDTH) and, for a grid, each tile's thumbnails."""
    clean = _opened_clean(picture)
    boxes = _grid_boxes(clean) if grid else []
    at_once = tiles_at_once(clean)
    made: list[TileRendition] = []
    with ThreadPoolExecutor(max_workers=ENCODE_THREADS) as pool:
        large = pool.submit(_encode_webp, clean, THUMB_LARGE_WIDTH, THUMB_QUALITY)
        if at_once < len(boxes):
            large.result()  # a picture this large: its pieces one after another
        for start in range(0, len(boxes), at_once):
            # Each batch's tiles are let go before the next batch is cut.
            made += _tile_renditions(pool, [clean.crop(box) for box in boxes[start:][:at_once]])
        return large.result(), made


def _tile_renditions(pool: ThreadPoolExecutor, tiles: list[PILImage.Image]) -> list[TileRendition]:
    # A thumbnail is never wider than its image: widths that come to the same size (a
    # 512 px tile's two) are encoded once.
    encoded = [
        {
            size: pool.submit(_encode_webp, tile, size, THUMB_QUALITY)
            for size in dict.fromkeys(min(width, tile.width) for width in THUMB_WIDTHS)
        }
        for tile in tiles
    ]
    return [
        TileRendition(
            width=tile.width,
            height=tile.height,
            thumbs=tuple(sizes[min(width, tile.width)].result() for width in THUMB_WIDTHS),
        )
        for sizes, tile in zip(encoded, tiles, strict=True)
    ]
