"""Do sign-up, password reset and resend take as long for a taken address as for a free one?

Against one `kai serve --no-worker` (argon2id at its production cost, rate limits off) on a
fresh embedded PostgreSQL, with one verified account made by `kai admin create-user`. Each
round sends, in a shuffled order, one request of every case on a fresh connection:

- password reset and confirmation resend, for the account's address and for an unknown one;
- sign-up with the account's address (taken) and with a new one (free; no organization).

Reported per case: the median, 10th and 90th percentile time to the answer, in ms, and for
each pair the difference of the medians. The worker is off: what is measured is the request,
which is all an outsider can time (the emails are sent later, by a job). The tests check
the same thing structurally (tests/security/test_email.py): both requests of a pair write
the same rows.

    PYTHONPATH=src .venv/bin/python -m benchmarks.email_oracle --rounds 60
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.run import (
    BENCH_EMAIL,
    RESULTS_DIR,
    Request,
    ServeProcess,
    call,
    create_account,
    machine_info,
    scratch_dir,
)

PASSWORD = "quartzite threshold 4417"  # noqa: S105 - a throwaway password of the run
PAIRS = {
    "password reset": ("/api/v1/auth/password-reset", "email"),
    "resend confirmation": ("/api/v1/auth/verify-email/resend", "email"),
    "sign-up": ("/api/v1/auth/signup", "signup"),
}


def _body(kind: str, address: str) -> str:
    if kind == "signup":
        return json.dumps({"email": address, "password": PASSWORD, "name": "Bench Mark"})
    return json.dumps({"email": address})


def _timed(port: int, path: str, body: str) -> tuple[float, int, bytes]:
    request = Request(method="POST", headers=("Content-Type: application/json",), body=body)
    started = time.perf_counter()
    status, answer = call(port, path, request)
    return (time.perf_counter() - started) * 1000, status, answer


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    deciles = statistics.quantiles(ordered, n=10)
    return {
        "median_ms": round(statistics.median(ordered), 2),
        "p10_ms": round(deciles[0], 2),
        "p90_ms": round(deciles[-1], 2),
    }


def measure(port: int, rounds: int, warmup: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {}
    cases = [(pair, known) for pair in PAIRS for known in (True, False)]
    for round_number in range(warmup + rounds):
        random.shuffle(cases)
        for pair, known in cases:
            path, kind = PAIRS[pair]
            address = BENCH_EMAIL if known else f"nobody-{uuid.uuid4().hex[:12]}@quarry.example"
            elapsed, status, answer = _timed(port, path, _body(kind, address))
            if status != 202:
                raise RuntimeError(f"{pair} answered {status}: {answer[:300]!r}")
            if round_number >= warmup:
                samples.setdefault(f"{pair}, {'taken' if known else 'free'}", []).append(elapsed)
    results: dict[str, Any] = {case: _summary(values) for case, values in samples.items()}
    for pair in PAIRS:
        taken, free = results[f"{pair}, taken"], results[f"{pair}, free"]
        results[f"{pair}: taken - free"] = {
            "median_ms": round(taken["median_ms"] - free["median_ms"], 2)
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.email_oracle", description=__doc__)
    parser.add_argument("--rounds", type=int, default=60, help="measured rounds")
    parser.add_argument("--warmup", type=int, default=5, help="discarded rounds first")
    parser.add_argument("--label", default="", help="what was measured (a commit, a variant)")
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / "email-oracle.json", help="results file"
    )
    args = parser.parse_args(argv)
    with scratch_dir() as scratch:
        server = ServeProcess(scratch / "data", worker=False)
        server.start()
        server.wait_ready()
        create_account(server.data_dir)
        results = measure(server.port, args.rounds, args.warmup)
        server.stop()
    report = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "label": args.label,
        "rounds": args.rounds,
        "machine": machine_info(None),
        "results": results,
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
