"""Catalog import: CSV, JSON, or a zip of either with the images its rows name.

Every row is checked before anything is written: a dry run reports what an import would do,
row by row; `all_or_nothing` writes nothing unless every row is valid (the report is then
`refused`); `skip_invalid` writes the valid rows. Rows update the live material with the
same code (SKU) rather than adding a second one, so importing the same file twice changes
nothing the second time.

One rule for empty values, in every column: an empty cell (or, in JSON, null, "" or []) is
no value. A new material gets the field's default; one already in the catalog keeps what it
has. Clearing a field is a change of the material (`PATCH`), not of an import.

A column that names no field is a problem of the file, not left out silently: all or
nothing refuses the file, skip invalid leaves the column out. Problems name their record by
`index` (from 0, as the bulk request's `loc` does) and, in a CSV, by `line` (where the row
starts; the header is line 1).
"""

from __future__ import annotations

import asyncio
import difflib
import io
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog import events
from kai.catalog import materials as material_service
from kai.catalog.categories import CategoryView, list_categories
from kai.catalog.errors import CodeTaken, InvalidProperties, PriceTooPrecise, PriceWithoutCurrency
from kai.catalog.import_files import CatalogFile, RowError, SourceRow
from kai.catalog.models import Material, MaterialRow
from kai.catalog.properties import PropertyDefinition
from kai.catalog.repository import MaterialRepository
from kai.catalog.schemas import MaterialCreate
from kai.identity.actor import Actor
from kai.kit.errors import InvalidValue
from kai.kit.money import format_amount
from kai.kit.spreadsheets import CsvWriter

log = structlog.get_logger(__name__)

ImportMode = Literal["all_or_nothing", "skip_invalid"]
FIELDS = (
    "name",
    "code",
    "category",
    "category_id",
    "description",
    "manufacturer",
    "supplier",
    "price",
    "currency",
    "tags",
    "status",
    "images",
)
LIST_SEPARATOR = re.compile(r"\s*[;|]\s*")
# A side or a number: plain digits, or with an exponent as other programs write them.
_SIDE = r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
DIMENSIONS = re.compile(
    rf"^\s*(?P<l>{_SIDE})\s*[x\u00d7*]\s*(?P<w>{_SIDE})"
    rf"(?:\s*[x\u00d7*]\s*(?P<t>{_SIDE}))?\s*(?P<unit>[A-Za-z]+)?\s*$"
)
NUMBER_WITH_UNIT = re.compile(
    r"^\s*(?P<number>-?\d+(?:[.,]\d+)?(?:[eE][+-]?\d+)?)\s*(?P<unit>[A-Za-z%/0-9_]+)?\s*$"
)
# Price lists from much of Europe write 92,50.
DECIMAL_COMMA = re.compile(r"^\s*\d+,\d{1,4}\s*$")
TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "0"})
# A report lists this many problems, and the actions of this many rows; the counts say how
# many there were in all.
MAX_REPORTED_ERRORS = 1000
MAX_REPORTED_ROWS = 1000


RowAction = Literal["create", "update", "unchanged", "invalid"]


@dataclass
class RowOutcome:
    """What one record does: creates a material, updates one, finds it as it says already,
    or is invalid (its problems are in the report's errors)."""

    index: int
    line: int | None
    code: str | None
    action: RowAction

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "line": self.line, "code": self.code, "action": self.action}


@dataclass
class ImportReport:
    rows: int = 0
    valid: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    images: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    actions: list[RowOutcome] = field(default_factory=list)
    dry_run: bool = False
    written: bool = False
    refused: bool = False

    def add(self, error: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)

    def outcome(self, row: SourceRow, code: str | None, action: RowAction) -> RowOutcome:
        """The record's action, listed if it is among the first `MAX_REPORTED_ROWS`."""
        outcome = RowOutcome(row.index, row.line, code, action)
        if len(self.actions) < MAX_REPORTED_ROWS:
            self.actions.append(outcome)
        return outcome

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "valid": self.valid,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "images": self.images,
            "error_count": self.error_count,
            "errors": [error.as_dict() for error in self.errors],
            "actions": [action.as_dict() for action in self.actions],
            "dry_run": self.dry_run,
            "written": self.written,
            "refused": self.refused,
        }


