"""Full-text queries answered from postings in memory: which materials a query's words match,
and how well, without a pass over the matches in PostgreSQL.

PostgreSQL still does the language: the catalog's documents are its `tsvector`s, and a query
is its `tsquery` (stemming, stop words, the search's web syntax, corrections), read back as
text and parsed here. What is evaluated here: lexemes, `&`, `|` and `!`. A query with a phrase
(`<->`), a prefix (`:*`) or a weight (`:A`) is answered by PostgreSQL as before (`parse`
returns None): positions are not held in memory.

Relevance: each word of the query that a material holds adds its weight in the best field
that holds it (PostgreSQL's default weights: the name 1.0, the category and tags 0.4,
description 0.2, the rest 0.1; a field repeated adds a little, not much), scaled by how rare
the word is in the catalog. A material that holds the query's words in its name ranks above
one that holds them only in its description.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# PostgreSQL's default ts_rank weights, by the weight letter's code (D=0 ... A=3).
WEIGHTS = np.array([0.1, 0.2, 0.4, 1.0])
# What a posting's 16 bits hold: the best weight's code in the top two bits (of 14 used), the
# number of positions below (at most 4095).
WEIGHT_SHIFT = 12
COUNT_MASK = (1 << WEIGHT_SHIFT) - 1

_TOKEN = re.compile(
    r"\s*(?:(?P<lexeme>'(?:[^']|'')*')(?P<flags>:[*A-Da-d]+)?|(?P<op><->|<\d+>|[&|!()]))"
)


@dataclass(frozen=True)
class Word:
    lexeme: str


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


Node = Word | Not | And | Or


class _Unsupported(Exception):
    """A phrase, a prefix or a weight: left to PostgreSQL."""


def parse(tsquery: str) -> Node | None:
    """The query tree of a `tsquery`'s text; None when it has a part answered only by
    PostgreSQL, or no words at all."""
    tokens: list[tuple[str, str]] = []
    position = 0
    text = tsquery.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            return None
        position = match.end()
        if match["lexeme"]:
            if match["flags"]:
                return None
            tokens.append(("word", match["lexeme"][1:-1].replace("''", "'")))
        elif match["op"] in ("&", "|", "!", "(", ")"):
            tokens.append((match["op"], ""))
        else:
            return None
    if not tokens:
        return None
    parser = _Parser(tokens)
    try:
        tree = parser.either()
    except _Unsupported:
        return None
    return tree if parser.at == len(tokens) else None


class _Parser:
    """`|` binds loosest, then `&`, then `!` (PostgreSQL writes the parentheses it needs)."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.at = 0

    def _peek(self) -> str | None:
        return self.tokens[self.at][0] if self.at < len(self.tokens) else None

    def either(self) -> Node:
        node = self.both()
        while self._peek() == "|":
            self.at += 1
            node = Or(node, self.both())
        return node

    def both(self) -> Node:
        node = self.single()
        while self._peek() == "&":
            self.at += 1
            node = And(node, self.single())
        return node

    def single(self) -> Node:
        kind = self._peek()
        if kind == "!":
            self.at += 1
            return Not(self.single())
        if kind == "(":
            self.at += 1
            node = self.either()
            if self._peek() != ")":
                raise _Unsupported
            self.at += 1
            return node
        if kind == "word":
            self.at += 1
            return Word(self.tokens[self.at - 1][1])
        raise _Unsupported


def lexemes_of(node: Node) -> list[str]:
    """Every lexeme the query names, those it excludes too."""
    if isinstance(node, Word):
        return [node.lexeme]
    if isinstance(node, Not):
        return lexemes_of(node.operand)
    return lexemes_of(node.left) + lexemes_of(node.right)


def words_of(node: Node) -> list[str]:
    """The lexemes the query looks for (not those it excludes)."""
    if isinstance(node, Word):
        return [node.lexeme]
    if isinstance(node, Not):
        return []
    return words_of(node.left) + words_of(node.right)


@dataclass
class Postings:
    """Where one lexeme occurs: slots, and for each its weight and count (see WEIGHT_SHIFT)
    and the generation of the slot's document it came from."""

    slots: NDArray[np.int32]
    marks: NDArray[np.int16]
    generations: NDArray[np.int32]

    def __bool__(self) -> bool:
        return bool(len(self.slots))

    def joined(self, other: Postings) -> Postings:
        return Postings(
            np.concatenate((self.slots, other.slots)),
            np.concatenate((self.marks, other.marks)),
            np.concatenate((self.generations, other.generations)),
        )

    def kept(self, which: NDArray[np.bool_]) -> Postings:
        if which.all():
            return self
        return Postings(self.slots[which], self.marks[which], self.generations[which])


def evaluate(
    node: Node, postings: dict[str, Postings], live: NDArray[np.bool_]
) -> NDArray[np.bool_]:
    """Which slots the query matches, among the live ones."""
    if isinstance(node, Word):
        found = np.zeros(len(live), bool)
        held = postings.get(node.lexeme)
        if held is not None:
            found[held.slots] = True
        return found & live
    if isinstance(node, Not):
        return live & ~evaluate(node.operand, postings, live)
    left = evaluate(node.left, postings, live)
    right = evaluate(node.right, postings, live)
    return left & right if isinstance(node, And) else left | right


def scores(
    node: Node, postings: dict[str, Postings], matched: NDArray[np.bool_], documents: int
) -> NDArray[np.float64]:
    """Each slot's relevance to the query (see the module's docstring); read where matched."""
    total = np.zeros(len(matched))
    for lexeme in dict.fromkeys(words_of(node)):
        held = postings.get(lexeme)
        if held is None or not len(held.slots):
            continue
        rarity = math.log(1 + documents / len(held.slots))
        weight = WEIGHTS[held.marks >> WEIGHT_SHIFT]
        count = held.marks & COUNT_MASK
        total[held.slots] += rarity * (weight + 0.1 * np.log(np.maximum(count, 1)))
    return total
