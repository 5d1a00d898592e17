"""The pictures of a model people read are real, legible PNGs whatever the label count."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from kai.ml import plots


def _picture(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    assert picture.format == "PNG"
    return picture


def test_a_confusion_matrix_shades_each_cell_by_its_share_of_the_true_label() -> None:
    labels = ["Marble", "Oak", "Terrazzo"]
    # Marble always right, Oak always called Terrazzo.
    matrix = [[10, 0, 0], [0, 0, 10], [0, 0, 10]]

    picture = _picture(plots.confusion_matrix_png(labels, matrix, title="accuracy 0.667"))

    assert 300 < picture.width < 2000
    assert 300 < picture.height < 2000
    pixels = np.asarray(picture.convert("L"), dtype=np.float64)
    # Dark cells (whole rows' shares) and light ones (none) are both drawn.
    assert pixels.min() < 80
    assert pixels.max() > 240


def test_many_labels_still_make_a_bounded_picture() -> None:
    size = 120
    matrix = np.eye(size, dtype=int) * 3
    picture = _picture(plots.confusion_matrix_png([f"label {i}" for i in range(size)], matrix))
    assert picture.width < 3000
    assert picture.height < 3000


def test_per_class_figures_have_a_bar_row_per_label() -> None:
    rows = [
        {"label": name, "precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 12}
        for name in ("Marble", "Oak", "Terrazzo", "Slate")
    ]
    few = _picture(plots.per_class_png(rows[:2]))
    many = _picture(plots.per_class_png(rows))
    assert many.height > few.height
