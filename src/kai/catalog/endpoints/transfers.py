"""HTTP routes of catalog imports (exports are search's: any search result can be exported)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, Form, Response, UploadFile, status
from pydantic import BaseModel, Field

from kai.catalog import transfers
from kai.catalog.imports import ImportMode, check_mapping
from kai.deps import DbSession, RuntimeDep
from kai.identity.actor import Actor
from kai.identity.dependencies import AUTH_RESPONSES, require
from kai.identity.permissions import Permission
from kai.jobs.schemas import JobRead
from kai.kit.errors import InvalidValue, problem_responses
from kai.kit.routing import IndexedRouter
from kai.kit.schemas import RequestModel

router = IndexedRouter(prefix="/catalog", tags=["catalog transfers"], responses=AUTH_RESPONSES)

MaterialsImport = Annotated[
    Actor, Depends(require(Permission.MATERIALS_WRITE, rate_class="expensive"))
]


class ImportForm(RequestModel):
    file: UploadFile = Field(description="CSV (UTF-8), JSON, or zip.")
    mapping: str | None = Field(default=None, max_length=20_000)
    mode: ImportMode = "all_or_nothing"
    dry_run: bool = False


class RowProblem(BaseModel):
    index: int | None = Field(
        description="The record, counted from 0 (as a JSON list and a bulk request's `loc` "
        "count); null for a problem of the header."
    )
    line: int | None = Field(
        description="CSV: the line the row starts on, the header being line 1 (a spreadsheet's "
        "row number, unless a cell above holds a line break); null in JSON."
    )
    column: str | None = Field(description="The column or field, when the problem is one's.")
    message: str


class RowActionRead(BaseModel):
    index: int = Field(description="The record, counted from 0.")
    line: int | None = Field(description="CSV: the line the row starts on; null in JSON.")
    code: str | None
    action: Literal["create", "update", "unchanged", "invalid"] = Field(
        description="What the row does: creates a material, updates the one with its code, "
        "finds it as it says already, or is invalid (see `errors`)."
    )


class ImportReportRead(BaseModel):
    rows: int
    valid: int
    created: int = Field(
        description="Materials created (in a dry run, that the import would create; so for "
        "`updated` and `unchanged`)."
    )
    updated: int
    unchanged: int
    images: int
    error_count: int = Field(description="Every problem; `errors` lists the first 1,000.")
    errors: list[RowProblem]
    actions: list[RowActionRead] = Field(description="What each row does, the first 1,000.")
    dry_run: bool
    written: bool = Field(description="Whether the import was carried out.")
    refused: bool = Field(
        description="`all_or_nothing` found problems: nothing was written (in a dry run, "
        "nothing would be)."
    )


class ImportStarted(BaseModel):
    job: JobRead = Field(description="Follow it at `/api/v1/jobs/{id}`; its result is the report.")


def _mapping(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        mapping: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidValue("`mapping` must be a JSON object of column to field.") from exc
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise InvalidValue("`mapping` must be a JSON object of column to field.")
    return check_mapping(mapping)


@router.post(
    "/imports",
    summary="Import materials from CSV, JSON, or a zip of either with images",
    description="Columns named like fields (`code` or `sku`, `name`, `category` as a path such "
    "as `Stone > Marble`, `price`, `currency`, `tags` separated by `;`, `status`, "
    "`properties.<key>`, `images`) are taken as they are; `mapping` renames others "
    '(`{"Article no.": "code", "Finish": "properties.finish", "Notes": "ignore"}`). A column '
    "that names no field is a problem of the file: `all_or_nothing` refuses the file, "
    "`skip_invalid` leaves the column out. A row whose code is in the catalog updates that "
    "material, changing only what the row gives: an empty cell leaves its field as it is "
    "(clear a field with `PATCH /api/v1/materials/{id}`). `dry_run` answers the report at "
    "once, with what each row would do, and writes nothing; otherwise the import runs as a "
    "job (202), which fails with the report as its result when `all_or_nothing` refuses the "
    "file.",
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"model": ImportReportRead, "description": "The dry run's report."},
               **problem_responses(400, 413, 422)},
)  # fmt: skip
async def import_materials(
    actor: MaterialsImport,
    session: DbSession,
    runtime: RuntimeDep,
    response: Response,
    form: Annotated[ImportForm, Form()],
) -> ImportStarted | ImportReportRead:
    limits = runtime.image_limits
    data = await form.file.read()
    columns = _mapping(form.mapping)
    if form.dry_run:
        report = await transfers.dry_run(
            session,
            actor=actor,
            data=data,
            mapping=columns,
            mode=form.mode,
            limits=limits,
            max_inflated_bytes=runtime.settings.max_inflated_bytes,
        )
        response.status_code = status.HTTP_200_OK
        return ImportReportRead.model_validate(report.summary())
    job = await transfers.start_import(
        session,
        runtime.storage,
        actor=actor,
        data=data,
        file_name=form.file.filename or "",
        mapping=columns,
        mode=form.mode,
        limits=limits,
        max_inflated_bytes=runtime.settings.max_inflated_bytes,
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return ImportStarted(job=JobRead.from_job(job))
