"""Forget the labelled photos of feedback that contradicted itself.

Feedback used to accept "right" naming another category than KAI's answer (and "wrong"
naming the answer itself), and the photo was labelled with the category named: the next
training learned it as that, true or not. Such feedback is refused now; the photos it
labelled are no longer trained on (the feedback itself stays, as what was said).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


# Whether a feedback names KAI's answer: the material KAI answered (in a version labelled by
# material), or the category it answered or one inside it; never when KAI did not know.
NAMES_THE_ANSWER = """
    NOT recognition.unknown AND CASE
      WHEN feedback.material_id IS NOT NULL AND version.labelling->>'label_by' = 'material'
        THEN recognition.label IS NOT DISTINCT FROM (
          SELECT material.name || ' (' || material.code || ')' FROM materials AS material
          WHERE material.id = feedback.material_id)
      ELSE EXISTS (
        SELECT FROM categories AS named
        WHERE named.id = COALESCE(
            feedback.category_id,
            (SELECT material.category_id FROM materials AS material
             WHERE material.id = feedback.material_id))
          AND (named.id = recognition.category_id OR recognition.category_id = ANY(named.path)))
    END
"""


def upgrade() -> None:
    op.execute(
        f"""
        DELETE FROM labeled_photos AS labeled
        USING recognition_feedback AS feedback
          JOIN recognitions AS recognition ON recognition.id = feedback.recognition_id
          LEFT JOIN model_versions AS version ON version.id = recognition.model_version_id
        WHERE labeled.recognition_id = feedback.recognition_id
          AND (feedback.category_id IS NOT NULL OR feedback.material_id IS NOT NULL)
          AND feedback.correct IS DISTINCT FROM ({NAMES_THE_ANSWER})
        """
    )


def downgrade() -> None:
    # What was forgotten was false; nothing to bring back.
    pass