# --- rows to materials ----------------------------------------------------------------------


@dataclass
class PlannedRow:
    source: SourceRow
    data: MaterialCreate
    image_names: list[str]
    # For a new material: its canonical properties and its category's schema.
    properties: dict[str, Any] = field(default_factory=dict)
    schema: list[PropertyDefinition] = field(default_factory=list)
    new: bool = False
    # Its line in the report's `actions`, when it is among the first rows.
    outcome: RowOutcome | None = None


IGNORE = "ignore"


class InvalidMapping(InvalidValue):
    type, title = "invalid-mapping", "The mapping names a field KAI does not have"


def _field_name(name: str) -> str | None:
    """The field a column or mapping target called `name` fills, if any."""
    lowered = name.strip().lower()
    if lowered in FIELDS or lowered == "properties":
        return lowered
    if lowered.startswith("properties.") and lowered != "properties.":
        return lowered
    if lowered == "sku":
        return "code"
    return None


def check_mapping(mapping: Mapping[str, str]) -> dict[str, str]:
    """`mapping` with each target as a field's name; a target that is no field refuses it
    (a misspelt one would otherwise leave its column out without a word)."""
    checked: dict[str, str] = {}
    for column, target in mapping.items():
        name = IGNORE if target.strip().lower() == IGNORE else _field_name(target)
        if name is None:
            raise InvalidMapping(
                f"`mapping` sends {column!r} to {target!r}, which is no field: map a column to "
                f'one of {", ".join(FIELDS)}, `properties.<key>`, or "{IGNORE}".'
            )
        checked[column] = name
    return checked


class _Columns:
    """Which field each column of the file fills: `mapping` first, then columns named like
    fields. Worked out once per column name, not once per row."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = check_mapping(mapping)
        # A column's field, IGNORE, or None when it names no field.
        self.targets: dict[str, str | None] = {}

    def target(self, column: str) -> str | None:
        targets = self.targets
        if column in targets:
            return targets[column]
        target = targets[column] = self.mapping.get(column) or _field_name(column)
        return target

    def fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The row under KAI's field names."""
        fields: dict[str, Any] = {}
        for column, value in values.items():
            target = self.target(column)
            if target is not None and target != IGNORE:
                fields[target] = value
        return fields


def _blank(value: Any) -> bool:
    """Whether `value` is empty: an empty cell, an empty string, null or an empty list. An
    empty value is no value: a new material gets the field's default, one already in the
    catalog keeps what it has (clearing a field is a `PATCH` of the material)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict) and not value


def _text_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item) for item in value]
    return [item for item in LIST_SEPARATOR.split(str(value).strip()) if item]


def property_from_text(definition: PropertyDefinition, value: Any) -> Any:
    """A spreadsheet cell as the property's input form; JSON values pass as they are."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    kind = definition.type
    if kind in ("number", "integer"):
        match = NUMBER_WITH_UNIT.fullmatch(text)
        if match is None:
            return text
        number_text = match["number"].replace(",", ".")
        number: float | int = (
            int(number_text)
            if kind == "integer" and number_text.lstrip("-").isdigit()
            else float(number_text)
        )
        if match["unit"]:
            return {"value": number, "unit": match["unit"]}
        return number
    if kind == "boolean":
        lowered = text.lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        return text
    if kind == "multi_enum":
        return _text_list(text)
    if kind == "dimensions":
        match = DIMENSIONS.fullmatch(text)
        if match is None:
            return text
        sides: dict[str, Any] = {"length": float(match["l"]), "width": float(match["w"])}
        if match["t"]:
            sides["thickness"] = float(match["t"])
        if match["unit"]:
            sides["unit"] = match["unit"]
        return sides
    return text


