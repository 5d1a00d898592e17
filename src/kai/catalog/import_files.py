"""Catalog files as an import reads them: the records of a CSV or JSON table, or of the one
such table in a zip with the images its rows name.

Reading is bounded (rows, cells, a JSON table's values, what a zip unpacks to) and blocking:
callers run it in a thread. A CSV's delimiter is told from its header; a row that does not
fit the header is kept with its problem for the report, at its line.
"""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from kai.kit.archives import InflateBudget, UnreadableArchive, ZipUpload, is_zip
from kai.kit.errors import BadRequest, PayloadTooLarge
from kai.kit.spreadsheets import restore_cell

ImportFormat = Literal["csv", "json", "zip"]

MAX_ZIP_ENTRIES = 20_000
# Rows are held for the checks, so a file's rows and cells are capped (as what a zip may
# unpack to is): about 300 MB of Python objects at worst, and twice the largest catalog
# measured (benchmarks/catalog.py: 100,000 rows of 16 columns).
MAX_ROWS = 200_000
MAX_CELLS = 3_200_000
# A JSON table is parsed whole, every value built at once (30 MB of `[{},{},...]` once made
# ten million dicts, 842 MiB, before the row cap was looked at), so it is measured before it
# is parsed. Every value but the first follows a comma or opens a bracket: their count bounds
# the values (those inside strings count too, which errs only towards refusing). Enough for
# a cell each and four a row (the row's braces and comma, a properties object, a list).
MAX_JSON_VALUES = MAX_CELLS + 4 * MAX_ROWS
# And its bytes, which bound what the strings hold: a generous 32 a cell.
MAX_JSON_BYTES = 32 * MAX_CELLS
# Read ahead of a CSV to guess its delimiter and line ends.
CSV_HEAD_BYTES = 64 * 1024


class InvalidImportFile(BadRequest):
    type, title = "invalid-import-file", "The file cannot be read as a catalog"


@dataclass
class RowError:
    """A problem of one record, or of the file (`index` None: a column of the header).

    `index` counts the records from 0, as the JSON list and the bulk request's `loc` do;
    `line` is where a CSV row starts in the file (the header is line 1), as a text editor
    shows it and, unless a cell holds a line break, as a spreadsheet numbers its rows."""

    index: int | None
    line: int | None
    column: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


@dataclass
class SourceRow:
    index: int  # among the records, from 0
    line: int | None  # where a CSV row starts (the header is line 1); None in JSON
    values: dict[str, Any]
    # Why the row cannot be read as the header says (a cell too many or too few), if it cannot.
    problem: str | None = None

    def error(self, column: str | None, message: str) -> RowError:
        return RowError(self.index, self.line, column, message)

    @property
    def place(self) -> str:
        """Where the record is, as a message names it."""
        return f"line {self.line}" if self.line is not None else f"index {self.index}"


@dataclass
class Table:
    """The records of a CSV or JSON table, and what is known of it as a whole."""

    rows: list[SourceRow]
    # A CSV's column names, those read (JSON records each name their own).
    header: list[str] | None = None
    # Problems of the file as a whole (a column named twice in the header).
    problems: list[RowError] = field(default_factory=list)


@dataclass
class CatalogFile:
    rows: list[SourceRow]
    # The zip's other files by name, their bytes only when asked for (an import job needs
    # them; a check of the file needs their names).
    images: dict[str, bytes]
    image_names: frozenset[str] = frozenset()
    header: list[str] | None = None
    problems: list[RowError] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images and not self.image_names:
            self.image_names = frozenset(self.images)


def detect_format(data: bytes) -> ImportFormat:
    if is_zip(data):
        return "zip"
    head = data.lstrip()[:1]
    return "json" if head in (b"[", b"{") else "csv"


