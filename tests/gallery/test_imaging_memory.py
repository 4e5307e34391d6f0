"""Storing a large picture holds its pixels once: what keeps an ingest of the largest
admitted picture within its memory budget (the figures: bench/image_memory.py)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image as PILImage
from PIL import ImageChops

from gallery import imaging
from tests.gallery.factories import png_bytes


def images_made(call: Any) -> int:
    """How many image buffers Pillow allocates while `call` runs."""
    PILImage.core.reset_stats()
    call()
    return int(PILImage.core.get_stats()["new_count"])


def noisy(size: tuple[int, int], mode: str) -> PILImage.Image:
    image = PILImage.effect_noise(size, 60).convert(mode)
    if mode == "RGBA":
        image.putalpha(PILImage.effect_noise(size, 90))
    return image


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_decoding_keeps_the_decoded_pixels_without_copies(mode: str) -> None:
    out = io.BytesIO()
    noisy((300, 200), mode).save(out, format="PNG")
    # The decoder's buffer, and nothing more: neither the orientation step nor the mode
    # check copies a picture that needs neither.
    assert images_made(lambda: imaging.decode(out.getvalue())) == 1


def test_a_picture_that_needs_turning_or_converting_is_still_cleaned() -> None:
    out = io.BytesIO()
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    PILImage.new("L", (40, 20), 200).save(out, format="JPEG", exif=exif.tobytes())
    picture = imaging.decode(out.getvalue())
    assert picture.pixels is not None
    assert (picture.pixels.mode, picture.pixels.size) == ("RGB", (20, 40))
    assert picture.pixels.info == {}


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("factor", [2, 3, 5])
def test_the_banded_reduction_is_pillows_reduction(mode: str, factor: int) -> None:
    image = noisy((1201, 803), mode)
    bands = 50_000  # pixels a band: many bands, an uneven last one
    reduced = imaging._reduced(image, factor, band=bands)
    expected = image.reduce(factor)
    assert reduced.size == expected.size
    assert ImageChops.difference(reduced, expected).getbbox() is None


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize(("size", "out"), [((1000, 999), (512, 511)), ((700, 700), (1024, 1024))])
def test_the_banded_resize_matches_pillows_resize(
    mode: str, size: tuple[int, int], out: tuple[int, int]
) -> None:
    image = noisy(size, mode)
    resized = imaging._resized(image, out, band=50_000)
    expected = image.resize(out, PILImage.Resampling.LANCZOS)
    assert resized.size == expected.size
    # Rounding in the filter's float box: a level here and there, a few where an almost
    # transparent pixel is un-premultiplied. No seam between bands.
    diff = ImageChops.difference(resized, expected)
    assert max(high for _, high in diff.getextrema()) <= 4
    changed = sum(diff.convert("L").histogram()[2:])  # pixels off by more than one level
    assert changed < out[0] * out[1] / 1000


def test_a_large_grid_is_cut_one_tile_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    assert imaging.tiles_at_once(PILImage.new("RGB", (2048, 2048))) == 4
    assert imaging.tiles_at_once(PILImage.new("RGBA", (4900, 4900))) == 1
    # Fewer bytes allowed at once: a 64 px grid's tiles are cut one by one, and it still
    # comes out as four tiles in order.
    monkeypatch.setattr(imaging, "TILE_MEMORY", 3 * 32 * 32)
    picture = imaging.decode(png_bytes((64, 64)))
    cut: list[tuple[int, int, int, int]] = []
    real_crop = PILImage.Image.crop

    def crop(image: PILImage.Image, box: Any = None) -> PILImage.Image:
        if image is picture.pixels:
            cut.append(box)
            # A tile is cut only once the previous one's thumbnail is encoded.
            assert len(cut) == len(encoded_tiles) + 1
        return real_crop(image, box)

    encoded_tiles: list[int] = []
    real_webp = imaging._encode_webp

    def encode_webp(image: PILImage.Image, width: int, quality: int) -> imaging.Picture:
        if image is not picture.pixels:
            encoded_tiles.append(1)
        return real_webp(image, width, quality)

    monkeypatch.setattr(PILImage.Image, "crop", crop)
    monkeypatch.setattr(imaging, "_encode_webp", encode_webp)
    _, tiles = imaging.later_renditions(picture, grid=True)
    assert cut == imaging.tile_boxes(64, 64)
    assert [(t.width, t.height) for t in tiles] == [(32, 32)] * 4
    assert [tuple(thumb.width for thumb in t.thumbs) for t in tiles] == [(32, 32)] * 4


def test_a_webp_may_have_half_the_pixels_of_a_png(settings: Any) -> None:
    settings.MJ_IMAGE_MAX_PIXELS = 1_000_000
    webp, png = io.BytesIO(), io.BytesIO()
    PILImage.new("RGB", (1000, 600)).save(webp, format="WEBP")
    PILImage.new("RGB", (1000, 600)).save(png, format="PNG")
    assert imaging.decode(png.getvalue()).width == 1000
    with pytest.raises(imaging.ImageFetchError, match="too large") as caught:
        imaging.decode(webp.getvalue())
    assert caught.value.permanent
    assert imaging.pixel_cap("WEBP") == 500_000