class _Categories:
    """Categories by id and by path ("Stone > Marble"), for resolving rows."""

    def __init__(self, views: Sequence[CategoryView]) -> None:
        by_id = {view.category.id: view for view in views}
        self.by_id = by_id
        self.by_path: dict[str, CategoryView] = {}
        for view in views:
            names = [by_id[i].category.name for i in view.category.path if i in by_id]
            path = " > ".join([*names, view.category.name])
            self.by_path[path.lower()] = view
            # A name alone finds a category when no other has it.
            self.by_path.setdefault(view.category.name.lower(), view)
        self.found: dict[str, CategoryView | None] = {}
        self.keyed: dict[uuid.UUID, dict[str, PropertyDefinition]] = {}

    def path_of(self, category_id: uuid.UUID | None) -> str:
        view = self.by_id.get(category_id) if category_id else None
        if view is None:
            return ""
        names = [self.by_id[i].category.name for i in view.category.path if i in self.by_id]
        return " > ".join([*names, view.category.name])

    def find(self, value: Any) -> CategoryView | None:
        text = str(value).strip()
        # A file names a few hundred categories at most, on every one of its rows.
        if text in self.found:
            return self.found[text]
        try:
            view = self.by_id.get(uuid.UUID(text))
        except ValueError:
            normalised = " > ".join(part.strip() for part in re.split(r"\s*[>/]\s*", text))
            view = self.by_path.get(normalised.lower())
        self.found[text] = view
        return view

    def property_keys(self) -> list[str]:
        """Every property key of every category, each once."""
        keys = (definition.key for view in self.by_id.values() for definition in view.effective)
        return list(dict.fromkeys(keys))

    def definitions(self, view: CategoryView) -> dict[str, PropertyDefinition]:
        """The category's effective property definitions by key."""
        category_id = view.category.id
        if category_id not in self.keyed:
            self.keyed[category_id] = {definition.key: definition for definition in view.effective}
        return self.keyed[category_id]


@dataclass
class _Chunk:
    """Rows of the file checked, and the new materials among them as columns to insert."""

    planned: list[PlannedRow]
    materials: list[dict[str, Any]]
    versions: list[dict[str, Any]]


