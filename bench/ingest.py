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

import _harness  # noqa: F401  (first: sets up Django)
from PIL import Image as PILImage

from gallery import imaging


def noisy_png(size: int) -> bytes:
    gradient = PILImage.linear_gradient("L").resize((size, size))
    noise = PILImage.effect_noise((size, size), 40)
    picture = PILImage.merge("RGB", (gradient, noise, gradient.rotate(90)))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def measure(data: bytes, *, grid: bool, runs: int) -> tuple[float, float, int]:
    walls, cpus, stored = [], [], 0
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        whole, tiles = imaging.renditions(imaging.decode(data), grid=grid)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        thumbs = [*whole.thumbs, *(thumb for tile in tiles for thumb in set(tile.thumbs))]
        stored = len(whole.png.data) + sum(len(thumb.data) for thumb in thumbs)
    return statistics.median(walls), statistics.median(cpus), stored


def measure_tile(data: bytes, *, runs: int) -> tuple[float, float, int]:
    walls, cpus, stored = [], [], 0
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        stored = len(imaging.tile_png(imaging.decode(data), 1).data)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), stored


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
        wall, cpu, stored = measure(noisy_png(size), grid=grid, runs=args.runs)
        print(f"{label:<22} {wall * 1000:>8.0f} {cpu * 1000:>8.0f} {stored / 1024:>10.0f}")
    for label, size in (("a tile of 1024 px", 1024), ("a tile of 2048 px", 2048)):
        wall, cpu, stored = measure_tile(noisy_png(size), runs=args.runs)
        print(f"{label:<22} {wall * 1000:>8.0f} {cpu * 1000:>8.0f} {stored / 1024:>10.0f}")


if __name__ == "__main__":
    main()
