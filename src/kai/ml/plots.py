"""Pictures people read about a model: its confusion matrix and per-class figures, drawn with
matplotlib (its object API and the Agg canvas: no display, no global state, safe on threads).

Blocking (a drawing takes tens of milliseconds): call from a thread or a job.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Past this many labels the names no longer fit beside the cells: they are numbered, and the
# numbers named in a legend below.
NAMED_LABELS = 40


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def confusion_matrix_png(
    labels: Sequence[str], matrix: Sequence[Sequence[int]], *, title: str = ""
) -> bytes:
    """The confusion matrix as a PNG heat map: rows the true label, columns the predicted,
    each cell shaded by its share of the row and showing its count."""
    counts = np.asarray(matrix, dtype=np.float64)
    size = len(labels)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    side = min(18.0, max(4.5, 0.45 * size + 2.5))
    figure = Figure(figsize=(side + 1.5, side))
    axes = figure.add_subplot()
    shown = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04, label="share of the true label")
    names = list(labels) if size <= NAMED_LABELS else [str(index) for index in range(size)]
    axes.set_xticks(range(size), labels=names, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(size), labels=names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if title:
        axes.set_title(title)
    if size <= NAMED_LABELS:
        for row in range(size):
            for column in range(size):
                if counts[row, column]:
                    ink = "white" if shares[row, column] > 0.6 else "black"
                    axes.text(
                        column,
                        row,
                        str(int(counts[row, column])),
                        ha="center",
                        va="center",
                        color=ink,
                        fontsize=8,
                    )
    return _png(figure)


def per_class_png(per_class: Sequence[dict[str, Any]], *, title: str = "") -> bytes:
    """Precision, recall and F1 of each label as grouped horizontal bars, the support beside."""
    labels = [str(row["label"]) for row in per_class]
    size = len(labels)
    figure = Figure(figsize=(8.0, min(40.0, max(2.5, 0.32 * size + 1.5))))
    axes = figure.add_subplot()
    positions = np.arange(size)
    height = 0.27
    for offset, (measure, colour) in enumerate(
        (("precision", "#4c78a8"), ("recall", "#f58518"), ("f1", "#54a24b"))
    ):
        axes.barh(
            positions + (offset - 1) * height,
            [float(row[measure]) for row in per_class],
            height=height,
            color=colour,
            label=measure,
        )
    axes.set_yticks(positions, labels=[f"{row['label']} ({row['support']})" for row in per_class])
    axes.invert_yaxis()
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel("score (photos of the label in brackets)")
    axes.legend(loc="lower right")
    if title:
        axes.set_title(title)
    return _png(figure)
