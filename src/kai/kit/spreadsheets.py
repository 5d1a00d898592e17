"""CSV that a spreadsheet opens as data, never as formulas (CSV or formula injection).

A spreadsheet evaluates a cell that starts with `=`, `+`, `-` or `@` (and, in some, a tab or
carriage return before one) as a formula: a material named `=HYPERLINK("https://evil", "x")`
in an export becomes a link, and worse formulas run commands. Every CSV KAI writes goes
through `CsvWriter`, which prefixes such a cell with a single quote (OWASP's advice), so it
shows as text. Booleans are written `true` and `false`, in every CSV as in JSON.

A cell that is only a number (`-5`, `+1.5e3`) is left alone: it cannot hold a formula, and a
spreadsheet should see a number. Text that already starts with quotes before one of those
characters gets one more quote, so `restore_cell` can take exactly one off on import and
every value reads back as it was written: `=x` -> `'=x` -> `=x`, and `'=x` -> `''=x` -> `'=x`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, Final, Protocol

FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def _formula_like(text: str) -> bool:
    """Whether a spreadsheet could take `text`, once its leading quotes are off, as a formula."""
    core = text.lstrip("'")
    return core.startswith(FORMULA_STARTS) and _NUMBER.fullmatch(core) is None


def neutralise_cell(value: object) -> object:
    """`value` as a CSV cell that a spreadsheet shows as text (numbers pass as they are), a
    boolean as `true` or `false`, as JSON writes it (not Python's `True`)."""
    if value is None:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    return "'" + text if _formula_like(text) else value


def restore_cell(text: str) -> str:
    """A cell as it was before `neutralise_cell`: one quote off when it was put on."""
    return text[1:] if text.startswith("'") and _formula_like(text) else text


class CsvWriter:
    """`csv.writer` whose every cell goes through `neutralise_cell`."""

    def __init__(self, target: _Writable, **options: Any) -> None:
        self._writer = csv.writer(target, **options)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([neutralise_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)
