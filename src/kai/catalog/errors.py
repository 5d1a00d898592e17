"""Errors of the catalog a client may see."""

from __future__ import annotations

from kai.kit.errors import Conflict, NotFound, Unprocessable


class CategoryNotFound(NotFound):
    type, title = "category-not-found", "No such category"


class MaterialNotFound(NotFound):
    type, title = "material-not-found", "No such material"


class MaterialVersionNotFound(NotFound):
    type, title = "material-version-not-found", "The material has no such version"


class ImageNotFound(NotFound):
    type, title = "image-not-found", "No such image"


class UnknownCategory(Unprocessable):
    type, title = "unknown-category", "The category named in the request does not exist"


class CategoryNameTaken(Conflict):
    type, title = "category-name-taken", "A sibling category has this name"
    constraints = ("uq_categories_sibling_name",)


class CategoryInUse(Conflict):
    type, title = "category-in-use", "The category still has subcategories or materials"


class InvalidCategoryMove(Unprocessable):
    type, title = "invalid-category-move", "The category cannot go there"


class PropertySchemaConflict(Unprocessable):
    type, title = "property-schema-conflict", "The property definitions contradict each other"


class PropertyInUse(Conflict):
    type, title = "property-in-use", "Materials use what the change would take away"


class MaterialNotDeleted(Conflict):
    type, title = "material-not-deleted", "Only a deleted material can be purged"


class InvalidProperties(Unprocessable):
    type, title = "invalid-properties", "Some property values do not fit the category's schema"


class CodeTaken(Conflict):
    type, title = "code-taken", "Another material has this code"
    constraints = ("uq_materials_org_code",)


class DuplicateImage(Conflict):
    type, title = "duplicate-image", "This image is already in the catalog"
    constraints = ("uq_material_images_org_sha256",)


class PriceWithoutCurrency(Unprocessable):
    type, title = "price-without-currency", "A price needs a currency"


class PriceTooPrecise(Unprocessable):
    type, title = "price-too-precise", "A price has more decimals than its currency"


class ImageNotReady(Conflict):
    type, title = "image-not-ready", "The image has no derivatives yet"


class UnknownLanguage(Unprocessable):
    type, title = "unknown-language", "The server has no text-search configuration by this name"


class BulkRejected(Unprocessable):
    type, title = "bulk-rejected", "Some materials have problems: nothing was written"
