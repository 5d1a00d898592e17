"""The catalog's columns and postings kept in this process's memory: facet counts, filters and
full-text matches without a pass over the matching rows.

Counting a search's facets in PostgreSQL costs the executor's time per matching row: at 100,000
materials, browsing everything took ~490 ms, the facets of a common word ~140 ms
(benchmarks/README.md). Here each organization's catalog is held as numpy columns, one entry
(a slot) per material: its category, status, price, supplier, manufacturer, tags, and the
property values that facets count and filters compare, and the postings of its full-text
documents (`kai.search.words` evaluates a query over them). Filters, counts and ordering are a
few passes over arrays.

The columns follow the database rather than replace it. Before each use, a small statement
asks whether any row was written by a transaction at or past the oldest one that was still
running when the columns were last read (`materials.changed_xid`, indexed by organization),
and that statement's own oldest running transaction, which the next read starts from; only
when there are such rows does a second one read them. A transaction
that commits later than that read has a number at or past it, so nothing it wrote is missed;
one that had finished is in what was read. A material removed for good, a change of the
category tree, or of which keys are counted, reads the columns anew.

PostgreSQL keeps the language (the documents' lexemes, a query's tsquery), answers what the
postings cannot (a phrase: `kai_text_ranked`, packed ids and ranks), and is read for each
page's materials.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from kai.kit.driver import Driver
from kai.search import words

NONE = -1
# Organizations whose columns a process keeps, and the slots (materials) all of them may hold
# (about 1.9 GB at 1,000,000: benchmarks/README.md), least recently used dropped first (a
# dropped one is read again when next searched; one larger catalog is still held alone).
CACHED_ORGANIZATIONS = 64
CACHED_SLOTS = 1_000_000
# Read everything again once this share of the slots holds removed or deleted materials.
MOST_DEAD = 0.5
# Answers worked out from one state of the columns, kept until they change: the most recently
# used this many (browsing's counts, spelling corrections, suggestions as typed).
REMEMBERED = 1024
# Same arithmetic as the facet SQL's `width_bucket`: see `buckets`.
BUCKETS = 5

# A first read goes by parts, in the order of the live materials' codes (an index has it), so
# that no statement of a large catalog runs for long: each part is a statement of its own.
_FULL = "m.deleted_at IS NULL AND lower(m.code) > :after ORDER BY lower(m.code) LIMIT :part"
PART = 50_000
_SINCE = "m.changed_xid >= CAST(:since AS xid8)"
# Rows are numbered 0, 1, ... in the order of their codes (so in a part read in that order the
# numbers are those of its rows alone). One statement, so one snapshot: the rows (or those
# written since `since`), what each grouped column holds, and where this read stands. Values
# are packed big-endian in bytea: no Python object per material.
_READ = """
WITH m AS MATERIALIZED (
    SELECT (row_number() OVER (ORDER BY lower(m.code)) - 1)::int AS n, m.id,
           m.deleted_at IS NULL AS live, m.category_id, m.price, m.status,
           lower(m.supplier) AS supplier, lower(m.manufacturer) AS manufacturer, m.tags,
           m.properties, m.changed_xid, lower(m.code) AS code,
           (extract(epoch FROM m.created_at) * 1000000)::bigint AS created_us
      FROM materials m
     WHERE m.organization_id = :organization_id AND {which}
)
SELECT 'meta' AS kind,
       (SELECT s.search_language::text FROM catalog_settings s
         WHERE s.organization_id = :organization_id) AS key,
       pg_current_xact_id_if_assigned()::text AS form,
       (SELECT v.version::text FROM category_tree_versions v
         WHERE v.organization_id = :organization_id) AS label,
       pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
       NULL::bytea AS members, NULL::bytea AS a, NULL::bytea AS b, NULL::bytea AS c,
       NULL::bytea AS d, NULL::bytea AS e
UNION ALL
SELECT 'rows', NULL, NULL, max(m.code) AS label, count(*)::text AS xmin,
       coalesce(string_agg(uuid_send(m.id), '' ORDER BY m.n), ''),
       coalesce(string_agg(CASE WHEN m.live THEN '\\x01'::bytea ELSE '\\x00'::bytea END, ''
                           ORDER BY m.n), ''),
       coalesce(string_agg(uuid_send(coalesce(m.category_id,
                                              '00000000-0000-0000-0000-000000000000')), ''
                           ORDER BY m.n), ''),
       coalesce(string_agg(float8send(coalesce(m.price::float8, 'NaN')), '' ORDER BY m.n), ''),
       coalesce(string_agg(int8send(m.changed_xid::text::bigint), '' ORDER BY m.n), ''),
       coalesce(string_agg(int8send(m.created_us), '' ORDER BY m.n), '')
  FROM m
