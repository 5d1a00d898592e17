"""What a recognized photo's shown copy costs beside the decode that recognizing it needs.

    .venv/bin/python -m benchmarks.photo_copy [--rounds 5]

A synthetic 12-megapixel JPEG (noise over a gradient: a hard case for WebP), decoded and cut
into a 224 px view as a recognition does, then made into the 1024 px WebP that is shown.
Prints the median processor milliseconds of each.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from kai.kit.images import ImageLimits
from kai.recognition.service import shown_copy
from kai.vision.preprocessing import prepare_upload


def _photo() -> bytes:
    noise = np.random.default_rng(0).integers(0, 255, (3000, 4000, 3)).astype(np.uint8)
    ramp = np.add.outer(np.arange(3000) % 200, np.arange(4000) % 200)[..., None] // 2
    out = io.BytesIO()
    Image.fromarray((noise // 4 + ramp).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def _median_ms(work: Callable[[], object], rounds: int) -> float:
    spent = []
    for _ in range(rounds):
        started = time.process_time()
        work()
        spent.append((time.process_time() - started) * 1000)
    return statistics.median(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    data, limits = _photo(), ImageLimits()
    prepared = _median_ms(lambda: prepare_upload(data, sides=[224], limits=limits), rounds)
    shown = _median_ms(lambda: shown_copy(data, limits), rounds)
    print(f"JPEG of {len(data)} bytes, 4000 x 3000")
    print(f"decoded and cut for recognizing: {prepared:.1f} ms of processor")
    print(f"the shown copy (1024 px WebP): {shown:.1f} ms of processor")


if __name__ == "__main__":
    main()
