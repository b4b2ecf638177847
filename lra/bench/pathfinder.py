"""`lra bench pathfinder`: the speed of generate_pathfinder (PNG writing included) against the original generator.

Generates --n images into a temporary folder with --workers processes and prints the rate, the rate per worker,
the projected time for a full 200,000-image level, and the speed-up over the original generator's documented
0.27 s per image on one core (Linsley et al., NeurIPS 2018; README, "Pathfinder and Path-X"). The original
is not run here: it needs SciPy's removed imresize and OpenCV.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from lra.data.generate.pathfinder import DIFFICULTIES, RESOLUTIONS, generate_pathfinder

PROJECTED = 200_000
# Seconds per image of the original generator (snakes2.py) on one core, at 32 px.
ORIGINAL_SECONDS_PER_IMAGE = 0.27


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lra bench pathfinder", description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=32, choices=RESOLUTIONS)
    parser.add_argument("--difficulty", type=int, default=14, choices=sorted(DIFFICULTIES), help="contour length")
    parser.add_argument("--n", type=int, default=2000, help="images to generate")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    workers = args.workers or os.cpu_count() or 1
    # Shards small enough that every worker gets several, so the pool stays busy to the end.
    shard_size = max(1, min(1000, args.n // (4 * workers)))

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        generate_pathfinder(folder, args.resolution, args.difficulty, args.n, args.seed, workers, shard_size)
        seconds = time.perf_counter() - start

    rate = args.n / seconds
    per_worker = rate / workers
    print(
        f"Pathfinder generation: pathfinder{args.resolution}/{DIFFICULTIES[args.difficulty]}, {args.n} images, "
        f"{workers} workers, {os.cpu_count()} cores, PNG writing included"
    )
    print(f"  generate_pathfinder     {seconds:8.2f} s  {rate:8.1f} images/s  ({per_worker:.1f} images/s per worker)")
    print(f"  projected {PROJECTED:,} images: {PROJECTED / rate / 60:.1f} min")
    if args.resolution == 32:
        print(
            f"  per worker vs the original's documented {ORIGINAL_SECONDS_PER_IMAGE} s/image on one core: "
            f"{per_worker * ORIGINAL_SECONDS_PER_IMAGE:.0f}x (the original was not run here)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
