"""Categories: a tree per organization, each node with property definitions its subtree
inherits."""

from __future__ import annotations

import copy
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from kai.catalog.errors import (
    CategoryInUse,
    CategoryNotFound,
    InvalidCategoryMove,
    PropertyInUse,
    PropertySchemaConflict,
    UnknownCategory,
)
from kai.catalog.models import Category
from kai.catalog.properties import PropertyDefinition, merge_definitions, validate_properties
from kai.catalog.repository import CategoryRepository, MaterialRepository
from kai.catalog.units import same_dimension
from kai.identity import audit
from kai.identity.actor import Actor
from kai.kit.pagination import PageParams, paginate_sequence

# A tree deeper than this is a mistake, not a taxonomy.
MAX_DEPTH = 12
# Organizations whose trees a process keeps (the least recently used one goes first).
CACHED_TREES = 256


@dataclass(frozen=True)
class CategoryView:
    category: Category
    effective: list[PropertyDefinition]


def definitions_of(category: Category) -> list[PropertyDefinition]:
    return [PropertyDefinition.model_validate(item) for item in category.properties]


def _effective(chain: Sequence[Category]) -> list[PropertyDefinition]:
    """Root-first chain of categories: their merged definitions (descendants win)."""
    try:
        return merge_definitions([definitions_of(category) for category in chain])
    except ValueError as exc:
        raise PropertySchemaConflict(str(exc)) from exc


async def effective_schema(
    session: AsyncSession, organization_id: uuid.UUID, category: Category
) -> list[PropertyDefinition]:
    """The property definitions a material filed under `category` must follow."""
    ancestors = await CategoryRepository(session).many(organization_id, category.path)
    by_id = {ancestor.id: ancestor for ancestor in ancestors}
    return _effective([*(by_id[i] for i in category.path if i in by_id), category])


async def list_categories(session: AsyncSession, *, actor: Actor) -> list[CategoryView]:
    categories = await CategoryRepository(session).all(actor.tenant_id)
    return _views(categories)


def _tree_order(view: CategoryView) -> tuple[int, int, str, uuid.UUID]:
    """Parents before children (level by level), siblings by position, then name; the id
    settles ties between children of different parents."""
    category = view.category
    return (len(category.path), category.position, category.name.lower(), category.id)


async def page_of_categories(
    session: AsyncSession, *, actor: Actor, params: PageParams
) -> tuple[list[CategoryView], str | None]:
    """A page of the tree, in its order: a category's parent is on its page or an earlier one."""
    views = await cached_categories(session, actor=actor)
    return paginate_sequence(views, key=_tree_order, params=params)


def _views(categories: Sequence[Category]) -> list[CategoryView]:
    # Parents come first: each category's schema is its parent's, merged with its own.
    effective: dict[uuid.UUID, list[PropertyDefinition]] = {}
    views = []
    for category in categories:
        inherited = effective.get(category.parent_id) if category.parent_id else []
        try:
            merged = merge_definitions([inherited or [], definitions_of(category)])
        except ValueError as exc:
            raise PropertySchemaConflict(str(exc)) from exc
        effective[category.id] = merged
        views.append(CategoryView(category, merged))
    return views


# organization -> (tree version, its views), most recently used last.
_trees: OrderedDict[uuid.UUID, tuple[int, tuple[CategoryView, ...]]] = OrderedDict()


async def cached_categories(session: AsyncSession, *, actor: Actor) -> Sequence[CategoryView]:
    """The tree as `list_categories` reads it, from this process's memory while its version
    (read in the caller's transaction, so its own changes count) is the one cached.

    Read-only: the categories are copies that belong to no session, shared by every caller.
    """
    organization_id = actor.tenant_id
    repository = CategoryRepository(session)
    # The version first: a tree read after it is at least as new as what it names.
    version = await repository.tree_version(organization_id)
    if version is None:
        return await list_categories(session, actor=actor)
    cached = _trees.get(organization_id)
    if cached is not None and cached[0] == version:
        _trees.move_to_end(organization_id)
        return cached[1]
    views = tuple(_views([_detached(c) for c in await repository.all(organization_id)]))
    _trees[organization_id] = (version, views)
    _trees.move_to_end(organization_id)
    while len(_trees) > CACHED_TREES:
        _trees.popitem(last=False)
    return views


def tree_at(organization_id: uuid.UUID, version: int | None) -> Sequence[CategoryView] | None:
    """The tree `cached_categories` keeps for the organization, if it is the one of `version`
    (read by the caller in its transaction); None otherwise."""
    cached = _trees.get(organization_id)
    if version is None or cached is None or cached[0] != version:
        return None
    _trees.move_to_end(organization_id)
    return cached[1]


def _detached(category: Category) -> Category:
    """A copy of the category that no session tracks, sharing nothing with the original (which
    stays the caller's)."""
    columns = [attribute.key for attribute in inspect(Category).column_attrs]
    return Category(**{name: copy.deepcopy(getattr(category, name)) for name in columns})


