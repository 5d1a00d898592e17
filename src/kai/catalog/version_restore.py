"""Restoring a material to an earlier version: that version's values brought back through the
edit's own checks, as one more version, since history is never rewritten.

A version records what changed (each field's old and new value), not the whole material, so
the values of an earlier version are the current ones with every later change undone.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.errors import (
    CodeTaken,
    InvalidProperties,
    MaterialVersionNotFound,
    UnknownCategory,
)
from kai.catalog.materials import TRACKED_FIELDS, check_version, edit_material, get_material
from kai.catalog.models import Material, MaterialVersion
from kai.catalog.repository import MaterialRepository
from kai.identity import audit
from kai.identity.actor import Actor
from kai.kit.errors import KaiError, Unprocessable


async def restore_version(
    session: AsyncSession,
    *,
    actor: Actor,
    material_id: uuid.UUID,
    version: int,
    if_match: str | None,
) -> Material:
    """Bring back the values a material had at `version` as a new version that says so,
    checked as an edit is (by the category and schema of today). A version whose values are
    the current ones changes nothing and makes no version."""
    material = await get_material(session, actor=actor, material_id=material_id, for_update=True)
    check_version(material, if_match)
    since = await MaterialRepository(session).versions_since(
        material.organization_id, material.id, version
    )
    if not since or since[-1].version != version:
        raise MaterialVersionNotFound(
            f"Material {material.id} has no version {version}; it is at version {material.version}."
        )
    later = since[:-1]
    if not later:
        # The current version: nothing to bring back (nor to check again).
        return material
    current = material.version
    values = values_at(material, later)
    try:
        material = await edit_material(
            session,
            actor=actor,
            material=material,
            changes=values,
            action="updated",
            restored_from=version,
        )
    except (Unprocessable, CodeTaken) as refused:
        raise _refused(refused, version, values) from refused
    if material.version != current:
        await audit.record(
            session,
            action="material.version_restored",
            organization_id=material.organization_id,
            actor=actor,
            target_type="material",
            target_id=str(material.id),
            details={"code": material.code, "restored_from": version, "version": material.version},
        )
    return material


def values_at(material: Material, later: Sequence[MaterialVersion]) -> dict[str, Any]:
    """The fields a material had before its `later` versions (newest first) were made, typed
    as an edit takes them."""
    values: dict[str, Any] = {field: getattr(material, field) for field in TRACKED_FIELDS}
    properties = dict(material.properties)
    for row in later:
        for field, change in row.changes.items():
            old = change.get("old") if isinstance(change, dict) else None
            if field in TRACKED_FIELDS:
                values[field] = old
            elif field.startswith("properties."):
                key = field.removeprefix("properties.")
                # A property without a value is one the material did not have.
                if old is None:
                    properties.pop(key, None)
                else:
                    properties[key] = old
    # A version holds them as JSON: ids and prices as strings.
    category_id, price = values["category_id"], values["price"]
    values["category_id"] = None if category_id is None else uuid.UUID(str(category_id))
    values["price"] = None if price is None else Decimal(str(price))
    return {**values, "properties": properties}


def _refused(refused: KaiError, version: int, values: Mapping[str, Any]) -> KaiError:
    """An edit's refusal said of the version restored (`values`: its fields). No request body
    held them, so the field errors name the material's fields (`["properties", "thickness"]`)."""
    errors = [
        {**error, "loc": [part for part in error["loc"] if part != "body"]}
        for error in refused.errors or []
    ]
    if isinstance(refused, UnknownCategory):
        why = f"Version {version} was filed under a category that no longer exists."
    elif isinstance(refused, InvalidProperties):
        reasons = "; ".join(f"{error['loc'][-1]} {error['msg']}" for error in errors)
        why = f"Version {version} no longer fits its category's properties: {reasons}."
    elif isinstance(refused, CodeTaken):
        why = (
            f"Version {version} had the code {values['code']!r}, which another material holds now."
        )
    else:
        why = f"Version {version} cannot be restored as it was: {refused.detail or refused.title}"
    return type(refused)(
        f"{why.rstrip('.')}. Change the material by hand instead.",
        headers=refused.headers,
        errors=errors or None,
    )
