"""Every figure the performance budgets (docs/design.md) are judged by, in one run through
the real stack, browser included: it runs the benchmarks one after the other, each on a
throwaway database of its own, and prints their tables as they come.

    python bench/report.py                      # SQLite in temporary directories
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/report.py
    python bench/report.py --quick              # fewer jobs and a 20,000-job gallery

1. `push.py --only push`: provider SUCCESS -> the card painted in Chromium, p50/p95, 24
   jobs with webhooks on and off (at once, and through the page);
2. `throughput.py --webhooks both`: 200 imagines at once: jobs a minute, worker CPU per job,
   preview request latency, provider calls;
3. `gallery.py`: every gallery page at 1,000 and at 100,000 jobs, and their ratio.

A benchmark prints figures; none asserts anything about time. The machine's load average
is printed before each, since the figures move with it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def steps(quick: bool) -> list[tuple[str, list[str]]]:
    return [
        (
            "success -> painted (push.py)",
            ["push.py", "--only", "push", *(["--jobs", "12"] if quick else [])],
        ),
        (
            "throughput (throughput.py)",
            ["throughput.py", "--webhooks", "both", *(["--jobs", "100"] if quick else [])],
        ),
        (
            "gallery at two sizes (gallery.py)",
            ["gallery.py", *(["--sizes", "1000,20000", "--runs", "5"] if quick else [])],
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a first look")
    args = parser.parse_args()
    failed: list[str] = []
    began = time.monotonic()
    for title, command in steps(args.quick):
        load = os.getloadavg()[0]
        print(f"\n## {title}\n\nload average {load:.2f} on {os.cpu_count()} CPUs\n", flush=True)
        code = subprocess.call([sys.executable, str(HERE / command[0]), *command[1:]])
        if code:
            failed.append(f"{title} (exit {code})")
    print(f"\nall benchmarks ran in {(time.monotonic() - began) / 60:.1f} min")
    if failed:
        print("failed: " + "; ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
