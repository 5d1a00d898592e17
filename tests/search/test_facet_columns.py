"""The facet columns' own arithmetic, away from the database: counting many-valued columns
for a few matches by slot gives what counting them all gives, and the best few of many ranks
are those a whole sort gives."""

from __future__ import annotations

import numpy as np

from kai.search.facet_index import _Pairs
from kai.search.repository import best_ranked, extreme_ids


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


def test_the_best_ranked_are_those_of_a_whole_sort_through_ties() -> None:
    rng = np.random.default_rng(5)
    for size, how_many in ((0, 10), (5, 10), (3_000, 1_000), (20_000, 1_000), (2_000, 1)):
        ids = np.array([rng.bytes(16) for _ in range(size)], dtype="S16")
        # Few distinct ranks: the last place is shared by many.
        ranks = rng.integers(0, 7, size).astype(np.float64)
        pairs = zip(ids.tolist(), ranks.tolist(), strict=True)
        everything = sorted(pairs, key=lambda pair: (-pair[1], pair[0]))
        expected = [material_id for material_id, _ in everything[:how_many]]
        assert best_ranked(ids, ranks, how_many).tolist() == expected, (size, how_many)


def test_the_extreme_ids_are_those_of_a_whole_sort_through_shared_beginnings() -> None:
    rng = np.random.default_rng(9)
    # Ids of one moment share their first bytes (UUIDv7): few distinct beginnings.
    beginnings = [rng.bytes(8) for _ in range(5)]
    for size, how_many in ((1, 1), (7, 3), (5_000, 21), (5_000, 1), (40, 40), (3_000, 2_999)):
        ids = np.array(
            [beginnings[rng.integers(0, 5)] + rng.bytes(8) for _ in range(size)], dtype="S16"
        )
        for largest in (True, False):
            chosen = sorted(ids[extreme_ids(ids, how_many, largest)].tolist())
            everything = sorted(ids.tolist())
            expected = everything[-how_many:] if largest else everything[:how_many]
            assert chosen == expected, (size, how_many, largest)