def read_file(
    data: bytes, *, image_bytes_limit: int, budget: InflateBudget, keep_images: bool = True
) -> CatalogFile:
    """Rows of a CSV or JSON file, or of the one such file inside a zip with its images.

    Blocking work (a zip is inflated, the rows parsed): run it in a thread. A zip's files are
    inflated under `budget` as they are read, the table streamed rather than held whole;
    without `keep_images` the images are inflated (to check them) but not kept."""
    if not data:
        raise InvalidImportFile("The file is empty.")
    kind = detect_format(data)
    if kind == "zip":
        return _read_zip(data, image_bytes_limit, budget, keep_images)
    with io.BufferedReader(io.BytesIO(data), CSV_HEAD_BYTES) as stream:
        table = _read_rows(stream, kind)
    return CatalogFile(table.rows, {}, header=table.header, problems=table.problems)


def _read_rows(stream: io.BufferedReader[Any], kind: Literal["csv", "json"]) -> Table:
    if kind == "csv":
        return _read_csv(stream)
    # A piece at a time: read(n) of a large n sets aside n bytes before reading any.
    text = bytearray()
    while len(text) <= MAX_JSON_BYTES:
        piece = stream.read(min(CSV_HEAD_BYTES, MAX_JSON_BYTES + 1 - len(text)))
        if not piece:
            break
        text += piece
    values = text.count(b",") + text.count(b"{") + text.count(b"[")
    if len(text) > MAX_JSON_BYTES or values > MAX_JSON_VALUES:
        raise PayloadTooLarge(
            f"The JSON is larger than one import takes ({MAX_ROWS} rows, {MAX_CELLS} cells: at "
            f"most {MAX_JSON_VALUES} commas and brackets, {MAX_JSON_BYTES} bytes); import it "
            "in parts."
        )
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidImportFile(f"The JSON is not valid: {exc}.") from exc
    items = parsed.get("materials") if isinstance(parsed, dict) else parsed
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidImportFile('JSON must be a list of objects, or {"materials": [...]}.')
    if len(items) > MAX_ROWS or sum(len(item) for item in items) > MAX_CELLS:
        raise _too_large()
    return Table([SourceRow(index, None, item) for index, item in enumerate(items)])


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file holds more than {MAX_ROWS} rows or {MAX_CELLS} cells; import it in parts."
    )


# What the csv module says, as a person fixing the file needs it said.
_CSV_PROBLEMS = (
    ("new-line character seen in unquoted field",
     "a line break (carriage return) inside a cell that is not in double quotes; quote the "
     "cell or remove the line break"),
    ("line contains nul", "a NUL character: is it really text?"),
    ("field larger than field limit", "a cell longer than the limit of {limit} characters"),
    ("unexpected end of data", "a quoted cell that is never closed"),
    ("expected after", "a double quote inside a cell that is not itself quoted"),
)  # fmt: skip


def _csv_problem(exc: csv.Error, line: int) -> InvalidImportFile:
    said = str(exc).lower()
    what = next(
        (plain for words, plain in _CSV_PROBLEMS if words in said), "a row the CSV reader rejects"
    )
    return InvalidImportFile(
        f"The CSV cannot be read at line {line}: "
        f"{what.format(limit=csv.field_size_limit())}. Nothing was imported."
    )


_DELIMITERS = {",": "a comma", ";": "a semicolon", "\t": "a tab"}


def _delimiter(sample: str) -> str:
    """The delimiter of the CSV that starts with `sample`: of comma, semicolon and tab, the
    one that splits the header into the most columns.

    The header, not the rows: one row with an unquoted `;` in a cell would make the rows
    disagree, and a guess from all of them then fails for the whole file; that row is
    reported on its own instead (a cell too many)."""
    widths: dict[str, int] = {}
    for delimiter in _DELIMITERS:
        try:
            header = next(csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter), [])
        except csv.Error:
            header = []
        widths[delimiter] = len(header)
    widest = max(widths.values())
    tied = [delimiter for delimiter, width in widths.items() if width == widest]
    if len(tied) > 1:
        # A header of one column, or as many of each: the rows may tell.
        with contextlib.suppress(csv.Error):
            guessed = csv.Sniffer().sniff(sample, delimiters="".join(tied)).delimiter
            return guessed if guessed in tied else tied[0]
    return tied[0]


