"""Spelling: a search word that finds few or no materials is corrected to a word the catalog
itself uses, a few edits away ("marbel" -> "marble"), and the search looks for both.

The catalog's words (`search_words`, kept by triggers) are the vocabulary: a correction is
always something the catalog says. For each plain word typed (not in a phrase, not excluded
with `-`), the database gives the nearest catalog words by trigram distance when the word
matches fewer than `FEW_MATCHES` materials, each used by `COMMONER` times as many materials
as the typed word matches (any, when it matches none): a rare spelling that the catalog
happens to hold once is corrected only towards a far commoner one. Of those, the word fewest
edits away (optimal string alignment: a swap of two letters is one edit) within what the
word's length allows wins, then the commoner one.

Cost: one statement per search with words, one index probe per word and, for the few words
that find little, one short trigram index scan (benchmarks/README.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from kai.search.repository import SearchRepository, SpellingCandidate

# A word matching fewer materials than this is looked at for a correction.
FEW_MATCHES = 3
# A correction must be used by this many times as many materials as the typed word matches.
COMMONER = 20
# Nearest catalog words looked at for each word.
CANDIDATES = 8
# Words of one query looked at (the rest are searched as typed).
MAX_WORDS = 8
# What web-search syntax reads as a phrase, and any other run of non-space characters.
_TOKENS = re.compile(r'"[^"]*"?|\S+')
# A word as it may be corrected: letters only (codes and sizes such as `TL-600` or `60x60`
# are not words to correct), as the vocabulary holds them.
_WORD = re.compile(r"[^\W\d_]{3,40}")
_PUNCTUATION = ".,;:!?()[]{}'"


@dataclass(frozen=True)
class TypedWord:
    """A word of the query, where it stands in the text."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Spelling:
    # (typed word folded, catalog word): each searched for as well as the typed word.
    corrections: tuple[tuple[str, str], ...] = ()
    # The query with the corrected words in place of the typed ones ("Showing results for").
    corrected_text: str | None = None


def checkable_words(text: str) -> list[TypedWord]:
    """The plain words of a web-search query: not in a phrase, not excluded, not `or`."""
    words = []
    for token in _TOKENS.finditer(text):
        raw = token.group()
        if raw.startswith(('"', "-")) or raw.lower() == "or":
            continue
        stripped = raw.strip(_PUNCTUATION)
        if not stripped or _WORD.fullmatch(stripped) is None:
            continue
        start = token.start() + raw.index(stripped)
        words.append(TypedWord(start, start + len(stripped), stripped))
    return words


def allowed_edits(word: str) -> int:
    """How far a correction may be from a word of this length: one edit up to five letters,
    two beyond (a short word two edits away is another word)."""
    return 1 if len(word) <= 5 else 2


def edit_distance(first: str, second: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of
    two neighbouring letters, each one edit."""
    previous_row: list[int] = []
    row = list(range(len(second) + 1))
    for i, a in enumerate(first, start=1):
        before, previous_row, row = previous_row, row, [i] + [0] * len(second)
        for j, b in enumerate(second, start=1):
            cost = 0 if a == b else 1
            row[j] = min(previous_row[j] + 1, row[j - 1] + 1, previous_row[j - 1] + cost)
            if i > 1 and j > 1 and a == second[j - 2] and first[i - 2] == b:
                row[j] = min(row[j], before[j - 2] + 1)
    return row[-1]


def _best(candidates: Sequence[SpellingCandidate]) -> str | None:
    typed = candidates[0].word
    allowed = allowed_edits(typed)
    scored = [
        (edit_distance(typed, found.candidate), -found.uses, found.candidate)
        for found in candidates
    ]
    near = [score for score in scored if score[0] <= allowed]
    return min(near)[2] if near else None


async def correct(repository: SearchRepository, *, language: str, text: str) -> Spelling:
    """The corrections of `text`'s words that find few or no materials, if any."""
    words = checkable_words(text)[:MAX_WORDS]
    if not words:
        return Spelling()
    found = await repository.spelling_candidates(
        language,
        [word.text for word in words],
        few=FEW_MATCHES,
        commoner=COMMONER,
        how_many=CANDIDATES,
    )
    by_word: dict[int, list[SpellingCandidate]] = {}
    for candidate in found:
        by_word.setdefault(candidate.ordinal, []).append(candidate)
    chosen: dict[int, tuple[str, str]] = {}
    for ordinal, candidates in by_word.items():
        best = _best(candidates)
        if best is not None:
            chosen[ordinal] = (candidates[0].word, best)
    if not chosen:
        return Spelling()
    corrected = text
    for ordinal in sorted(chosen, reverse=True):
        word = words[ordinal - 1]
        corrected = corrected[: word.start] + chosen[ordinal][1] + corrected[word.end :]
    return Spelling(tuple(dict.fromkeys(chosen.values())), corrected)
