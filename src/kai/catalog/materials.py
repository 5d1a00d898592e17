"""Materials: the products of a catalog, validated against their category's property schema,
with every change kept as a version and optimistic concurrency on the version number."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog import events
from kai.catalog.categories import effective_schema, referenced_category
from kai.catalog.errors import (
    CodeTaken,
    InvalidProperties,
    MaterialNotFound,
    PriceTooPrecise,
    PriceWithoutCurrency,
)
from kai.catalog.image_urls import thumbnail_url
from kai.catalog.models import (
    Category,
    Material,
    MaterialRow,
    MaterialStatus,
    MaterialVersion,
)
from kai.catalog.properties import (
    PropertyDefinition,
    PropertyError,
    present_properties,
    searchable_text,
    validate_properties,
)
from kai.catalog.repository import (
    CategoryRepository,
    ImageRepository,
    MaterialFilters,
    MaterialRepository,
)
from kai.catalog.schemas import MaterialCreate, MaterialRead, MaterialVersionRead, UnitSystem
from kai.identity import accounts, audit
from kai.identity.actor import Actor, author
from kai.kit.db import new_id
from kai.kit.errors import PreconditionFailed, conflict_for
from kai.kit.money import fits_currency, format_amount, minor_digits
from kai.kit.pagination import PageParams

# Fields a version records, in the order they are shown.
TRACKED_FIELDS = (
    "name",
    "code",
    "category_id",
    "description",
    "manufacturer",
    "supplier",
    "price",
    "currency",
    "tags",
    "status",
)


def etag(material: Material) -> str:
    return f'"{material.version}"'


def expected_versions(if_match: str | None) -> set[int] | None:
    """Versions an `If-Match` header allows (None: any; `*` too, the material existing)."""
    if if_match is None or if_match.strip() == "*":
        return None
    versions = set()
    for tag in if_match.split(","):
        value = tag.strip().removeprefix("W/").strip('"')
        if value.isdigit():
            versions.add(int(value))
    return versions


def check_version(material: Material, if_match: str | None) -> None:
    """412 unless `if_match` allows the material's current version."""
    allowed = expected_versions(if_match)
    if allowed is not None and material.version not in allowed:
        raise PreconditionFailed(
            f"The material is at version {material.version}; you sent {if_match}. "
            "Fetch it again and reapply your change.",
            headers={"ETag": etag(material)},
        )


async def unit_system(
    session: AsyncSession, actor: Actor, requested: UnitSystem | None
) -> UnitSystem:
    """The units asked for, else the person's preference, else metric."""
    if requested is not None:
        return requested
    if actor.units is not None:
        # Read with the access check (and current: a change to `users` empties its cache).
        return "imperial" if actor.units == "imperial" else "metric"
    if (
        actor.user_id is not None
        and await accounts.preferred_units(session, user_id=actor.user_id) == "imperial"
    ):
        return "imperial"
    return "metric"


def _errors(problems: Sequence[PropertyError]) -> list[dict[str, Any]]:
    return [
        {"loc": ["body", "properties", problem.key], "msg": problem.message, "type": problem.type}
        for problem in problems
    ]


def _checked(
    schema: Sequence[PropertyDefinition], values: Mapping[str, Any], *, partial: bool
) -> dict[str, Any]:
    canonical, problems = validate_properties(schema, values, partial=partial)
    if problems:
        raise InvalidProperties("See `errors` for each property.", errors=_errors(problems))
    return canonical


async def _schema(
    session: AsyncSession, organization_id: uuid.UUID, category_id: uuid.UUID | None
) -> list[PropertyDefinition]:
    if category_id is None:
        return []
    category = await referenced_category(session, organization_id, category_id)
    return await effective_schema(session, organization_id, category)


def _plain(value: Any) -> Any:
    """A value as a version stores it (JSON)."""
    if isinstance(value, Decimal):
        # 89.00 as sent and 89.0000 as stored are one price.
        return f"{value.normalize():f}"
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _snapshot(material: Material) -> dict[str, Any]:
    return {field: _plain(getattr(material, field)) for field in TRACKED_FIELDS}


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    changes = {}
    for field in TRACKED_FIELDS:
        if before.get(field) != after.get(field):
            changes[field] = {"old": before.get(field), "new": after.get(field)}
    old_properties = before.get("properties", {})
    new_properties = after.get("properties", {})
    for key in sorted(set(old_properties) | set(new_properties)):
        if old_properties.get(key) != new_properties.get(key):
            changes[f"properties.{key}"] = {
                "old": old_properties.get(key),
                "new": new_properties.get(key),
            }
    return changes