async def get_category(
    session: AsyncSession, *, actor: Actor, category_id: uuid.UUID, for_update: bool = False
) -> Category:
    category = await CategoryRepository(session).get(
        actor.tenant_id, category_id, for_update=for_update
    )
    if category is None:
        raise CategoryNotFound(f"No category {category_id} in this organization.")
    return category


async def view(session: AsyncSession, *, actor: Actor, category: Category) -> CategoryView:
    return CategoryView(category, await effective_schema(session, actor.tenant_id, category))


async def referenced_category(
    session: AsyncSession,
    organization_id: uuid.UUID,
    category_id: uuid.UUID,
    *,
    field: str = "category_id",
) -> Category:
    """A category named in a request body's `field`: 422 when there is none (the body is at
    fault, not the URL)."""
    category = await CategoryRepository(session).get(organization_id, category_id)
    if category is None:
        raise UnknownCategory(
            f"No category {category_id} in this organization.",
            errors=[{"loc": ["body", field], "msg": "no such category", "type": "unknown"}],
        )
    return category


async def create_category(
    session: AsyncSession,
    *,
    actor: Actor,
    name: str,
    parent_id: uuid.UUID | None,
    description: str,
    position: int | None,
    properties: list[PropertyDefinition],
) -> CategoryView:
    organization_id = actor.tenant_id
    repository = CategoryRepository(session)
    path: list[uuid.UUID] = []
    chain: list[Category] = []
    if parent_id is not None:
        parent = await referenced_category(session, organization_id, parent_id, field="parent_id")
        path = [*parent.path, parent.id]
        if len(path) >= MAX_DEPTH:
            raise InvalidCategoryMove(f"Categories nest at most {MAX_DEPTH} levels deep.")
        by_id = {c.id: c for c in await repository.many(organization_id, parent.path)}
        chain = [*(by_id[i] for i in parent.path if i in by_id), parent]
    # Sibling names are unique by the database's index (CategoryNameTaken), not by a look
    # first: that would race with a concurrent create, and could fold case differently.
    category = Category(
        organization_id=organization_id,
        parent_id=parent_id,
        name=name,
        description=description,
        position=position
        if position is not None
        else await repository.next_position(organization_id, parent_id),
        path=path,
        properties=[definition.model_dump(exclude_defaults=True) for definition in properties],
    )
    effective = _effective([*chain, category])
    category = await repository.add(category)
    tree = {c.id: c for c in await repository.all(organization_id)}
    _keys_agree(tree, _schemas(tree))
    return CategoryView(category, effective)


async def update_category(
    session: AsyncSession,
    *,
    actor: Actor,
    category_id: uuid.UUID,
    changes: dict[str, Any],
) -> CategoryView:
    """Rename, describe, reorder, move (`parent_id`, None for the top) or redefine properties.
    A rename or a move queues the job that rewrites its subtree's materials' documents."""
    from kai.catalog.tasks import reindex_documents

    organization_id = actor.tenant_id
    repository = CategoryRepository(session)
    category = await get_category(session, actor=actor, category_id=category_id, for_update=True)
    before = _schemas({c.id: c for c in await repository.all(organization_id)}, within=category.id)
    parent_id = changes.get("parent_id", category.parent_id)
    name = changes.get("name") or category.name
    moved = "parent_id" in changes and parent_id != category.parent_id
    renamed = name.lower() != category.name.lower()
    new_path = category.path
    if moved:
        if parent_id is None:
            new_path = []
        else:
            parent = await referenced_category(
                session, organization_id, parent_id, field="parent_id"
            )
            if parent.id == category.id or category.id in parent.path:
                raise InvalidCategoryMove("A category cannot move under itself or its subtree.")
            new_path = [*parent.path, parent.id]
        descendants = await repository.descendants(organization_id, category.id)
        depth_below = max((len(d.path) - len(category.path) for d in descendants), default=0)
        if len(new_path) + depth_below >= MAX_DEPTH:
            raise InvalidCategoryMove(f"Categories nest at most {MAX_DEPTH} levels deep.")
    if "properties" in changes and changes["properties"] is not None:
        category.properties = [
            definition.model_dump(exclude_defaults=True) for definition in changes["properties"]
        ]
    for field in ("name", "description", "position"):
        if changes.get(field) is not None:
            setattr(category, field, changes[field])
    if moved:
        category.parent_id = parent_id
        await repository.move_subtree(organization_id, category.id, new_path)
        category.path = new_path
    # The new shape must hold for the category and for everything inheriting from it, and
    # for the materials filed there.
    await session.flush()
    tree = {c.id: c for c in await repository.all(organization_id)}
    subtree = [c for c in tree.values() if c.id == category.id or category.id in c.path]
    schemas = _schemas(tree)
    _keys_agree(tree, schemas)
    after = {member.id: schemas[member.id] for member in subtree}
    await _refuse_stranding(session, organization_id, before, after)
    if moved or renamed:
        # The subtree's materials name these categories in their search documents: a job
        # rewrites them (work that grows with the catalog, on the organization's heavy slots).
        await reindex_documents.enqueue(
            session,
            params={"category_ids": [str(member.id) for member in subtree]},
            organization_id=organization_id,
        )
    await session.refresh(category)
    return CategoryView(category, schemas[category.id])


