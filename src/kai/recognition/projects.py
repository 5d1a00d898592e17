"""Projects: a client job grouping the photos recognized for it and the materials chosen.

A project shared with some teams is seen by their members and by owners and admins; one
shared with none by everyone who may read recognitions (identity's team condition). What is
filed in a project is seen as the project is: its recognitions and batches are hidden, like
the project, from whoever may not see it.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kai.catalog.categories import cached_categories
from kai.catalog.imports import categories_index
from kai.catalog.materials import get_material
from kai.catalog.models import Material
from kai.identity import audit
from kai.identity.actor import Actor
from kai.identity.errors import PermissionDenied
from kai.identity.permissions import Permission
from kai.identity.teams import teams_of, unknown_teams, visible_clause
from kai.kit import json, money
from kai.kit.db import scoped_transaction
from kai.kit.errors import Conflict, NotFound, Unprocessable
from kai.kit.pagination import PageParams
from kai.kit.spreadsheets import CsvWriter
from kai.recognition.models import Project, ProjectMaterial
from kai.recognition.repository import ProjectRepository, RecognitionRepository


class ProjectNotFound(NotFound):
    type, title = "project-not-found", "No such project"


class ProjectArchived(Conflict):
    type, title = "project-archived", "The project is archived"


class InvalidSharing(Unprocessable):
    type, title = "invalid-sharing", "The project cannot be shared so"


class ProjectNotEmpty(Conflict):
    type, title = "project-not-empty", "The project still has recognitions filed in it"


class NotInProject(NotFound):
    type, title = "not-in-project", "Not in this project"


@dataclass(frozen=True)
class Total:
    """What the chosen materials priced in one currency come to."""

    currency: str
    amount: Decimal
    materials: int


@dataclass
class ProjectSummary:
    project: Project
    recognitions: int
    materials: int
    totals: list[Total]

    @property
    def without_total(self) -> int:
        """Chosen materials left out of the totals: no quantity, or no price."""
        return self.materials - sum(total.materials for total in self.totals)


def line_total(
    quantity: Decimal | None, price: Decimal | None, currency: str | None
) -> Decimal | None:
    """A chosen material's quantity times its catalog price, to the currency's minor unit.

    A material has one price, for one unit of whatever it is sold by, and the quantity is
    taken to count that unit: KAI keeps no unit with a price to check the quantity's against.
    None without a quantity or a price."""
    if quantity is None or price is None or currency is None:
        return None
    return money.round_amount(quantity * price, currency)


def _totals(lines: list[tuple[Decimal, Decimal, str]]) -> list[Total]:
    """Line totals summed per currency, currencies in alphabetical order."""
    amounts: dict[str, Decimal] = {}
    counts: dict[str, int] = {}
    for quantity, price, currency in lines:
        amount = line_total(quantity, price, currency)
        assert amount is not None
        amounts[currency] = amounts.get(currency, Decimal(0)) + amount
        counts[currency] = counts.get(currency, 0) + 1
    return [Total(currency, amounts[currency], counts[currency]) for currency in sorted(amounts)]


async def visibility(session: AsyncSession, actor: Actor) -> ColumnElement[bool]:
    """A WHERE clause on projects: those `actor` may see (all, for owners, admins and the
    operator, whose teams need no query)."""
    teams = set() if actor.unrestricted else await teams_of(session, actor)
    return visible_clause(actor, teams, Project.shared_with)


async def _checked_sharing(
    session: AsyncSession, actor: Actor, team_ids: Collection[uuid.UUID]
) -> list[uuid.UUID]:
    """The teams, each of the organization; and the actor among those who will see it."""
    wanted = sorted(set(team_ids))
    if not wanted:
        return []
    unknown = await unknown_teams(session, actor.tenant_id, wanted)
    if unknown:
        raise InvalidSharing(
            f"No such team in this organization: {', '.join(sorted(map(str, unknown)))}.",
            errors=[{"loc": ["body", "team_ids"], "msg": "unknown team", "type": "value"}],
        )
    if not actor.unrestricted and not await teams_of(session, actor) & set(wanted):
        raise InvalidSharing(
            "You would no longer see the project: share it with a team of yours too.",
            errors=[{"loc": ["body", "team_ids"], "msg": "none of your teams", "type": "value"}],
        )
    return wanted


async def create_project(
    session: AsyncSession,
    *,
    actor: Actor,
    name: str,
    client: str,
    description: str,
    team_ids: Collection[uuid.UUID],
) -> Project:
    project = await ProjectRepository(session).add(
        Project(
            organization_id=actor.tenant_id,
            name=name,
            client=client,
            description=description,
            shared_with=await _checked_sharing(session, actor, team_ids),
            created_by=actor.author,
        )
    )
    await audit.record(
        session,
        action="project.created",
        organization_id=actor.tenant_id,
        actor=actor,
        target_type="project",
        target_id=str(project.id),
        details={"name": name, "team_ids": [str(team) for team in project.shared_with]},
    )
    return project


async def get_project(
    session: AsyncSession, *, actor: Actor, project_id: uuid.UUID, lock: bool = False
) -> Project:
    found = await ProjectRepository(session).get(
        actor.tenant_id, project_id, visible=await visibility(session, actor), lock=lock
    )
    if found is None:
        raise ProjectNotFound(f"No project {project_id} that you can see.")
    return found


async def summarize(
    session: AsyncSession, *, actor: Actor, projects: list[Project]
) -> list[ProjectSummary]:
    repository = ProjectRepository(session)
    ids = [project.id for project in projects]
    counts = await repository.counts(actor.tenant_id, ids)
    lines: dict[uuid.UUID, list[tuple[Decimal, Decimal, str]]] = {}
    for project_id, quantity, price, currency in await repository.priced_lines(
        actor.tenant_id, ids
    ):
        lines.setdefault(project_id, []).append((quantity, price, currency))
    return [
        ProjectSummary(project, *counts[project.id], totals=_totals(lines.get(project.id, [])))
        for project in projects
    ]


async def list_projects(
    session: AsyncSession,
    *,
    actor: Actor,
    status: str | None,
    text: str | None,
    team_id: uuid.UUID | None,
    params: PageParams,
) -> tuple[list[Project], str | None]:
    return await ProjectRepository(session).list_page(
        actor.tenant_id,
        visible=await visibility(session, actor),
        status=status,
        text=text,
        team_id=team_id,
        params=params,
    )


async def update_project(
    session: AsyncSession, *, actor: Actor, project_id: uuid.UUID, changes: dict[str, Any]
) -> Project:
    """Change what is given in `changes` (name, client, description, status, team_ids)."""
    project = await get_project(session, actor=actor, project_id=project_id)
    details: dict[str, Any] = {"changed": sorted(changes)}
    if "team_ids" in changes:
        project.shared_with = await _checked_sharing(session, actor, changes.pop("team_ids"))
        details["team_ids"] = [str(team) for team in project.shared_with]
    for field, value in changes.items():
        setattr(project, field, value)
    await ProjectRepository(session).touch(project)
    await audit.record(
        session,
        action="project.updated",
        organization_id=actor.tenant_id,
        actor=actor,
        target_type="project",
        target_id=str(project.id),
        details=details,
    )
    return project


async def delete_project(session: AsyncSession, *, actor: Actor, project_id: uuid.UUID) -> None:
    """The project and its list of chosen materials; its recognitions stay, filed nowhere.

    A project shared with some teams only is refused while anything is filed in it: its
    recognitions would become everyone's to see by a delete, not by a decision."""
    project = await get_project(session, actor=actor, project_id=project_id)
    repository = ProjectRepository(session)
    if project.shared_with and await repository.has_filed(actor.tenant_id, project.id):
        raise ProjectNotEmpty(
            f"Project {project.name!r} is shared with some teams only, and recognitions are "
            "filed in it: take them out, or share the project with everyone, first."
        )
    await repository.delete(project)
    await audit.record(
        session,
        action="project.deleted",
        organization_id=actor.tenant_id,
        actor=actor,
        target_type="project",
        target_id=str(project_id),
        details={"name": project.name},
    )


