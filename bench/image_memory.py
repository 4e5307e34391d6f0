"""Peak memory of storing the largest picture the limits admit (MJ_IMAGE_MAX_PIXELS at
MJ_INGEST_MAX_BYTES): the ingest's decode and first rendition, then the later renditions
(the large thumbnail and a grid's four tiles' thumbnails) from the stored PNG, as the worker
does them, then a tile's PNG cut from the stored PNG, as the first request for it does.

    python bench/image_memory.py
    python bench/image_memory.py --pixels 20000000     # a smaller picture

Each picture is stored by a fresh Python process with Django set up, so the figure is the
whole process's peak resident set (VmHWM), what an operator sizes a worker by; the
process's resident set before the picture is printed beside it. The budget
(docs/design.md, issue 14) is 300 MB for the whole process. A benchmark prints figures; it
asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _harness  # noqa: F401  (first: sets up Django)
from django.conf import settings
from PIL import Image as PILImage

from gallery import imaging
from mjweb import processes

BUDGET_MB = 300
HERE = Path(__file__).resolve().parent


def picture(pixels: int, fmt: str, mode: str, max_bytes: int) -> bytes:
    """A `pixels`-pixel picture in `fmt` that fits in `max_bytes`: smooth art with some
    grain, the most a provider could send within both caps."""
    side = math.isqrt(pixels)
    gradient = PILImage.linear_gradient("L").resize((side, side))
    bands = [gradient, gradient.rotate(90), gradient.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)]
    if mode == "RGBA":
        bands.append(PILImage.radial_gradient("L").resize((side, side)))
    image = PILImage.merge(mode, bands)
    for grain in (24, 12, 6, 3, 0):
        noisy = image
        if grain:
            noise = PILImage.effect_noise((side, side), grain).convert(mode)
            noisy = PILImage.blend(image, noise, 0.08)
        out = io.BytesIO()
        if fmt == "JPEG":
            noisy.save(out, format="JPEG", quality=95)
        else:
            noisy.save(out, format=fmt, compress_level=6)
        if out.tell() <= max_bytes:
            return out.getvalue()
    raise SystemExit(f"cannot fit a {side}x{side} {fmt} in {max_bytes} bytes")


CHILD = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import _harness  # noqa: F401
from gallery import imaging
from mjweb import processes

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

path, stage = sys.argv[2], sys.argv[3]
with open(path, "rb") as f:
    data = f.read()
before = rss_mb()
picture = imaging.decode(data)
if stage == "first":
    made = imaging.first_rendition(picture)
    out = [made.png.data, *(t.data for t in made.thumbs)]
elif stage == "later":
    large, tiles = imaging.later_renditions(picture, grid=True)
    out = [large.data, *(t.data for r in tiles for t in r.thumbs)]
else:
    out = [imaging.tile_png(picture, 4).data]
# VmHWM, not ru_maxrss: the latter keeps the peak of the process that started this one.
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
print(json.dumps({"before": before, "peak": peak, "stored": sum(map(len, out))}))
"""


def measure(path: Path, stage: str, pixels: int) -> dict[str, float]:
    # The allocator settings `manage.py worker` gives its clusters.
    env = {**processes.MALLOC_ENV, **os.environ, "MJ_IMAGE_MAX_PIXELS": str(pixels)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(HERE), str(path), stage],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode:
        raise SystemExit(f"storing {path.name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pixels", type=int, default=settings.MJ_IMAGE_MAX_PIXELS)
    args = parser.parse_args()
    max_bytes = settings.MJ_INGEST_MAX_BYTES
    cases = [("PNG", "RGB"), ("PNG", "RGBA"), ("JPEG", "RGB"), ("WEBP", "RGB")]
    print(
        f"{args.pixels / 1e6:.0f} Mpx pictures within {max_bytes / 2**20:.0f} MiB, "
        f"budget {BUDGET_MB} MB for the whole process"
    )
    print(f"{'picture':<12} {'Mpx':>4} {'bytes':>8} {'stage':<7} {'before':>8} {'peak':>8}")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="mjweb-bench-") as tmp:
        for fmt, mode in cases:
            # A WebP's cap is lower (gallery.imaging.pixel_cap).
            pixels = int(args.pixels * imaging.WEBP_PIXEL_SHARE) if fmt == "WEBP" else args.pixels
            data = picture(pixels, fmt, mode, max_bytes)
            path = Path(tmp) / f"picture.{fmt.lower()}"
            path.write_bytes(data)
            stored = path
            for stage in ("first", "later", "tile"):
                if stage == "later":
                    # `complete` and a tile's first request decode the PNG the first stage
                    # stored.
                    with PILImage.open(path) as image:
                        stored = Path(tmp) / "stored.png"
                        image.convert(mode).save(stored, format="PNG", compress_level=3)
                got = measure(stored, stage, args.pixels)
                worst = max(worst, got["peak"])
                name, size = f"{fmt} {mode}", f"{len(data) / 2**20:.1f}Mi"
                print(
                    f"{name:<12} {pixels / 1e6:>4.0f} {size:>8} {stage:<7} "
                    f"{got['before']:>6.0f}MB {got['peak']:>6.0f}MB"
                )
    print(f"worst peak {worst:.0f} MB ({'within' if worst <= BUDGET_MB else 'over'} budget)")


if __name__ == "__main__":
    main()