async def _record(
    session: AsyncSession,
    material: Material,
    action: str,
    changes: dict[str, Any],
    actor: Actor,
    *,
    restored_from: int | None = None,
) -> None:
    if action != "deleted":
        await events.materials_text_changed(session, organization_id=material.organization_id)
    await MaterialRepository(session).add_version(
        MaterialVersion(
            organization_id=material.organization_id,
            material_id=material.id,
            version=material.version,
            action=action,
            changes=changes,
            restored_from=restored_from,
            actor_type=actor.kind,
            actor_id=actor.audit_id,
        )
    )


async def _flush_unique(session: AsyncSession, material: Material, code: str) -> Material:
    # The pre-check leaves a window to a concurrent writer: the unique index closes it. The
    # error is raised here, not left to the HTTP handler, so that imports report it per row.
    try:
        return await MaterialRepository(session).refresh(material)
    except IntegrityError as exc:
        if isinstance(conflict_for(exc), CodeTaken):
            raise CodeTaken(f"Another material has the code {code!r}.") from exc
        raise


def validate_row_properties(
    schema: Sequence[PropertyDefinition], values: Mapping[str, Any], *, partial: bool = False
) -> tuple[dict[str, Any], list[PropertyError]]:
    """Canonical values and every problem, without raising (imports report them per row)."""
    return validate_properties(schema, values, partial=partial)


async def create_material(
    session: AsyncSession, *, actor: Actor, data: MaterialCreate, action: str = "created"
) -> Material:
    organization_id = actor.tenant_id
    schema = await _schema(session, organization_id, data.category_id)
    properties = _checked(schema, data.properties, partial=False)
    repository = MaterialRepository(session)
    if await repository.code_taken(organization_id, data.code):
        raise CodeTaken(f"Another material has the code {data.code!r}.")
    material = new_material(actor, data, properties, schema)
    session.add(material)
    material = await _flush_unique(session, material, data.code)
    await _record(session, material, action, creation_changes(material), actor)
    return material


def version_values(values: Mapping[str, Any], action: str, actor: Actor) -> dict[str, Any]:
    """The first version of a material written in bulk, as a row (`values`: its columns)."""
    return {
        "id": new_id(),
        "organization_id": values["organization_id"],
        "material_id": values["id"],
        "version": values["version"],
        "action": action,
        "changes": first_version_changes(values),
        "actor_type": actor.kind,
        "actor_id": actor.audit_id,
    }


def creation_changes(material: Material) -> dict[str, Any]:
    """A new material's first version: every field from nothing."""
    return first_version_changes(
        {field: getattr(material, field) for field in (*TRACKED_FIELDS, "properties")}
    )


def first_version_changes(values: Mapping[str, Any]) -> dict[str, Any]:
    """`creation_changes` from a new material's columns rather than its row object."""
    snapshot = {field: _plain(values[field]) for field in TRACKED_FIELDS}
    return _diff({"properties": {}}, {**snapshot, "properties": dict(values["properties"])})


def new_material(
    actor: Actor,
    data: MaterialCreate,
    properties: dict[str, Any],
    schema: Sequence[PropertyDefinition],
) -> Material:
    """The row of a new material from checked input (`properties` canonical)."""
    return Material(**new_material_values(actor, data, properties, schema))


def new_material_values(
    actor: Actor,
    data: MaterialCreate,
    properties: dict[str, Any],
    schema: Sequence[PropertyDefinition],
) -> dict[str, Any]:
    """`new_material`'s columns, for writing many at once without building row objects."""
    return {
        "id": new_id(),
        "organization_id": actor.tenant_id,
        "category_id": data.category_id,
        "name": data.name,
        "code": data.code,
        "description": data.description,
        "properties": properties,
        "properties_text": searchable_text(schema, properties),
        "manufacturer": data.manufacturer,
        "supplier": data.supplier,
        "price": data.price,
        "currency": data.currency if data.price is not None else None,
        "tags": data.tags,
        "status": data.status.value,
        "version": 1,
        "created_by": actor.author,
        "updated_by": actor.author,
    }


