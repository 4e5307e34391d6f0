"""What storing one finished job costs the worker: decoding the provider's picture and
making everything we keep of it as its job ends (the picture with two WebP thumbnails, a
grid's four tiles' thumbnails), for a 1024 px and a 2048 px grid and an upscale; then what
the first request for one tile's own PNG costs (the grid decoded from storage, the tile cut
and encoded: gallery.ingest.full_picture). Prints wall and CPU time (median of several
runs) and the bytes stored.

    python bench/ingest.py
    python bench/ingest.py --runs 9

The test pictures are noisy gradients: noise is the worst case for PNG and WebP encoders,
so real Midjourney art is cheaper. A benchmark prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import _harness  # noqa: F401  (first: sets up Django)
from PIL import Image as PILImage

from gallery import imaging

T = TypeVar("T")


def noisy_png(size: int) -> bytes:
    gradient = PILImage.linear_gradient("L").resize((size, size))
    noise = PILImage.effect_noise((size, size), 40)
    picture = PILImage.merge("RGB", (gradient, noise, gradient.rotate(90)))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def timed(work: Callable[[], T], runs: int) -> tuple[float, float, T]:
    """Median wall and CPU seconds of `work` over `runs` runs, and what its last run made."""
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        made = work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), made


def stored_bytes(made: tuple[imaging.Rendition, list[imaging.TileRendition]]) -> int:
    """What storing a job keeps as it ends: its PNG, its thumbnails and its tiles' (a size
    two widths share is one file)."""
    whole, tiles = made
    thumbs = [
        *whole.thumbs,
        *(t for tile in tiles for t in {id(t): t for t in tile.thumbs}.values()),
    ]
    return len(whole.png.data) + sum(len(thumb.data) for thumb in thumbs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'picture':<22} {'wall ms':>8} {'cpu ms':>8} {'stored KB':>10}")
    for label, size, grid in (
        ("grid 1024 px", 1024, True),
        ("grid 2048 px", 2048, True),
        ("upscale 2048 px", 2048, False),
    ):
        data = noisy_png(size)
        wall, cpu, made = timed(
            lambda data=data, grid=grid: imaging.renditions(imaging.decode(data), grid=grid),
            args.runs,
        )
        stored = stored_bytes(made)
        print(f"{label:<22} {wall * 1000:>8.0f} {cpu * 1000:>8.0f} {stored / 1024:>10.0f}")
    for label, size in (("a tile of 1024 px", 1024), ("a tile of 2048 px", 2048)):
        data = noisy_png(size)
        wall, cpu, tile = timed(
            lambda data=data: imaging.tile_png(imaging.decode(data), 1), args.runs
        )
        stored = len(tile.data)
        print(f"{label:<22} {wall * 1000:>8.0f} {cpu * 1000:>8.0f} {stored / 1024:>10.0f}")


if __name__ == "__main__":
    main()