async def open_project(session: AsyncSession, *, actor: Actor, project_id: uuid.UUID) -> Project:
    """A project that work may still be filed in: seen by the actor, and not archived; kept
    from deletion until the transaction that files the work ends."""
    project = await get_project(session, actor=actor, project_id=project_id, lock=True)
    if project.status == "archived":
        raise ProjectArchived(f"Project {project.name!r} is archived: reopen it first.")
    return project


async def file_recognition(
    session: AsyncSession, *, actor: Actor, project_id: uuid.UUID, recognition_id: uuid.UUID
) -> None:
    """File a recognition in the project (taking it out of any other the actor sees)."""
    from kai.recognition.service import get_recognition

    project = await open_project(session, actor=actor, project_id=project_id)
    recognition = await get_recognition(session, actor=actor, recognition_id=recognition_id)
    moving = recognition.project_id is not None and recognition.project_id != project.id
    if moving and not actor.can(Permission.PROJECTS_MANAGE):
        # Taking it out of its project needs this permission; moving it does as well.
        raise PermissionDenied("Moving a recognition to another project needs projects:manage.")
    await ProjectRepository(session).file_recognition(actor.tenant_id, recognition.id, project.id)


async def unfile_recognition(
    session: AsyncSession, *, actor: Actor, project_id: uuid.UUID, recognition_id: uuid.UUID
) -> None:
    from kai.recognition.service import get_recognition

    project = await get_project(session, actor=actor, project_id=project_id)
    recognition = await get_recognition(session, actor=actor, recognition_id=recognition_id)
    if recognition.project_id != project.id:
        raise NotInProject(f"Recognition {recognition_id} is not filed in this project.")
    await ProjectRepository(session).file_recognition(actor.tenant_id, recognition.id, None)


