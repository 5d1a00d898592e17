"""What embedding one new search query costs (all-MiniLM-L6-v2 in numpy, as hybrid search does).

    .venv/bin/python -m benchmarks.query_embedding [--queries 200]

Prints the processor and wall milliseconds of each distinct query's embedding (the query cache
is bypassed), at the 50th and 90th percentile.
"""

from __future__ import annotations

import argparse
import statistics
import time

from kai.search.semantic import QueryEmbeddings

WORDS = [
    "warm",
    "grey",
    "stone",
    "for",
    "a",
    "bathroom",
    "floor",
    "light",
    "oak",
    "parquet",
    "honed",
    "limestone",
    "tiles",
    "blue",
    "glass",
    "mosaic",
    "terrazzo",
    "brushed",
    "brass",
    "kitchen",
    "splashback",
    "outdoor",
    "slate",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    arguments = parser.parse_args()
    queries = QueryEmbeddings(size=1)
    queries.warm()
    cpu: list[float] = []
    wall: list[float] = []
    for number in range(arguments.queries):
        words = [WORDS[(number + offset) % len(WORDS)] for offset in range(3 + number % 9)]
        text = " ".join(words) + f" {number}"
        started_cpu, started = time.process_time(), time.perf_counter()
        queries._embed_one(text)
        cpu.append((time.process_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    for name, values in (("processor", cpu), ("wall", wall)):
        values.sort()
        print(
            f"{name} ms: p50 {statistics.median(values):.1f},"
            f" p90 {values[int(len(values) * 0.9)]:.1f}"
        )


if __name__ == "__main__":
    main()
