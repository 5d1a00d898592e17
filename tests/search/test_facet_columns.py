"""The facet columns' own arithmetic, away from the database: counting many-valued columns
for a few matches by slot gives what counting them all gives."""

from __future__ import annotations

import numpy as np

from kai.search.facet_index import _Pairs


def test_counts_of_a_few_slots_are_those_of_a_pass_over_every_pair() -> None:
    rng = np.random.default_rng(3)
    slots = rng.integers(0, 20_000, 60_000)
    codes = rng.integers(0, 40, 60_000)
    pairs = _Pairs(slots, codes)
    for kept_count in (0, 1, 50, 2_000, 15_000):
        kept = np.zeros(20_000, bool)
        kept[rng.choice(20_000, kept_count, replace=False)] = True
        expected = np.bincount(codes[kept[slots]], minlength=40)
        assert pairs.counts(kept, 40).tolist() == expected.tolist(), kept_count
    # A slot with several pairs, and one with none, among few kept.
    kept = np.zeros(20_000, bool)
    kept[[int(slots[0]), 19_999]] = True
    expected = np.bincount(codes[kept[slots]], minlength=40)
    assert pairs.counts(kept, 40).tolist() == expected.tolist()