async def choose_material(
    session: AsyncSession,
    *,
    actor: Actor,
    project_id: uuid.UUID,
    material_id: uuid.UUID,
    quantity: Decimal | None,
    unit: str | None,
    note: str,
    recognition_id: uuid.UUID | None,
) -> tuple[ProjectMaterial, Material]:
    """Choose a catalog material for the project, or change its quantity and note there."""
    project = await open_project(session, actor=actor, project_id=project_id)
    material = await get_material(session, actor=actor, material_id=material_id)
    if recognition_id is not None:
        found = await RecognitionRepository(session).get(
            actor.tenant_id, recognition_id, visible=await visibility(session, actor)
        )
        if found is None:
            raise NotInProject(
                f"No recognition {recognition_id} that you can see.",
                errors=[{"loc": ["body", "recognition_id"], "msg": "not found", "type": "value"}],
            )
    chosen = await ProjectRepository(session).choose(
        actor.tenant_id,
        project.id,
        material.id,
        quantity=quantity,
        unit=unit,
        note=note,
        recognition_id=recognition_id,
        added_by=actor.author,
    )
    return chosen, material


async def change_material(
    session: AsyncSession,
    *,
    actor: Actor,
    project_id: uuid.UUID,
    material_id: uuid.UUID,
    changes: dict[str, Any],
) -> tuple[ProjectMaterial, Material]:
    """Change what is said of a material chosen for the project: only the fields given."""
    project = await open_project(session, actor=actor, project_id=project_id)
    chosen = await ProjectRepository(session).chosen(actor.tenant_id, project.id, material_id)
    if chosen is None:
        raise NotInProject(f"Material {material_id} is not chosen for this project.")
    current = {
        "quantity": chosen.quantity,
        "unit": chosen.unit,
        "note": chosen.note,
        "recognition_id": chosen.recognition_id,
    }
    merged = {**current, **changes}
    if merged["note"] is None:
        merged["note"] = ""
    return await choose_material(
        session, actor=actor, project_id=project_id, material_id=material_id, **merged
    )


async def remove_material(
    session: AsyncSession, *, actor: Actor, project_id: uuid.UUID, material_id: uuid.UUID
) -> None:
    project = await get_project(session, actor=actor, project_id=project_id)
    repository = ProjectRepository(session)
    chosen = await repository.chosen(actor.tenant_id, project.id, material_id)
    if chosen is None:
        raise NotInProject(f"Material {material_id} is not chosen for this project.")
    await repository.unchoose(chosen)


async def project_materials(
    session: AsyncSession, *, actor: Actor, project_id: uuid.UUID, params: PageParams
) -> tuple[list[tuple[ProjectMaterial, Material]], str | None]:
    project = await get_project(session, actor=actor, project_id=project_id)
    return await ProjectRepository(session).chosen_page(actor.tenant_id, project.id, params)