class _Planner:
    """Checks a file's rows, a chunk at a time, against the fields' rules and each category's
    schema; the codes seen on earlier chunks count for later ones."""

    def __init__(
        self,
        *,
        actor: Actor,
        columns: _Columns,
        categories: _Categories,
        report: ImportReport,
        existing: Mapping[str, Material],
        image_names: frozenset[str],
    ) -> None:
        self.actor = actor
        self.columns = columns
        self.categories = categories
        self.report = report
        self.existing = existing
        self.image_names = image_names
        self.seen_codes: dict[str, SourceRow] = {}
        # What the valid rows do, counted as they are checked (a dry run's answer).
        self.planned: dict[RowAction, int] = {"create": 0, "update": 0, "unchanged": 0}

    def prepare(self, rows: Sequence[SourceRow]) -> _Chunk:
        """`rows` checked, and the columns and first versions of the new materials among the
        valid ones (CPU work only: an import runs it in a thread while the database writes
        the previous chunk)."""
        planned = self.plan(rows)
        materials = [
            material_service.new_material_values(self.actor, row.data, row.properties, row.schema)
            for row in planned
            if row.new
        ]
        versions = [
            material_service.version_values(columns, "imported", self.actor)
            for columns in materials
        ]
        return _Chunk(planned=planned, materials=materials, versions=versions)

    def plan(self, rows: Sequence[SourceRow]) -> list[PlannedRow]:
        """The valid rows of `rows`; every problem of the others in the report, and what each
        row does in its `actions`."""
        planned: list[PlannedRow] = []
        report = self.report
        for source in rows:
            report.rows += 1
            errors: list[RowError] = []
            row = self._plan_row(source, errors) if source.problem is None else None
            if source.problem is not None:
                errors.append(source.error(None, source.problem))
            if errors or row is None:
                for error in errors:
                    report.add(error)
                code = self.columns.fields(source.values).get("code")
                report.outcome(source, None if _blank(code) else str(code).strip(), "invalid")
                continue
            report.valid += 1
            action: RowAction = "create" if row.new else "update"
            if not row.new and not _changes(self.existing[row.data.code.lower()], row):
                action = "unchanged"
            self.planned[action] += 1
            row.outcome = report.outcome(source, row.data.code, action)
            planned.append(row)
        return planned

    def _plan_row(self, source: SourceRow, errors: list[RowError]) -> PlannedRow | None:
        """The row as a material to write, or None with its problems in `errors`. A row for a
        code already in the catalog changes what it names and keeps the rest (a price list
        may name only codes and prices); an empty value is no value (`_blank`)."""
        categories = self.categories
        fields = self.columns.fields(source.values)
        payload: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        schema: list[PropertyDefinition] = []
        definitions: Mapping[str, PropertyDefinition] = {}
        code = fields.get("code")
        current = None if _blank(code) else self.existing.get(str(code).strip().lower())
        if current is not None and current.category_id is not None:
            # Its values are read as its category's, unless the row moves it to another.
            view = categories.by_id.get(current.category_id)
            if view is not None:
                schema, definitions = view.effective, categories.definitions(view)
        category_value = fields.pop("category_id", None)
        if _blank(category_value):
            category_value = fields.get("category")
        fields.pop("category", None)
        if not _blank(category_value):
            view = categories.find(category_value)
            if view is None:
                errors.append(source.error("category", f"no category {category_value!r}"))
            else:
                payload["category_id"] = view.category.id
                schema = view.effective
                definitions = categories.definitions(view)
        image_names = _text_list(fields.pop("images", "") or "")
        errors.extend(
            source.error("images", f"{name!r} is not in the zip")
            for name in image_names
            if name not in self.image_names
        )
        nested = fields.pop("properties", None)
        if isinstance(nested, dict):  # JSON rows may nest them
            properties.update((key, value) for key, value in nested.items() if not _blank(value))
        elif not _blank(nested):
            errors.append(source.error("properties", "give properties as an object of values"))
        for name, value in fields.items():
            if _blank(value):
                continue
            if name.startswith("properties."):
                key = name.removeprefix("properties.")
                definition = definitions.get(key)
                properties[key] = property_from_text(definition, value) if definition else value
            elif name == "price" and isinstance(value, str) and DECIMAL_COMMA.fullmatch(value):
                payload["price"] = value.strip().replace(",", ".")
            elif name == "tags":
                payload["tags"] = _text_list(value)
            else:
                payload[name] = value.strip() if isinstance(value, str) else value
        if properties:
            payload["properties"] = properties
        if current is not None:
            payload.setdefault("name", current.name)
        data = None
        try:
            data = MaterialCreate.model_validate(payload)
        except ValidationError as exc:
            for detail in exc.errors():
                column = ".".join(str(part) for part in detail["loc"]) or None
                errors.append(source.error(column, detail["msg"]))
        # The properties too, whatever else is wrong: the report should name every problem.
        canonical, problems = material_service.validate_row_properties(
            schema, properties, partial=current is not None
        )
        errors.extend(
            source.error(f"properties.{problem.key}", problem.message) for problem in problems
        )
        if current is not None and payload.get("category_id", current.category_id) != (
            current.category_id
        ):
            # Moved to another category, the values it keeps must suit that one too.
            _, kept = material_service.validate_row_properties(
                schema, {**current.properties, **canonical}, partial=False
            )
            errors.extend(
                source.error(f"properties.{problem.key}", problem.message)
                for problem in kept
                if problem.key not in properties
            )
        if data is not None:
            first = self.seen_codes.get(data.code.lower())
            if first is not None:
                errors.append(source.error("code", f"the code is on {first.place} already"))
            else:
                self.seen_codes[data.code.lower()] = source
        if errors or data is None:
            return None
        return PlannedRow(
            source=source,
            data=data,
            image_names=image_names,
            properties=canonical,
            schema=schema,
            new=current is None,
        )


def _changes(current: Material, row: PlannedRow) -> bool:
    """Whether writing `row` over `current` changes it (what a dry run can tell without
    writing; the write itself compares versions)."""
    given = row.data.model_dump(exclude={"code", "properties"}, exclude_unset=True)
    for name, value in given.items():
        held = getattr(current, name)
        if name == "status":
            value, held = str(value), str(held)
        if value != held:
            return True
    stored = current.properties
    return any(stored.get(key) != value for key, value in row.properties.items())


ImageAdder = Callable[[Material, str, bytes], Awaitable[bool]]