UNION ALL
SELECT 'status', NULL, NULL, m.status, NULL, string_agg(int4send(m.n), ''), NULL, NULL, NULL,
       NULL, NULL
  FROM m GROUP BY m.status
UNION ALL
SELECT 'supplier', NULL, NULL, m.supplier, NULL, string_agg(int4send(m.n), ''), NULL, NULL,
       NULL, NULL, NULL
  FROM m GROUP BY m.supplier
UNION ALL
SELECT 'manufacturer', NULL, NULL, m.manufacturer, NULL, string_agg(int4send(m.n), ''), NULL,
       NULL, NULL, NULL, NULL
  FROM m GROUP BY m.manufacturer
UNION ALL
SELECT 'tag', NULL, NULL, t.tag, NULL, string_agg(int4send(m.n), ''), NULL, NULL, NULL, NULL,
       NULL
  FROM m, unnest(m.tags) AS t(tag) GROUP BY t.tag
UNION ALL
SELECT 'value', e.key, v.form, v.label, NULL, string_agg(int4send(m.n), ''), NULL, NULL,
       NULL, NULL, NULL
  FROM m, jsonb_each(m.properties) AS e(key, value),
       LATERAL (
           SELECT 'element:' || jsonb_typeof(x.value), x.value #>> '{{}}'
             FROM jsonb_array_elements(CASE WHEN jsonb_typeof(e.value) = 'array'
                                            THEN e.value ELSE '[]'::jsonb END) AS x(value)
           UNION ALL
           SELECT jsonb_typeof(e.value), e.value #>> '{{}}'
            WHERE jsonb_typeof(e.value) <> 'array'
       ) AS v(form, label)
 WHERE e.key = ANY(CAST(:faceted AS text[])) AND v.label IS NOT NULL
 GROUP BY e.key, v.form, v.label
UNION ALL
SELECT 'number', e.key, NULL, NULL, NULL, string_agg(int4send(m.n), ''),
       string_agg(float8send(e.value::float8), ''), NULL, NULL, NULL, NULL
  FROM m, jsonb_each(m.properties) AS e(key, value)
 WHERE e.key = ANY(CAST(:numeric AS text[])) AND jsonb_typeof(e.value) = 'number'
   AND abs(e.value::numeric) < 1e300
 GROUP BY e.key
UNION ALL
SELECT 'word', w.lexeme, NULL, NULL, NULL, string_agg(int4send(m.n), ''),
       string_agg(int2send((
           (CASE WHEN 'A' = ANY(w.weights) THEN 3 WHEN 'B' = ANY(w.weights) THEN 2
                 WHEN 'C' = ANY(w.weights) THEN 1 ELSE 0 END) << 12
           | least(coalesce(cardinality(w.positions), 1), 4095))::int2), ''),
       NULL, NULL, NULL, NULL
  FROM m JOIN materials x ON x.id = m.id, unnest(x.search_vector) AS w
 WHERE m.live
 GROUP BY w.lexeme
"""


# What `caught_up` asks first: what `_READ`'s first row says, whether any row was written
# since `since` (the read of those rows plans for about a millisecond: most searches find
# none), and where the text embeddings stand (`Standing`). Positional parameters:
# organization (four times), since.
_PROBE = """
SELECT (SELECT s.search_language::text FROM catalog_settings s
         WHERE s.organization_id = %s) AS language,
       pg_current_xact_id_if_assigned()::text AS form,
       (SELECT v.version::text FROM category_tree_versions v
         WHERE v.organization_id = %s) AS version,
       (SELECT e.version FROM material_meaning_versions e
         WHERE e.organization_id = %s) AS meaning,
       pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
       EXISTS (SELECT FROM materials m
                WHERE m.organization_id = %s AND m.changed_xid >= CAST(%s AS xid8)) AS written