async def get_material(
    session: AsyncSession,
    *,
    actor: Actor,
    material_id: uuid.UUID,
    include_deleted: bool = False,
    for_update: bool = False,
) -> Material:
    material = await MaterialRepository(session).get(
        actor.tenant_id, material_id, include_deleted=include_deleted, for_update=for_update
    )
    if material is None:
        raise MaterialNotFound(f"No material {material_id} in this organization.")
    return material


def _price_after(
    material: Material, changes: Mapping[str, Any]
) -> tuple[Decimal | None, str | None]:
    """The price and currency `changes` leave, checked before anything is changed (an import
    goes on to its next row after a refusal): a price without a currency is no price, and one
    finer than its currency (the stored one, or the price stored, may be the other half) is
    refused rather than rounded."""
    price = changes.get("price", material.price)
    currency = None if price is None else material.currency
    if changes.get("currency") is not None and price is not None:
        currency = changes["currency"]
    if (price is None) != (currency is None):
        raise PriceWithoutCurrency(
            "A price needs its currency, and a currency a price.",
            errors=[
                {
                    "loc": ["body", "currency"],
                    "msg": "give price and currency together",
                    "type": "price_currency",
                }
            ],
        )
    sent = "price" in changes or currency != material.currency
    if sent and price is not None and currency is not None and not fits_currency(price, currency):
        field = "price" if "price" in changes else "currency"
        raise PriceTooPrecise(
            f"{currency} has {minor_digits(currency)} decimals: a price of "
            f"{price.normalize():f} is refused rather than rounded.",
            errors=[
                {
                    "loc": ["body", field],
                    "msg": f"more decimals than {currency} has",
                    "type": "price_too_precise",
                }
            ],
        )
    return price, currency


async def update_material(
    session: AsyncSession,
    *,
    actor: Actor,
    material_id: uuid.UUID,
    changes: dict[str, Any],
    if_match: str | None,
    action: str = "updated",
    include_deleted: bool = False,
) -> Material:
    """Apply the fields in `changes` (as sent: absent fields stay) to the current version;
    a deleted material too when `include_deleted` (to move it, or fix it before restoring)."""
    material = await get_material(
        session,
        actor=actor,
        material_id=material_id,
        include_deleted=include_deleted,
        for_update=True,
    )
    check_version(material, if_match)
    return await edit_material(
        session, actor=actor, material=material, changes=changes, action=action
    )


async def edit_material(
    session: AsyncSession,
    *,
    actor: Actor,
    material: Material,
    changes: Mapping[str, Any],
    action: str,
    restored_from: int | None = None,
) -> Material:
    """The one way a material's fields change, an edit's as a restore's: checked against its
    category's schema, its code's uniqueness and its price's currency, and recorded as a new
    version when anything changed. `changes["properties"]` is merged into the stored values
    (null removes one), unless the change restores version `restored_from`: then they are
    that version's, whole."""
    organization_id = actor.tenant_id
    before = {**_snapshot(material), "properties": dict(material.properties)}

    category_changed = "category_id" in changes and changes["category_id"] != material.category_id
    category_id = changes["category_id"] if category_changed else material.category_id
    schema = await _schema(session, organization_id, category_id)
    properties = dict(material.properties)
    whole = restored_from is not None
    if whole:
        # A version's values as stored then: none to remove one by one (with a null the schema
        # of another category would refuse as a key it does not know).
        properties = dict(changes["properties"])
    elif changes.get("properties") is not None:
        sent = changes["properties"]
        properties.update(_checked(schema, sent, partial=True))
        for key, value in sent.items():
            if value is None:
                properties.pop(key, None)
    if category_changed or whole:
        # Values already stored are canonical; the schema of today must accept them all.
        properties = _checked(schema, properties, partial=False)

    code = changes.get("code") or material.code
    # A deleted material's code is nobody's: only a live one's must be free.
    if (
        material.deleted_at is None
        and code.lower() != material.code.lower()
        and await MaterialRepository(session).code_taken(
            organization_id, code, other_than=material.id
        )
    ):
        raise CodeTaken(f"Another material has the code {code!r}.")
    price, currency = _price_after(material, changes)
    for field in ("name", "code", "description", "manufacturer", "supplier", "tags"):
        if changes.get(field) is not None:
            setattr(material, field, changes[field])
    if changes.get("status") is not None:
        material.status = str(changes["status"])
    material.price, material.currency = price, currency
    material.category_id = category_id
    material.properties = properties
    material.properties_text = searchable_text(schema, properties)

    after = {**_snapshot(material), "properties": properties}
    diff = _diff(before, after)
    if not diff:
        return material
    material.version += 1
    material.updated_by = actor.author
    material = await _flush_unique(session, material, code)
    await _record(session, material, action, diff, actor, restored_from=restored_from)
    return material


