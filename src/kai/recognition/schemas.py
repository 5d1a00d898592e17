"""API shapes of recognition."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    model_validator,
)

from kai.identity.actor import AUTHOR
from kai.kit.schemas import RequestModel


class Prediction(BaseModel):
    label: str
    category_id: uuid.UUID | None
    confidence: float = Field(description="Calibrated probability, 0 to 1.")


class SimilarMaterial(BaseModel):
    material_id: uuid.UUID
    name: str
    code: str
    score: float = Field(description="Cosine similarity of the photo to the material's image.")
    image_url: str = Field(description="The thumbnail of the material's most similar image.")


class ModelVersionRef(BaseModel):
    id: uuid.UUID
    number: int


class RecognitionRead(BaseModel):
    id: uuid.UUID
    created_at: datetime
    project_id: uuid.UUID | None = Field(description="The project it is filed in, if any.")
    file_name: str
    width: int
    height: int
    unknown: bool = Field(
        description="True when the best confidence is under the organization's threshold or "
        "the photo is unlike everything the model was trained on."
    )
    unknown_reason: Literal["low_confidence", "unlike_training"] | None
    label: str | None = Field(description="The best prediction's label; empty when unknown.")
    category_id: uuid.UUID | None
    confidence: float | None
    predictions: list[Prediction]
    similar: list[SimilarMaterial]
    model_version: ModelVersionRef | None
    timings: dict[str, float] = Field(description="Milliseconds per step of the recognition.")
    image_url: str = Field(description="The photo, re-encoded without its metadata.")


class FeedbackCreate(RequestModel):
    """Whether KAI's answer was right, what the photo is, or both (then they must agree)."""

    correct: bool | None = Field(
        default=None,
        description="Whether KAI's answer was right. Left out, it follows from `category_id` "
        "or `material_id`: right when they name what KAI answered (or something inside it).",
    )
    category_id: uuid.UUID | None = Field(
        default=None,
        description="What the photo really is (its category). With `correct: true`, the "
        "category KAI answered or one inside it; with `correct: false`, another.",
    )
    material_id: uuid.UUID | None = Field(
        default=None, description="Or which material it really is (the same rules apply)."
    )
    comment: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _says_something(self) -> FeedbackCreate:
        if self.category_id is None and self.material_id is None:
            if self.correct is None:
                raise ValueError(
                    "say whether the answer was right (correct), or what the photo is "
                    "(category_id or material_id)"
                )
            if not self.correct:
                raise ValueError("a wrong answer needs the right one: category_id or material_id")
        return self


class FeedbackRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    recognition_id: uuid.UUID
    correct: bool
    category_id: uuid.UUID | None
    material_id: uuid.UUID | None
    comment: str
    created_by: str | None = Field(description=AUTHOR)
    created_at: datetime


class RecognitionSettingsRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    confidence_threshold: float
    near_duplicate_threshold: float


ConfidenceThreshold = Annotated[
    float,
    Field(ge=0.0, le=1.0, description="Below this confidence a photo is called unknown."),
]
NearDuplicateThreshold = Annotated[
    float,
    Field(ge=0.5, le=1.0, description="Similarity from which two catalog images are reported as "
          "near-duplicates."),
]  # fmt: skip


class RecognitionSettingsUpdate(RequestModel):
    """Both thresholds (PUT replaces the settings whole)."""

    confidence_threshold: ConfidenceThreshold
    near_duplicate_threshold: NearDuplicateThreshold


class RecognitionSettingsChange(RequestModel):
    """The thresholds sent change; the others stay as they are."""

    confidence_threshold: ConfidenceThreshold | None = None
    near_duplicate_threshold: NearDuplicateThreshold | None = None


class BatchRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: Literal["queued", "running", "succeeded", "failed"]
    total: int = Field(description="Photos in the batch.")
    done: int = Field(description="Photos recognized so far.")
    failed: int = Field(description="Photos that could not be recognized.")
    options: dict[str, object]
    project_id: uuid.UUID | None
    job_id: uuid.UUID | None
    created_by: str | None = Field(description=AUTHOR)
    created_at: datetime
    finished_at: datetime | None