def _schemas(
    tree: Mapping[uuid.UUID, Category], *, within: uuid.UUID | None = None
) -> dict[uuid.UUID, list[PropertyDefinition]]:
    """The effective schema of each category of a tree (of `within` and those under it only,
    when given)."""
    return {
        member.id: _effective([*(tree[i] for i in member.path if i in tree), member])
        for member in tree.values()
        if within is None or member.id == within or within in member.path
    }


def _keys_agree(
    tree: Mapping[uuid.UUID, Category], schemas: Mapping[uuid.UUID, list[PropertyDefinition]]
) -> None:
    """A key means one thing across the catalog: one type and, for measures, one dimension
    (units may differ: Tiles may keep thickness in mm and Stone in cm), so that a search
    filter or facet on it compares like with like in every category."""
    seen: dict[str, tuple[PropertyDefinition, Category]] = {}
    for category_id, schema in schemas.items():
        category = tree[category_id]
        for definition in schema:
            first = seen.setdefault(definition.key, (definition, category))
            other, where = first
            if other.type != definition.type:
                raise PropertySchemaConflict(
                    f"property {definition.key!r} is of type {other.type} in {where.name}; "
                    f"it cannot be {definition.type} in {category.name}: a key means one "
                    "thing across the catalog (give this one another key)"
                )
            if (
                other.unit is not None
                and definition.unit is not None
                and not same_dimension(other.unit, definition.unit)
            ):
                raise PropertySchemaConflict(
                    f"property {definition.key!r} is kept in {other.unit} in {where.name}; "
                    f"{definition.unit} in {category.name} measures something else: a key "
                    "means one thing across the catalog (give this one another key)"
                )


async def _refuse_stranding(
    session: AsyncSession,
    organization_id: uuid.UUID,
    before: dict[uuid.UUID, list[PropertyDefinition]],
    after: dict[uuid.UUID, list[PropertyDefinition]],
) -> None:
    """Refuse a change of definitions (or of the ancestors a move brings) that live materials'
    values would no longer fit: a removed property or option they use, a narrower range, a
    property made required that some lack. The answer counts them and says what each key
    would break; nothing is rewritten behind the catalog manager's back."""
    materials = MaterialRepository(session)
    stranded: dict[str, set[uuid.UUID]] = {}
    reasons: dict[str, str] = {}
    for category_id, schema in after.items():
        old = {definition.key: definition for definition in before.get(category_id, [])}
        new = {definition.key: definition for definition in schema}
        changed = [key for key in old.keys() | new.keys() if old.get(key) != new.get(key)]
        if not changed:
            continue
        rows = await materials.stored_properties(
            organization_id,
            category_id,
            changed,
            every_material=any(key in new and new[key].required for key in changed),
        )
        definitions = [new[key] for key in changed if key in new]
        for material_id, values in rows:
            _, errors = validate_properties(definitions, values)
            for error in errors:
                stranded.setdefault(error.key, set()).add(material_id)
                reasons.setdefault(error.key, error.message)
    if stranded:
        count = len(set().union(*stranded.values()))
        details = "; ".join(
            f"{key} of {len(ids)} ({reasons[key]})" for key, ids in sorted(stranded.items())
        )
        raise PropertyInUse(
            f"{count} material(s) in this category or under it would no longer fit: "
            f"{details}. Change or move those materials first "
            "(a search filter on the property finds them), then change the definitions.",
            errors=[
                {
                    "loc": ["body", "properties"],
                    "msg": f"{key}: {len(ids)} material(s): {reasons[key]}",
                    "type": "in_use",
                }
                for key, ids in sorted(stranded.items())
            ],
        )


async def delete_category(session: AsyncSession, *, actor: Actor, category_id: uuid.UUID) -> None:
    organization_id = actor.tenant_id
    repository = CategoryRepository(session)
    category = await get_category(session, actor=actor, category_id=category_id, for_update=True)
    if await repository.has_children(organization_id, category.id):
        raise CategoryInUse("Move or delete its subcategories first.")
    materials = MaterialRepository(session)
    count = await materials.count_in_categories(organization_id, [category.id])
    if count:
        deleted = await materials.count_deleted_in_categories(organization_id, [category.id])
        live = count - deleted
        moved = f"{live} material(s) are filed under it: move them first" if live else ""
        purged = (
            f"{deleted} deleted material(s) are filed under it: purge them "
            "(`?purge_deleted_materials=true`, or `POST /api/v1/materials/{id}/purge`), or "
            "move them (`PATCH /api/v1/materials/{id}?include_deleted=true`)"
            if deleted
            else ""
        )
        raise CategoryInUse("; ".join(part for part in (moved, purged) if part) + ".")
    await repository.delete(category)
    await audit.record(
        session,
        action="category.deleted",
        organization_id=organization_id,
        actor=actor,
        target_type="category",
        target_id=str(category_id),
        details={"name": category.name},
    )