async def delete_material(
    session: AsyncSession, *, actor: Actor, material_id: uuid.UUID, if_match: str | None
) -> None:
    """Soft delete: hidden from reads and search, restorable, its code free for reuse."""
    material = await get_material(session, actor=actor, material_id=material_id, for_update=True)
    check_version(material, if_match)
    material.deleted_at = datetime.now(UTC)
    material.version += 1
    material.updated_by = actor.author
    await MaterialRepository(session).refresh(material)
    deleted_at = material.deleted_at.isoformat() if material.deleted_at else None
    await _record(
        session, material, "deleted", {"deleted_at": {"old": None, "new": deleted_at}}, actor
    )
    await audit.record(
        session,
        action="material.deleted",
        organization_id=material.organization_id,
        actor=actor,
        target_type="material",
        target_id=str(material.id),
        details={"code": material.code},
    )


async def delete_materials(
    session: AsyncSession, *, actor: Actor, material_ids: Sequence[uuid.UUID]
) -> int:
    """Soft-delete several materials, all or none: one unknown id refuses the lot."""
    found = await MaterialRepository(session).live_ids(actor.tenant_id, material_ids)
    missing = [str(material_id) for material_id in material_ids if material_id not in found]
    if missing:
        raise MaterialNotFound(
            f"No material {', '.join(missing[:20])} in this organization; nothing was deleted.",
            errors=[
                {"loc": ["body", "ids", index], "msg": "no such material", "type": "not_found"}
                for index, material_id in enumerate(material_ids)
                if str(material_id) in missing
            ],
        )
    for material_id in dict.fromkeys(material_ids):
        await delete_material(session, actor=actor, material_id=material_id, if_match=None)
    return len(set(material_ids))


async def restore_material(
    session: AsyncSession,
    *,
    actor: Actor,
    material_id: uuid.UUID,
    if_match: str | None,
    code: str | None = None,
) -> Material:
    """Bring a deleted material back, under a new `code` when given (its own may have been
    taken meanwhile); its values must still fit its category."""
    material = await get_material(
        session, actor=actor, material_id=material_id, include_deleted=True, for_update=True
    )
    check_version(material, if_match)
    if material.deleted_at is None:
        return material
    wanted = code or material.code
    if await MaterialRepository(session).code_taken(
        material.organization_id, wanted, other_than=material.id
    ):
        raise CodeTaken(
            f"Another material has the code {wanted!r}: restore this one under a new code "
            '(`{"code": "..."}`).',
            errors=[{"loc": ["body", "code"], "msg": "taken", "type": "code_taken"}],
        )
    schema = await _schema(session, material.organization_id, material.category_id)
    _, problems = validate_properties(schema, material.properties)
    if problems:
        raise InvalidProperties(
            "Its values no longer fit its category: change or move it first "
            f"(PATCH /api/v1/materials/{material.id}?include_deleted=true), then restore it.",
            errors=_errors(problems),
        )
    changes: dict[str, Any] = {"deleted_at": {"old": material.deleted_at.isoformat(), "new": None}}
    if wanted != material.code:
        changes["code"] = {"old": material.code, "new": wanted}
        material.code = wanted
    material.deleted_at = None
    material.version += 1
    material.updated_by = actor.author
    material = await _flush_unique(session, material, material.code)
    await _record(session, material, "restored", changes, actor)
    await audit.record(
        session,
        action="material.restored",
        organization_id=material.organization_id,
        actor=actor,
        target_type="material",
        target_id=str(material.id),
        details={"code": material.code},
    )
    return material


async def live_material_by_code(
    session: AsyncSession, *, actor: Actor, code: str
) -> Material | None:
    """The organization's live material with this code (codes compare without case)."""
    found = await MaterialRepository(session).live_by_codes(actor.tenant_id, [code])
    return found.get(code.lower())