# What an export lists of each chosen material, in this order.
EXPORT_COLUMNS = (
    "code", "name", "category", "quantity", "unit", "unit_price", "currency", "line_total",
    "note",
)  # fmt: skip
EXPORT_BATCH = 1000


def _quantity_text(quantity: Decimal | None) -> str | None:
    return None if quantity is None else f"{quantity.normalize():f}"


def _export_record(
    chosen: ProjectMaterial, material: Material, paths: Callable[[uuid.UUID | None], str]
) -> dict[str, Any]:
    price, currency = material.price, material.currency
    total = line_total(chosen.quantity, price, currency)
    return {
        "code": material.code,
        "name": material.name,
        "category": paths(material.category_id),
        "quantity": chosen.quantity,
        "unit": chosen.unit,
        "unit_price": money.format_amount(price, currency) if price is not None else None,
        "currency": currency,
        "line_total": money.format_amount(total, currency) if total is not None else None,
        "note": chosen.note,
    }


def _csv_piece(records: list[dict[str, Any]], *, header: bool) -> str:
    buffer = io.StringIO()
    # Names and notes a spreadsheet would run as formulas are written as text.
    writer = CsvWriter(buffer)
    if header:
        writer.writerow(EXPORT_COLUMNS)
    for record in records:
        cells = {**record, "quantity": _quantity_text(record["quantity"])}
        writer.writerow("" if cells[key] is None else cells[key] for key in EXPORT_COLUMNS)
    return buffer.getvalue()


def _json_record(record: dict[str, Any]) -> str:
    quantity = record["quantity"]
    # Quantities are JSON numbers here as in the API; money is a decimal string.
    shown = {**record, "quantity": None if quantity is None else float(quantity)}
    return json.dumps(shown).decode()


async def export_materials(
    session: AsyncSession,
    factory: async_sessionmaker[AsyncSession],
    *,
    actor: Actor,
    project_id: uuid.UUID,
    fmt: str,
) -> AsyncIterator[str]:
    """The materials chosen for a project as CSV or JSON pieces (JSON ends with the totals per
    currency), audited as the catalog export is.

    The pieces are read after the request's transaction has ended (a response streams after
    its endpoint returns), so they come from a transaction of their own; the totals are summed
    from the very lines written."""
    project = await get_project(session, actor=actor, project_id=project_id)
    await audit.record(
        session,
        action="project.exported",
        organization_id=actor.tenant_id,
        actor=actor,
        target_type="project",
        target_id=str(project.id),
        details={"format": fmt},
    )
    paths = categories_index(await cached_categories(session, actor=actor)).path_of
    organization_id = actor.tenant_id
    about = {"id": str(project.id), "name": project.name, "client": project.client}

    async def pieces() -> AsyncIterator[str]:
        async with scoped_transaction(factory, organization_id=organization_id) as own:
            repository = ProjectRepository(own)
            priced: list[tuple[Decimal, Decimal, str]] = []
            cursor: str | None = None
            first = True
            if fmt == "json":
                yield '{"project": ' + json.dumps(about).decode() + ', "materials": ['
            while True:
                rows, cursor = await repository.chosen_page(
                    organization_id, project.id, PageParams(cursor=cursor, limit=EXPORT_BATCH)
                )
                records = [_export_record(chosen, material, paths) for chosen, material in rows]
                priced += [
                    (chosen.quantity, material.price, material.currency)
                    for chosen, material in rows
                    if chosen.quantity is not None
                    and material.price is not None
                    and material.currency is not None
                ]
                if fmt == "csv":
                    yield _csv_piece(records, header=first)
                    first = False
                else:
                    for record in records:
                        yield ("" if first else ",") + _json_record(record)
                        first = False
                if cursor is None:
                    break
            if fmt == "json":
                totals = [
                    {
                        "currency": total.currency,
                        "amount": money.format_amount(total.amount, total.currency),
                        "material_count": total.materials,
                    }
                    for total in _totals(priced)
                ]
                yield '], "totals": ' + json.dumps(totals).decode() + "}"

    return pieces()