class BatchResultRead(BaseModel):
    """What one photo of a batch was recognized as, or why it failed."""

    position: int = Field(description="The photo's place in the upload, from 1.")
    file_name: str
    status: Literal["pending", "recognized", "failed"]
    error: str | None
    recognition_id: uuid.UUID | None = Field(
        description="Absent while pending, on failure, or when the recognition was filed in a "
        "project you do not see."
    )
    label: str | None
    confidence: float | None
    unknown: bool | None
    unknown_reason: str | None = Field(description="As the recognition's `unknown_reason`.")
    similar_material_id: uuid.UUID | None = Field(description="The most similar material.")
    similar_name: str | None
    similar_code: str | None
    similar_score: float | None


ProjectName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ClientName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
TeamIds = Annotated[
    list[uuid.UUID],
    Field(
        max_length=100,
        description="Teams whose members see the project (with owners and admins); empty: "
        "everyone who may read recognitions.",
    ),
]
# Quantities are exact (3 decimals, as ordered: 12.5 m2, 40 boxes) and read as JSON numbers.
Quantity = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=3),
    PlainSerializer(float, return_type=float, when_used="json"),
]


class ProjectCreate(RequestModel):
    name: ProjectName
    client: ClientName = ""
    description: Description = ""
    team_ids: TeamIds = Field(default_factory=list)


class ProjectUpdate(RequestModel):
    """Only the fields given change."""

    name: ProjectName | None = None
    client: ClientName | None = None
    description: Description | None = None
    status: Literal["active", "archived"] | None = Field(
        default=None, description="An archived project takes no new recognitions or materials."
    )
    team_ids: TeamIds | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> ProjectUpdate:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null: leave a field out to keep it")
        return self


class MoneyTotal(BaseModel):
    currency: str = Field(description="ISO 4217.")
    amount: str = Field(
        description="The line totals in this currency summed, as a decimal string with the "
        "currency's decimals (`1234.50`)."
    )
    material_count: int = Field(description="The chosen materials summed in it.")


class ProjectRead(BaseModel):
    id: uuid.UUID
    name: str
    client: str
    description: str
    status: Literal["active", "archived"]
    team_ids: list[uuid.UUID]
    recognition_count: int
    material_count: int
    totals: list[MoneyTotal] = Field(
        description="What the chosen materials come to, per currency (quantity times catalog "
        "price, each line rounded to the currency's minor unit)."
    )
    materials_without_total: int = Field(
        description="Chosen materials left out of `totals`: no quantity, or no catalog price."
    )
    created_by: str | None = Field(description=AUTHOR)
    created_at: datetime
    updated_at: datetime


class ProjectMaterialPut(RequestModel):
    quantity: Quantity | None = None
    unit: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] | None = Field(
        default=None, description="What the quantity counts: m2, pieces, boxes..."
    )
    note: Annotated[str, StringConstraints(max_length=1000)] = ""
    recognition_id: uuid.UUID | None = Field(
        default=None, description="The recognition the material was chosen from, if any."
    )


class ProjectMaterialChange(RequestModel):
    """The fields sent change (`null` clears quantity, unit or recognition); the rest stay."""

    quantity: Quantity | None = None
    unit: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] | None = None
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None
    recognition_id: uuid.UUID | None = None


class ProjectMaterialRead(BaseModel):
    material_id: uuid.UUID
    name: str
    code: str
    category_id: uuid.UUID | None
    deleted: bool = Field(description="The material was deleted from the catalog since.")
    quantity: Quantity | None
    unit: str | None
    price: str | None = Field(
        description="The material's catalog price now, per unit of the quantity, as a decimal "
        "string with the currency's decimals."
    )
    currency: str | None
    line_total: str | None = Field(
        description="`quantity` times `price`, rounded to the currency's minor unit; null "
        "without either. KAI keeps no unit with a price: the quantity is taken to count the "
        "unit the material is priced by."
    )
    note: str
    recognition_id: uuid.UUID | None
    added_by: str | None = Field(description=AUTHOR)
    added_at: datetime