async def list_materials(
    session: AsyncSession,
    *,
    actor: Actor,
    category_id: uuid.UUID | None,
    status: str | None,
    tag: str | None,
    include_deleted: bool,
    params: PageParams,
    deleted_only: bool = False,
) -> tuple[list[Material], str | None]:
    organization_id = actor.tenant_id
    category_ids = None
    if category_id is not None:
        category_ids = await CategoryRepository(session).subtree_ids(organization_id, category_id)
    filters = MaterialFilters(
        category_ids=category_ids,
        status=status,
        tag=tag,
        include_deleted=include_deleted,
        deleted_only=deleted_only,
    )
    return await MaterialRepository(session).list_page(organization_id, filters, params)


async def list_versions(
    session: AsyncSession, *, actor: Actor, material_id: uuid.UUID, params: PageParams
) -> tuple[list[MaterialVersion], str | None]:
    material = await get_material(
        session, actor=actor, material_id=material_id, include_deleted=True
    )
    return await MaterialRepository(session).versions_page(actor.tenant_id, material.id, params)


async def present_versions(
    session: AsyncSession,
    *,
    actor: Actor,
    material_id: uuid.UUID,
    versions: Sequence[MaterialVersion],
) -> list[MaterialVersionRead]:
    """Versions as the API shows them: who in the one form authors have, and each price with
    its currency's decimals, the currency being the one the material had then."""
    currencies = await MaterialRepository(session).currency_changes(actor.tenant_id, material_id)

    def currency_at(version: int) -> str | None:
        held = None
        for changed_in, currency in currencies:
            if changed_in > version:
                break
            held = currency
        return held

    def shown(value: Any, currency: str | None) -> Any:
        return value if value is None else format_amount(Decimal(str(value)), currency)

    presented = []
    for row in versions:
        changes = dict(row.changes)
        price = changes.get("price")
        if isinstance(price, dict):
            changes["price"] = {
                "old": shown(price.get("old"), currency_at(row.version - 1)),
                "new": shown(price.get("new"), currency_at(row.version)),
            }
        presented.append(
            MaterialVersionRead(
                version=row.version,
                action=row.action,
                changes=changes,
                restored_from=row.restored_from,
                changed_by=author(row.actor_type, row.actor_id),
                changed_at=row.changed_at,
            )
        )
    return presented


async def present(
    session: AsyncSession,
    *,
    actor: Actor,
    materials: Sequence[Material | MaterialRow],
    units: UnitSystem,
    schemas: Mapping[uuid.UUID, list[PropertyDefinition]] | None = None,
    shown: Mapping[uuid.UUID, uuid.UUID | None] | None = None,
) -> list[MaterialRead]:
    """Materials as the API shows them, properties in `units` (`schemas`: each category's
    effective definitions, and `shown`: the image each is shown by, as
    `ImageRepository.shown_of` chooses it, when the caller has them already)."""
    organization_id = actor.tenant_id
    category_ids = {m.category_id for m in materials if m.category_id is not None}
    # (Mapping is invariant in its keys: a map by category id is one by "id or None" too.)
    known = dict(cast(Mapping[uuid.UUID | None, list[PropertyDefinition]], schemas or {}))
    known[None] = []
    category_ids -= known.keys()
    if category_ids:
        categories: list[Category] = await CategoryRepository(session).many(
            organization_id, list(category_ids)
        )
        for category in categories:
            known[category.id] = await effective_schema(session, organization_id, category)
    if shown is None:
        shown = await ImageRepository(session).shown_of(organization_id, [m.id for m in materials])
    return [
        MaterialRead(
            id=material.id,
            category_id=material.category_id,
            name=material.name,
            code=material.code,
            description=material.description,
            properties=present_properties(
                known.get(material.category_id, []), material.properties, units
            ),
            manufacturer=material.manufacturer,
            supplier=material.supplier,
            price=material.price,
            currency=material.currency,
            tags=list(material.tags),
            status=MaterialStatus(material.status),
            version=material.version,
            units=units,
            thumbnail_url=(
                thumbnail_url(material.id, image)
                if (image := shown.get(material.id)) is not None
                else None
            ),
            deleted_at=material.deleted_at,
            created_by=material.created_by,
            updated_by=material.updated_by,
            created_at=material.created_at,
            updated_at=material.updated_at,
        )
        for material in materials
    ]
