from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image as PILImage

from gallery import imaging
from tests.gallery.factories import png_bytes


def test_decode_accepts_png_jpeg_and_webp() -> None:
    for fmt in ("PNG", "JPEG", "WEBP"):
        out = io.BytesIO()
        PILImage.new("RGB", (40, 30), "#336699").save(out, format=fmt)
        picture = imaging.decode(out.getvalue())
        assert (picture.format, picture.width, picture.height) == (fmt, 40, 30)


def test_decode_refuses_an_image_over_the_pixel_cap(settings: Any) -> None:
    settings.MJ_IMAGE_MAX_PIXELS = 1_000_000
    imaging.decode(png_bytes((1000, 1000)))  # exactly at the cap
    with pytest.raises(imaging.ImageFetchError, match="too large") as caught:
        imaging.decode(png_bytes((1001, 1000)))
    assert caught.value.permanent
    assert PILImage.MAX_IMAGE_PIXELS != 1_000_000  # Pillow's global is left alone


def test_decode_refuses_other_formats() -> None:
    out = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(out, format="GIF")
    with pytest.raises(imaging.ImageFetchError, match="Not a PNG"):
        imaging.decode(out.getvalue())
    with pytest.raises(imaging.ImageFetchError):
        imaging.decode(b"<html>not an image</html>")