class ImageProblem(Exception):
    """An image of a row that could not be attached; `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Survey:
    """What one pass over the rows finds before they are checked: their codes, and the
    columns that name no field (each with the first record that has it, in JSON)."""

    codes: list[str]
    unknown: dict[str, SourceRow | None]  # None: a column of a CSV's header


def _survey(columns: _Columns, file: CatalogFile) -> _Survey:
    codes: list[str] = []
    unknown: dict[str, SourceRow | None] = {}
    if file.header is not None:
        # A CSV: every row has the header's columns, even when no row could be read.
        unknown.update((column, None) for column in file.header if columns.target(column) is None)
    for row in file.rows:
        if file.header is None:
            for column in row.values:
                if columns.target(column) is None and column not in unknown:
                    unknown[column] = row
        code = columns.fields(row.values).get("code")
        if not _blank(code):
            codes.append(str(code).strip())
    return _Survey(codes=codes, unknown=unknown)


def _unknown_column(column: str, row: SourceRow | None, categories: _Categories) -> RowError:
    """The problem of a column that names no field: where it is (the header of a CSV, the
    first record holding it in JSON), and the field it may have meant."""
    known = [*FIELDS, "sku", *(f"properties.{key}" for key in categories.property_keys())]
    close = difflib.get_close_matches(column.strip().lower(), known, n=1)
    meant = f' (did you mean "{close[0]}"?)' if close else ""
    message = (
        f"no field is called {column!r}{meant}, so its values are left out: name it after a "
        f'field or map it to one, or to "{IGNORE}"'
    )
    return RowError(None, 1, column, message) if row is None else row.error(column, message)


async def import_catalog(
    session: AsyncSession,
    *,
    actor: Actor,
    file: CatalogFile,
    mapping: Mapping[str, str],
    mode: ImportMode,
    dry_run: bool,
    add_image: ImageAdder | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> ImportReport:
    """Check every row, then (unless `dry_run` or refused by `mode`) write them.

    New materials are written a chunk at a time while the next chunk is checked (in a
    thread: the checks are Python, the writes the database's). All or nothing writes inside
    a savepoint, released only if no row had a problem; else the report is `refused`.
    A column that names no field is a problem of the file: all or nothing refuses it, skip
    invalid leaves the column out.
    """
    report = ImportReport(dry_run=dry_run)
    columns = _Columns(mapping)
    categories = _Categories(await list_categories(session, actor=actor))
    # Python over every row: in a thread, as every other pass over the rows is.
    survey = await asyncio.to_thread(_survey, columns, file)
    for problem in file.problems:
        report.add(problem)
    for column, first in survey.unknown.items():
        report.add(_unknown_column(column, first, categories))
    existing = await MaterialRepository(session).live_by_codes(actor.tenant_id, survey.codes)
    planner = _Planner(
        actor=actor,
        columns=columns,
        categories=categories,
        report=report,
        existing=existing,
        image_names=file.image_names,
    )
    all_or_nothing = mode == "all_or_nothing"
    if dry_run:
        await asyncio.to_thread(planner.plan, file.rows)
        planned = planner.planned
        report.created, report.updated = planned["create"], planned["update"]
        report.unchanged = planned["unchanged"]
        report.refused = all_or_nothing and report.error_count > 0
        return report
    savepoint = await session.begin_nested() if all_or_nothing else None
    try:
        writable, created = await _insert_new(session, actor, planner, file.rows, mode, progress)
        if all_or_nothing and report.error_count:
            return _refused(report)
        report.created = len(created)
        attach = _ImageAttacher(file, add_image, report)
        if add_image is not None:
            repository = MaterialRepository(session)
            for row in writable:
                if row.source.index in created and row.image_names:
                    material = await repository.get(actor.tenant_id, created[row.source.index])
                    if material is not None:
                        await attach(row, material)
        refusals = await _update_existing(
            session,
            actor,
            writable,
            existing,
            report,
            attach,
            None if progress is None else _offset(progress, len(created)),
        )
        if all_or_nothing and refusals:
            return _refused(report)
    except BaseException:
        if savepoint is not None:
            await savepoint.rollback()
        raise
    finally:
        if savepoint is not None and savepoint.is_active:
            await (savepoint.rollback() if report.refused else savepoint.commit())
    report.written = True
    if report.created or report.updated:
        await events.materials_text_changed(session, organization_id=actor.tenant_id)
    return report


def _refused(report: ImportReport) -> ImportReport:
    """`report` of an all or nothing import that found problems: nothing is written (the
    caller rolls back its transaction too, which removes the images it stored)."""
    report.refused = True
    report.created = report.updated = report.unchanged = report.images = 0
    return report


class _ImageAttacher:
    """Attaches the images a written row names to its material; an image that cannot be is
    reported at its row, and the material stays written."""

    def __init__(
        self, file: CatalogFile, add_image: ImageAdder | None, report: ImportReport
    ) -> None:
        self.file = file
        self.add_image = add_image
        self.report = report

    async def __call__(self, row: PlannedRow, material: Material) -> None:
        if self.add_image is None:
            return
        for name in row.image_names:
            try:
                if await self.add_image(material, name, self.file.images[name]):
                    self.report.images += 1
            except ImageProblem as problem:
                self.report.add(row.source.error("images", f"{name}: {problem.message}"))


async def _update_existing(
    session: AsyncSession,
    actor: Actor,
    writable: Sequence[PlannedRow],
    existing: dict[str, Material],
    report: ImportReport,
    attach: _ImageAttacher,
    progress: Callable[[int, int], Any] | None,
) -> int:
    """The valid rows for materials already in the catalog written over them, and their
    images attached; how many rows the database refused (reported, written no further)."""
    refusals = 0
    changing = [row for row in writable if not row.new]
    for index, row in enumerate(changing):
        try:
            material, outcome = await _write(session, actor, row.data, existing)
        except (InvalidProperties, CodeTaken, PriceWithoutCurrency, PriceTooPrecise) as exc:
            report.add(row.source.error(None, exc.detail or exc.title))
            report.valid -= 1
            refusals += 1
            if row.outcome is not None:
                row.outcome.action = "invalid"
            continue
        setattr(report, outcome, getattr(report, outcome) + 1)
        if row.outcome is not None:
            row.outcome.action = "update" if outcome == "updated" else "unchanged"
        await attach(row, material)
        if progress is not None and index % 500 == 0:
            await progress(index, len(writable))
    return refusals


def _offset(progress: Callable[[int, int], Any], done: int) -> Callable[[int, int], Any]:
    """`progress` told of rows after the `done` ones already counted."""

    def told(count: int, total: int) -> Any:
        return progress(done + count, total)

    return told


INSERT_BATCH = 5000


async def _insert_new(
    session: AsyncSession,
    actor: Actor,
    planner: _Planner,
    rows: Sequence[SourceRow],
    mode: ImportMode,
    progress: Callable[[int, int], Any] | None,
) -> tuple[list[PlannedRow], dict[int, uuid.UUID]]:
    """Every row checked, and the new materials among the valid ones inserted with their
    first versions, a chunk a statement; the valid rows, and the new materials' ids by row.

    All or nothing stops writing at the first problem but checks on, to report every one."""
    repository = MaterialRepository(session)
    chunks = [rows[start : start + INSERT_BATCH] for start in range(0, len(rows), INSERT_BATCH)]
    writable: list[PlannedRow] = []
    created: dict[int, uuid.UUID] = {}
    if not chunks:
        return writable, created
    following = asyncio.create_task(asyncio.to_thread(planner.prepare, chunks[0]))
    try:
        for index in range(len(chunks)):
            chunk = await following
            if index + 1 < len(chunks):
                following = asyncio.create_task(
                    asyncio.to_thread(planner.prepare, chunks[index + 1])
                )
            writable.extend(chunk.planned)
            if mode == "all_or_nothing" and planner.report.error_count:
                continue
            await repository.insert_many(actor.tenant_id, chunk.materials, chunk.versions)
            created.update(
                (row.source.index, columns["id"])
                for row, columns in zip(
                    (row for row in chunk.planned if row.new), chunk.materials, strict=True
                )
            )
            if progress is not None:
                await progress(min((index + 1) * INSERT_BATCH, len(rows)), len(rows))
    finally:
        # The next chunk's checks run on in their thread: wait for them, not leave them behind
        # (a failure of theirs is dropped for the one already on its way).
        if not following.done():
            await asyncio.wait([following])
        if not following.cancelled():
            following.exception()
    return writable, created


async def _write(
    session: AsyncSession,
    actor: Actor,
    data: MaterialCreate,
    existing: dict[str, Material],
) -> tuple[Material, str]:
    current = existing.get(data.code.lower())
    if current is None:
        material = await material_service.create_material(
            session, actor=actor, data=data, action="imported"
        )
        existing[data.code.lower()] = material
        return material, "created"
    changes = data.model_dump(exclude={"code"}, exclude_unset=True)
    before = current.version
    material = await material_service.update_material(
        session,
        actor=actor,
        material_id=current.id,
        changes=changes,
        if_match=None,
        action="imported",
    )
    return material, "updated" if material.version != before else "unchanged"


# --- export ---------------------------------------------------------------------------------


def export_columns(views: Sequence[CategoryView]) -> list[str]:
    keys: dict[str, None] = {}
    for view in views:
        for definition in view.effective:
            keys.setdefault(definition.key, None)
    return [
        "code", "name", "category", "description", "manufacturer", "supplier", "price",
        "currency", "tags", "status", *(f"properties.{key}" for key in keys),
    ]  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    if isinstance(value, dict) and "length" in value:
        sides = [value.get("length"), value.get("width"), value.get("thickness")]
        text = "x".join(_number(side) for side in sides if side is not None)
        return f"{text} {value['unit']}" if value.get("unit") else text
    if isinstance(value, dict) and "value" in value:
        return f"{_cell(value['value'])} {value['unit']}"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)


def _number(value: float) -> str:
    """`value` as the import reads it back exactly: the fewest digits that give the same float
    (`repr`'s), written out without an exponent, and a whole number without its ".0"."""
    if isinstance(value, int):
        return str(value)
    text = repr(value)
    if "e" in text:
        text = f"{Decimal(text):f}"
    return text.removesuffix(".0")


def export_record(material: Material | MaterialRow, categories: _Categories) -> dict[str, Any]:
    """One material as an import reads it back: measures with the unit they are kept in
    (`{"value": 20, "unit": "mm"}`, `20 mm` in a CSV), since two categories may keep one key
    in different units."""
    view = categories.by_id.get(material.category_id) if material.category_id else None
    # The category's definitions by key, made once per category for the whole export.
    schema = categories.definitions(view) if view is not None else {}
    properties: dict[str, Any] = {}
    for key, value in material.properties.items():
        definition = schema.get(key)
        unit = definition.unit if definition is not None else None
        if unit is not None and isinstance(value, dict):
            properties[key] = {**value, "unit": unit}
        elif unit is not None and isinstance(value, int | float):
            properties[key] = {"value": value, "unit": unit}
        else:
            properties[key] = value
    return {
        "code": material.code,
        "name": material.name,
        "category": categories.path_of(material.category_id),
        "description": material.description,
        "manufacturer": material.manufacturer,
        "supplier": material.supplier,
        "price": format_amount(material.price, material.currency)
        if material.price is not None
        else None,
        "currency": material.currency,
        "tags": list(material.tags),
        "status": material.status,
        "properties": properties,
    }


def csv_lines(records: Iterable[dict[str, Any]], columns: Sequence[str]) -> Iterable[str]:
    buffer = io.StringIO()
    # Cells that a spreadsheet would run as formulas are written as text; the import takes
    # the quote that does it off again (kai.kit.spreadsheets).
    writer = CsvWriter(buffer)
    writer.writerow(columns)
    yield buffer.getvalue()
    for record in records:
        buffer.seek(0)
        buffer.truncate()
        properties = record.get("properties", {})
        writer.writerow(
            [
                _cell(properties.get(column.removeprefix("properties.")))
                if column.startswith("properties.")
                else _cell(record.get(column))
                for column in columns
            ]
        )
        yield buffer.getvalue()


def categories_index(views: Sequence[CategoryView]) -> _Categories:
    return _Categories(views)