def _read_csv(stream: io.BufferedReader[Any]) -> Table:
    """The rows of a CSV, read from `stream` a piece at a time (never the whole text), and
    the problems of its header.

    A row with more or fewer cells than the header has columns is kept with its problem,
    its cells unread (they would fill the wrong columns); blank rows are passed over. A
    bare carriage return ends a line only in a file whose lines end so (classic Mac
    spreadsheets); in a file with line feeds it is a mistake inside a cell, and refused with
    its line rather than splitting that row in two silently."""
    head = stream.peek(CSV_HEAD_BYTES)[:CSV_HEAD_BYTES]
    if b"\x00" in head:
        raise InvalidImportFile("The CSV contains NUL characters: is it really text?")
    delimiter = _delimiter(head.decode("utf-8-sig", errors="ignore")[:8192])
    # Only the delimiter is guessed: the quote is always the double quote (a guess could take
    # the single quote that an export puts before a formula-like cell for one).
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="\n" if b"\n" in head else "")
    reader = csv.reader(text, delimiter=delimiter)
    rows: list[SourceRow] = []
    problems: list[RowError] = []
    cells = 0
    try:
        names = next(reader, None)
        if not names or not any(name.strip() for name in names):
            raise InvalidImportFile("The CSV has no header row.")
        width = len(names)
        # Columns by position; one without a name (a spreadsheet's trailing empty column) or
        # named a second time is not read.
        columns: list[str | None] = []
        for name in (restore_cell(name).strip() for name in names):
            if name and name in columns:
                problems.append(
                    RowError(None, 1, name, "the header names this column twice; rename one")
                )
                name = ""
            columns.append(name or None)
        start = reader.line_num + 1
        for row in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            cells += len(row)
            if cells > MAX_CELLS or len(rows) >= MAX_ROWS:
                raise _too_large()
            problem = None
            if len(row) > width and any(cell.strip() for cell in row[width:]):
                problem = (
                    f"the row has {len(row)} cells where the header has {width} columns: a "
                    f"cell holding {_DELIMITERS[delimiter]} must be in double quotes"
                )
            elif len(row) < width:
                problem = (
                    f"the row has {len(row)} cells where the header has {width} columns; "
                    "give it one for every column, empty or not"
                )
            # A cell the export kept from reading as a formula ('=...) reads back as written.
            values: dict[str, Any] = (
                {}
                if problem
                else {
                    column: restore_cell(value) if value else value
                    for column, value in zip(columns, row, strict=False)
                    if column is not None
                }
            )
            rows.append(SourceRow(len(rows), line, values, problem))
    except csv.Error as exc:
        # The line being read when it failed.
        raise _csv_problem(exc, max(1, reader.line_num)) from None
    except UnicodeDecodeError:
        read = reader.line_num
        raise InvalidImportFile(
            "The CSV is not UTF-8 text; save it as UTF-8"
            + (f" (the problem is after line {read})." if read else ".")
        ) from None
    finally:
        text.detach()
    return Table(rows, [column for column in columns if column is not None], problems)


def _read_zip(
    data: bytes, image_bytes_limit: int, budget: InflateBudget, keep_images: bool
) -> CatalogFile:
    try:
        with ZipUpload(
            data, name="The upload", budget=budget, max_entries=MAX_ZIP_ENTRIES
        ) as archive:
            entries = archive.entries
            tables = [info for info in entries if info.filename.lower().endswith((".csv", ".json"))]
            if len(tables) != 1:
                raise InvalidImportFile(
                    "The zip must hold exactly one .csv or .json file of materials."
                )
            entry = tables[0]
            kind: Literal["csv", "json"] = (
                "json" if entry.filename.lower().endswith(".json") else "csv"
            )
            with archive.open(entry) as stream:
                table = _read_rows(stream, kind)
            images: dict[str, bytes] = {}
            for info in entries:
                if info is entry:
                    continue
                # Longer than an image may be: read that far, and refused when attached.
                if keep_images:
                    images[info.filename] = archive.read(info, limit=image_bytes_limit)
                else:
                    archive.check(info, limit=image_bytes_limit)
            names = frozenset(info.filename for info in entries if info is not entry)
    except UnreadableArchive as exc:
        raise InvalidImportFile(exc.message) from None
    return CatalogFile(table.rows, images, names, header=table.header, problems=table.problems)