"""
_SINCE_STATEMENT = text(_READ.format(which=_SINCE))
_FULL_STATEMENT = text(_READ.format(which=_FULL))


def unpack_ids(packed: bytes | None) -> NDArray[np.bytes_]:
    """Material ids packed by `uuid_send` (sixteen bytes each), as comparable byte strings."""
    return np.frombuffer(packed or b"", dtype="S16")


def as_uuid(raw: bytes) -> uuid.UUID:
    """An id of `unpack_ids` (numpy drops a byte string's trailing zero bytes)."""
    return uuid.UUID(bytes=bytes(raw).ljust(16, b"\0"))


def unpack_members(packed: bytes | None) -> NDArray[np.int64]:
    """Row numbers of a read packed by `int4send` (four bytes each, big-endian)."""
    return np.frombuffer(packed or b"", dtype=">i4").astype(np.int64)


def unpack_ranked(packed: bytes | None) -> tuple[NDArray[np.bytes_], NDArray[np.float64]]:
    """What `kai_text_ranked` packs: each match's id (sixteen bytes) and rank (a float4)."""
    pairs = np.frombuffer(packed or b"", dtype=[("id", "S16"), ("rank", ">f4")])
    return pairs["id"], pairs["rank"].astype(np.float64)


@dataclass
class _Dictionary:
    """Labels and the small integers the columns hold for them."""

    labels: list[Any] = field(default_factory=list)
    codes: dict[Any, int] = field(default_factory=dict)

    def code(self, label: Any) -> int:
        found = self.codes.get(label)
        if found is None:
            found = self.codes[label] = len(self.labels)
            self.labels.append(label)
        return found


@dataclass
class _Pairs:
    """A column of many values a material: each (slot, code) pair is one of them."""

    slots: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    codes: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    _by_slot: tuple[Any, Any, Any] | None = field(default=None, repr=False, compare=False)

    def drop(self, changed: NDArray[np.bool_]) -> None:
        kept = ~changed[self.slots]
        self.slots, self.codes = self.slots[kept], self.codes[kept]

    def add(self, slots: NDArray[np.int64], code: int) -> None:
        self.slots = np.concatenate((self.slots, slots))
        self.codes = np.concatenate((self.codes, np.full(len(slots), code, np.int64)))

    def counts(self, mask: NDArray[np.bool_], size: int) -> NDArray[np.int64]:
        if len(self.slots) > 4096:
            kept = np.flatnonzero(mask)
            if len(kept) * 8 < len(self.slots):
                return np.bincount(self.codes[self._of(kept)], minlength=size)
        return np.bincount(self.codes[mask[self.slots]], minlength=size)

    def _of(self, slots: NDArray[np.int64]) -> NDArray[np.int64]:
        """Where the pairs of `slots` are (a few slots of many: found by bisection in the
        pairs sorted by slot, sorted once)."""
        if self._by_slot is None or self._by_slot[0] is not self.slots:
            order = np.argsort(self.slots, kind="stable")
            self._by_slot = (self.slots, order, self.slots[order])
        _, order, ordered = self._by_slot
        starts = np.searchsorted(ordered, slots, "left")
        lengths = np.searchsorted(ordered, slots, "right") - starts
        if not lengths.sum():
            return np.empty(0, np.int64)
        steps = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        found: NDArray[np.int64] = order[np.repeat(starts, lengths) + steps]
        return found

    def having(self, codes: Iterable[int], capacity: int) -> NDArray[np.bool_]:
        """Which slots hold any of `codes`."""
        found = np.zeros(capacity, bool)
        found[self.slots[np.isin(self.codes, list(codes))]] = True
        return found


def _copied(column: tuple[_Pairs, _Dictionary]) -> tuple[_Pairs, _Dictionary]:
    pairs, labels = column
    return (
        _Pairs(pairs.slots.copy(), pairs.codes.copy()),
        _Dictionary(list(labels.labels), dict(labels.codes)),
    )


@dataclass(frozen=True)
class Shape:
    """What the columns hold beyond the fixed ones: the property keys whose values are counted
    and compared (enum, multi_enum, boolean), and those read as numbers."""

    faceted: tuple[str, ...]
    numeric: tuple[str, ...]


class Columns:
    """One organization's catalog as columns, a slot per material (kept until read anew)."""

    def __init__(self, organization_id: uuid.UUID, shape: Shape) -> None:
        self.organization_id = organization_id
        self.shape = shape
        # Where the last read stood: the oldest transaction then running, and the tree's version.
        self.xmin: str | None = None
        self.tree_version: int | None = None
        # The catalog's search language (None: the default), read with the rows.
        self.language: str | None = None
        # Moves with every change read; what was worked out from the columns as they stood
        # (counts of browsing without words, asked for again and again) is kept until then.
        self.generation = 0
        self.live_count = 0
        self.memo: OrderedDict[Any, Any] = OrderedDict()
        self.size = 0
        # Ids as sixteen raw bytes, sorted (their order is PostgreSQL's order of uuids).
        self.sorted_ids = np.empty(0, "S16")
        self.slot_by_sorted = np.empty(0, np.int64)
        self.live = np.zeros(0, bool)
        self.category = np.zeros(0, np.int64)
        self.price = np.zeros(0, np.float64)
        # When each slot's material was created, in microseconds since 1970 (browsing's
        # newest first).
        self.created = np.zeros(0, np.int64)
        # The transaction that wrote what each slot holds: a row read again unchanged is no news.
        self.xids = np.zeros(0, np.int64)
        self.categories = _Dictionary([None], {None: 0})
        # Each slot's id, and the postings of the words of the materials' documents: those
        # of the first read, and those of materials read since (see `postings`).
        self.slot_ids = np.zeros(0, "S16")
        self.slot_generation = np.zeros(0, np.int32)
        self.words: dict[str, tuple[int, int]] = {}
        self.word_slots = np.empty(0, np.int32)
        self.word_marks = np.empty(0, np.int16)
        self.word_generations = np.empty(0, np.int32)
        self.words_since: dict[str, words.Postings] = {}
        self.postings_since = 0
        self.postings_first = 0
        self.single: dict[str, tuple[NDArray[np.int64], _Dictionary]] = {
            name: (np.zeros(0, np.int64), _Dictionary())
            for name in ("status", "supplier", "manufacturer")
        }
        self.tags = (_Pairs(), _Dictionary())
        # A property's values: a material's one value (a string, a boolean...) as a code per
        # slot, the elements of an array as pairs; one dictionary for both.
        self.values: dict[str, tuple[_Pairs, _Dictionary]] = {
            key: (_Pairs(), _Dictionary()) for key in shape.faceted
        }
        self.scalars: dict[str, NDArray[np.int64]] = {
            key: np.zeros(0, np.int64) for key in shape.faceted
        }
        self.numbers: dict[str, NDArray[np.float64]] = {
            key: np.zeros(0, np.float64) for key in shape.numeric
        }

    def copy(self) -> Columns:
        """Columns of their own holding what these hold (a change is applied to a copy, while
        requests that began with these go on reading them)."""
        twin = Columns.__new__(Columns)
        twin.__dict__.update(self.__dict__)
        names = ("sorted_ids", "slot_by_sorted", "live", "category", "price", "created", "xids")
        for name in (*names, "slot_ids", "slot_generation"):
            setattr(twin, name, getattr(self, name).copy())
        twin.categories = _Dictionary(list(self.categories.labels), dict(self.categories.codes))
        twin.single = {
            name: (codes.copy(), _Dictionary(list(labels.labels), dict(labels.codes)))
            for name, (codes, labels) in self.single.items()
        }
        twin.tags = _copied(self.tags)
        twin.values = {key: _copied(pairs) for key, pairs in self.values.items()}
        twin.scalars = {key: codes.copy() for key, codes in self.scalars.items()}
        twin.numbers = {key: numbers.copy() for key, numbers in self.numbers.items()}
        twin.memo = OrderedDict()
        # The first read's postings are never changed: shared. Later ones are replaced whole.
        twin.words_since = dict(self.words_since)
        return twin

    def recall(self, key: Any) -> Any:
        """What `remember` kept under `key` while the columns stand as they are; None if
        nothing."""
        found = self.memo.get(key)
        if found is not None:
            self.memo.move_to_end(key)
        return found

    def remember(self, key: Any, value: Any) -> None:
        self.memo[key] = value
        self.memo.move_to_end(key)
        while len(self.memo) > REMEMBERED:
            self.memo.popitem(last=False)

    @property
    def capacity(self) -> int:
        return len(self.live)

    @property
    def dead_share(self) -> float:
        return 1 - self.live_count / self.size if self.size else 0.0

    # Reading ---------------------------------------------------------------------------

    def slots_of(self, ids: NDArray[np.bytes_]) -> NDArray[np.int64]:
        """The slots of the materials `ids` that the columns hold."""
        return self.found(ids)[0]

    def found(self, ids: NDArray[np.bytes_]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """The slots of those of `ids` the columns hold, and which of `ids` those are."""
        if not len(self.sorted_ids) or not len(ids):
            return np.empty(0, np.int64), np.zeros(len(ids), bool)
        at = np.minimum(np.searchsorted(self.sorted_ids, ids), len(self.sorted_ids) - 1)
        held = self.sorted_ids[at] == ids
        slots: NDArray[np.int64] = self.slot_by_sorted[at[held]]
        return slots, held

    def _grow(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        capacity = max(needed, self.capacity * 2, 1024)

        def grown(array: NDArray[Any], fill: Any) -> NDArray[Any]:
            wider = np.full(capacity, fill, array.dtype)
            wider[: len(array)] = array
            return wider

        self.live = grown(self.live, False)
        self.category = grown(self.category, 0)
        self.price = grown(self.price, np.nan)
        self.created = grown(self.created, 0)
        self.xids = grown(self.xids, -1)
        self.slot_ids = grown(self.slot_ids, b"")
        self.slot_generation = grown(self.slot_generation, 0)
        self.single = {
            name: (grown(codes, NONE), labels) for name, (codes, labels) in self.single.items()
        }
        self.numbers = {key: grown(numbers, np.nan) for key, numbers in self.numbers.items()}
        self.scalars = {key: grown(codes, NONE) for key, codes in self.scalars.items()}

    def _place(self, ids: NDArray[np.bytes_]) -> NDArray[np.int64]:
        """Slots for `ids` (each once), new ones for those not held yet."""
        if len(self.sorted_ids):
            at = np.minimum(np.searchsorted(self.sorted_ids, ids), len(self.sorted_ids) - 1)
            new = ids[self.sorted_ids[at] != ids]
        else:
            new = ids
        if len(new):
            self._grow(self.size + len(new))
            new_slots = np.arange(self.size, self.size + len(new), dtype=np.int64)
            self.size += len(new)
            merged = np.concatenate((self.sorted_ids, new))
            order = np.argsort(merged, kind="stable")
            self.sorted_ids = merged[order]
            self.slot_by_sorted = np.concatenate((self.slot_by_sorted, new_slots))[order]
        slots: NDArray[np.int64] = self.slot_by_sorted[np.searchsorted(self.sorted_ids, ids)]
        return slots

    def news(self, rows: Sequence[Any]) -> bool:
        """Whether `_READ` brought anything the columns do not hold: a row read again as it
        was (a transaction older than it still running keeps the reads from moving past
        it) is not news."""
        meta = next(row for row in rows if row.kind == "meta")
        read = next(row for row in rows if row.kind == "rows")
        ids = unpack_ids(read.members)
        if not len(ids):
            return False
        slots, held = self.found(ids)
        if not held.all():
            return True
        xids = np.frombuffer(read.d, dtype=">i8")
        # What the reading transaction wrote itself may have changed under the same number.
        if meta.form is not None and bool((xids == int(meta.form)).any()):
            return True
        return bool((self.xids[slots] != xids).any())

    def apply(
        self, rows: Sequence[Any], *, postings_later: bool = False
    ) -> tuple[NDArray[np.int64], list[Any]]:
        """What `_READ` returned: each material read replaces what the columns held of it.
        With `postings_later`, the words are returned (the read's slots and its rows of
        words) for `first_postings` rather than taken in."""
        by_kind: dict[str, list[Any]] = {}
        for row in rows:
            by_kind.setdefault(row.kind, []).append(row)
        meta = by_kind["meta"][0]
        self.xmin = meta.xmin
        self.tree_version = int(meta.label) if meta.label is not None else None
        self.language = meta.key
        read = by_kind["rows"][0]
        ids = unpack_ids(read.members)
        if not self.news(rows):
            return np.empty(0, np.int64), []
        self.generation += 1
        self.memo.clear()
        # The read's rows in its order (the grouped rows name them by number).
        slots = self._place(ids)
        changed = np.zeros(self.capacity, bool)
        changed[slots] = True
        self.live[slots] = np.frombuffer(read.a, dtype=np.uint8).astype(bool)
        self.price[slots] = np.frombuffer(read.c, dtype=">f8")
        self.xids[slots] = np.frombuffer(read.d, dtype=">i8")
        self.created[slots] = np.frombuffer(read.e, dtype=">i8")
        self.slot_ids[slots] = ids
        # Postings of a material's earlier document no longer count (see `postings`).
        self.slot_generation[slots] += 1
        self.live_count = int(self.live[: self.size].sum())
        categories = np.frombuffer(read.b, dtype="S16")
        found, inverse = np.unique(categories, return_inverse=True)
        codes = np.array(
            [0 if not raw else self.categories.code(as_uuid(raw)) for raw in found],
            dtype=np.int64,
        )
        self.category[slots] = codes[inverse] if len(found) else 0
        for column, _ in self.single.values():
            column[slots] = NONE
        self.tags[0].drop(changed)
        for pairs, _ in self.values.values():
            pairs.drop(changed)
        for codes in self.scalars.values():
            codes[slots] = NONE
        for numbers in self.numbers.values():
            numbers[slots] = np.nan
        for row in (
            by_kind.get("status", [])
            + by_kind.get("supplier", [])
            + by_kind.get("manufacturer", [])
        ):
            column, labels = self.single[row.kind]
            column[slots[unpack_members(row.members)]] = labels.code(row.label)
        for row in by_kind.get("tag", []):
            pairs, labels = self.tags
            pairs.add(slots[unpack_members(row.members)], labels.code(row.label))
        for row in by_kind.get("value", []):
            pairs, labels = self.values[row.key]
            code = labels.code((row.form, row.label))
            if row.form.startswith("element:"):
                pairs.add(slots[unpack_members(row.members)], code)
            else:
                self.scalars[row.key][slots[unpack_members(row.members)]] = code
        for row in by_kind.get("number", []):
            self.numbers[row.key][slots[unpack_members(row.members)]] = np.frombuffer(
                row.a, dtype=">f8"
            )
        if postings_later:
            return slots, by_kind.get("word", [])
        for row in by_kind.get("word", []):
            at = slots[unpack_members(row.members)].astype(np.int32)
            marks = np.frombuffer(row.a, dtype=">i2").astype(np.int16)
            posted = words.Postings(at, marks, self.slot_generation[at])
            earlier = self.words_since.get(row.key)
            self.words_since[row.key] = earlier.joined(posted) if earlier else posted
            self.postings_since += len(at)
        return slots, []

    def first_postings(self, parts: Sequence[tuple[NDArray[np.int64], list[Any]]]) -> None:
        """A first read's postings (of each of its parts: slots, rows of words) in three
        arrays, each lexeme a range of them: a catalog's postings outnumber its materials
        thirty to one, so compact types and no object a lexeme."""
        by_lexeme: dict[str, list[tuple[NDArray[np.int64], bytes]]] = {}
        for slots, rows in parts:
            for row in rows:
                by_lexeme.setdefault(row.key, []).append(
                    (slots[unpack_members(row.members)], row.a)
                )
        at_parts: list[NDArray[np.int64]] = []
        marks_parts: list[bytes] = []
        start = 0
        self.words = {}
        for lexeme, pieces in by_lexeme.items():
            for at, marks in pieces:
                at_parts.append(at)
                marks_parts.append(marks)
            end = start + sum(len(at) for at, _ in pieces)
            self.words[lexeme] = (start, end)
            start = end
        at = np.concatenate(at_parts) if at_parts else np.empty(0, np.int64)
        self.word_slots = at.astype(np.int32)
        self.word_marks = np.frombuffer(b"".join(marks_parts), dtype=">i2").astype(np.int16)
        self.word_generations = self.slot_generation[at]
        self.postings_first = len(at)

    def postings(self, lexemes: Iterable[str]) -> dict[str, words.Postings]:
        """Where each lexeme occurs in the materials' documents as they stand now: postings
        of a material read again since are dropped by its generation."""
        found = {}
        for lexeme in lexemes:
            first = self.words.get(lexeme)
            parts = [
                part
                for part in (
                    words.Postings(
                        self.word_slots[first[0] : first[1]],
                        self.word_marks[first[0] : first[1]],
                        self.word_generations[first[0] : first[1]],
                    )
                    if first
                    else None,
                    self.words_since.get(lexeme),
                )
                if part
            ]
            if not parts:
                continue
            posted = parts[0] if len(parts) == 1 else parts[0].joined(parts[1])
            current = posted.generations == self.slot_generation[posted.slots]
            found[lexeme] = posted.kept(current)
        return found

    @property
    def mostly_rewritten(self) -> bool:
        """Whether the postings read since the first outweigh it (reading all again is
        cheaper than dropping stale postings on every search)."""
        return self.postings_since > max(self.postings_first, 10_000) // 4

    def matched(self, tree: words.Node) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The live slots a full-text query matches, and their relevance."""
        postings = self.postings(words.lexemes_of(tree))
        live = self.live.copy()
        matched = words.evaluate(tree, postings, live)
        slots = np.flatnonzero(matched)
        ranks = words.scores(tree, postings, matched, max(self.live_count, 1))[slots]
        return slots.astype(np.int64), ranks

    # Filters -------------------------------------------------------------------------

    def category_codes(self, ids: Iterable[uuid.UUID]) -> list[int]:
        return [self.categories.codes[i] for i in ids if i in self.categories.codes]

    def in_categories(self, ids: Iterable[uuid.UUID]) -> NDArray[np.bool_]:
        return np.isin(self.category, self.category_codes(ids))

    def single_in(self, name: str, labels: Iterable[str]) -> NDArray[np.bool_]:
        column, dictionary = self.single[name]
        return np.isin(column, [dictionary.codes[x] for x in labels if x in dictionary.codes])

    def tagged(self, tag: str) -> NDArray[np.bool_]:
        pairs, labels = self.tags
        code = labels.codes.get(tag)
        return pairs.having([] if code is None else [code], self.capacity)

    def holding(self, key: str, value: Any) -> NDArray[np.bool_] | None:
        """Materials whose property `key` contains `value` as JSON containment (`@>`) has it:
        the same string or boolean, or, for a list, an array holding each of its strings.
        None when the key's values are not held here."""
        if key not in self.values:
            return None
        pairs, labels = self.values[key]
        if isinstance(value, list):
            found = np.ones(self.capacity, bool)
            for each in value:
                code = labels.codes.get(("element:string", each))
                found &= pairs.having([] if code is None else [code], self.capacity)
            return found
        form = "boolean" if isinstance(value, bool) else "string"
        label = ("true" if value else "false") if isinstance(value, bool) else str(value)
        code = labels.codes.get((form, label))
        if code is None:
            return np.zeros(self.capacity, bool)
        equal: NDArray[np.bool_] = self.scalars[key] == code
        return equal

    def value_counts(self, key: str, kept: NDArray[np.bool_]) -> dict[str, int]:
        """How many kept materials hold each value of `key` (an array's elements each)."""
        pairs, labels = self.values[key]
        size = len(labels.labels)
        scalars = self.scalars[key][kept]
        counted = pairs.counts(kept, size) + np.bincount(scalars[scalars != NONE], minlength=size)
        found: dict[str, int] = {}
        for code in np.flatnonzero(counted):
            label = labels.labels[code][1]
            found[label] = found.get(label, 0) + int(counted[code])
        return found

    def number(self, key: str) -> NDArray[np.float64] | None:
        return self.numbers.get(key)


@dataclass
class _Cache:
    columns: OrderedDict[uuid.UUID, Columns] = field(default_factory=OrderedDict)
    locks: dict[uuid.UUID, asyncio.Lock] = field(default_factory=dict)


_cache = _Cache()


def cached(organization_id: uuid.UUID) -> Columns | None:
    """The organization's columns as this process holds them now, if it does."""
    return _cache.columns.get(organization_id)


async def current(session: AsyncSession, organization_id: uuid.UUID, *, shape: Shape) -> Columns:
    """The organization's columns, caught up with what `session` can see."""
    lock = _cache.locks.setdefault(organization_id, asyncio.Lock())
    async with lock:
        columns = _cache.columns.get(organization_id)
        if columns is None or columns.shape != shape or _worn(columns):
            columns = Columns(organization_id, shape)
        if columns.xmin is None:
            await _read_all(session, columns)
        else:
            rows = await _read(session, columns)
            if _version(rows) != columns.tree_version:
                # A material removed for good, or the tree changed: read it all again.
                columns = Columns(organization_id, shape)
                await _read_all(session, columns)
            else:
                columns = _applied(columns, rows)
        return _hold(columns)


@dataclass(frozen=True)
class Standing:
    """What `caught_up`'s first statement read besides the columns' news: where the
    organization's text embeddings stand (`material_meaning_versions`; None before any)."""

    meaning_version: int | None


async def caught_up(
    session: AsyncSession, organization_id: uuid.UUID, driver: Driver | None = None
) -> tuple[Columns | None, Standing | None]:
    """The organization's columns caught up with what `session` can see, in their shape, when
    this process holds them and the category tree has not changed since their last read; None
    otherwise (nothing read again: the caller reads the tree, then `current` in its shape).
    Their `tree_version` is then the tree's version as the catch-up's statement saw it.

    With `driver` (the primary's, for a session that has written nothing), whether anything
    changed is asked there, in one statement of its own that also says where the embeddings
    stand (the `Standing`; None without a driver); the rows that did change are read in
    `session`."""
    lock = _cache.locks.setdefault(organization_id, asyncio.Lock())
    async with lock:
        columns = _cache.columns.get(organization_id)
        if columns is None or columns.xmin is None or _worn(columns):
            return None, None
        standing = None
        if driver is not None:
            language, form, version, meaning, xmin, written = (
                await driver.scoped_rows(
                    _PROBE,
                    (*(organization_id,) * 4, columns.xmin),
                    organization_id=organization_id,
                )
            )[0]
            standing = Standing(meaning)
            if not written and form is None:
                if (int(version) if version is not None else None) != columns.tree_version:
                    _forget(organization_id)
                    return None, standing
                # Nothing to read: the next catch-up starts from here.
                columns.xmin, columns.language = xmin, language
                return _hold(columns), standing
        rows = await _read(session, columns)
        if _version(rows) != columns.tree_version:
            _forget(organization_id)
            return None, standing
        return _hold(_applied(columns, rows)), standing


def _forget(organization_id: uuid.UUID) -> None:
    """Drop the columns of a changed category tree: the next `current` reads them whole in
    the new tree's shape; meanwhile no caller catches them up again and again."""
    _cache.columns.pop(organization_id, None)


def _worn(columns: Columns) -> bool:
    """Whether the columns are better read whole again than caught up."""
    return columns.dead_share > MOST_DEAD or columns.mostly_rewritten


def _applied(columns: Columns, rows: Sequence[Any]) -> Columns:
    """The held columns with the rows read since their last read applied. Requests under way
    keep the columns they began with: a change makes new ones."""
    if columns is _cache.columns.get(columns.organization_id) and columns.news(rows):
        columns = columns.copy()
    columns.apply(rows)
    return columns


def _hold(columns: Columns) -> Columns:
    """Keep `columns` as the organization's, the most recently used."""
    _cache.columns[columns.organization_id] = columns
    _cache.columns.move_to_end(columns.organization_id)
    _evict()
    return columns


def _version(rows: Sequence[Any]) -> int | None:
    label = next(row.label for row in rows if row.kind == "meta")
    return int(label) if label is not None else None


async def _read(
    session: AsyncSession, columns: Columns, *, after: str | None = None
) -> Sequence[Any]:
    """The rows written since the columns' last read; with `after`, a part of a first read."""
    statement = _SINCE_STATEMENT if after is None else _FULL_STATEMENT
    params: dict[str, Any] = {
        "organization_id": columns.organization_id,
        "faceted": list(columns.shape.faceted),
        "numeric": list(columns.shape.numeric),
    }
    if after is None:
        params["since"] = columns.xmin
    else:
        params["after"], params["part"] = after, PART
    return (await session.execute(statement, params)).all()


async def _read_all(session: AsyncSession, columns: Columns) -> None:
    """Every live material, part by part. Where the columns then stand is where the first
    part stood: what changed while the later parts were read is read again next time."""
    after, first, postings = "", None, []
    while True:
        rows = await _read(session, columns, after=after)
        first = first or next(row for row in rows if row.kind == "meta")
        postings.append(columns.apply(rows, postings_later=True))
        # The rows' row says how many this part read, and the last code (in its `xmin` and
        # `label` columns: one union, one set of columns).
        read = next(row for row in rows if row.kind == "rows")
        if int(read.xmin) < PART:
            break
        after = read.label
    columns.first_postings(postings)
    columns.xmin = first.xmin
    columns.tree_version = int(first.label) if first.label is not None else None


def _evict() -> None:
    held = _cache.columns
    while len(held) > 1 and (
        len(held) > CACHED_ORGANIZATIONS or sum(c.capacity for c in held.values()) > CACHED_SLOTS
    ):
        gone, _ = held.popitem(last=False)
        _cache.locks.pop(gone, None)


# Counting ----------------------------------------------------------------------------------


def buckets(values: NDArray[np.float64], low: float, high: float) -> NDArray[np.int64]:
    """PostgreSQL's `width_bucket(value, low, high', 5)` as the facet SQL used it, where
    high' is a hair above high so that the highest value falls in the last bucket."""
    top = high + max((high - low) * 1e-9, 1e-9)
    if math.isinf(top - low):
        share = (values / 2 - low / 2) / (top / 2 - low / 2)
    else:
        share = (values - low) / (top - low)
    return np.minimum(np.trunc(BUCKETS * share).astype(np.int64), BUCKETS - 1) + 1
