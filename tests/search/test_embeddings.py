"""Sentence embeddings in numpy, held to what sentence-transformers computes for the same model."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kai.search.embeddings import (
    EMBEDDING_DIMENSIONS,
    MODEL_NAME,
    MiniLMEmbedder,
    TextEmbedder,
    _gelu,
    default_embedder,
)

# Made once by sentence-transformers (PyTorch) from the same model files: see its "made_by".
REFERENCE: dict[str, Any] = json.loads(
    (Path(__file__).parent / "minilm_reference.json").read_text(encoding="utf-8")
)
LIMESTONE, QUERY, MARBLE, OAK, STEEL, EMPTY = REFERENCE["sentences"]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    # No skip when the model package is missing: `make` installs it, so its absence is a failure.
    return MiniLMEmbedder.bundled()


def test_vectors_are_float32_unit_rows(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.embed(["Polished Carrara marble slab", "Oak engineered wood plank"])
    assert vectors.shape == (2, EMBEDDING_DIMENSIONS)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert embedder.name == MODEL_NAME
    assert embedder.dimensions == EMBEDDING_DIMENSIONS


def test_no_texts_give_an_empty_matrix(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.embed([])
    assert vectors.shape == (0, EMBEDDING_DIMENSIONS)
    assert vectors.dtype == np.float32


def test_matches_the_reference_implementation(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.embed(REFERENCE["sentences"])
    for expected in REFERENCE["vectors"]:
        row = REFERENCE["sentences"].index(expected["sentence"])
        np.testing.assert_allclose(vectors[row, :16], expected["first_dimensions"], atol=1e-4)
    np.testing.assert_allclose(vectors @ vectors.T, REFERENCE["similarity"], atol=1e-4)


def test_order_is_kept_whatever_the_lengths(embedder: MiniLMEmbedder) -> None:
    texts = [
        "Honed limestone floor tile in warm beige, 600 by 600 mm, 20 mm thick, frost resistant "
        "and rated R10 against slipping, for terraces, bathrooms and kitchen floors",
        "",
        "Oak",
        "Brushed stainless steel sheet",
        "Polished Carrara marble slab with soft grey veins",
    ]
    together = embedder.embed(texts)
    for row, text in enumerate(texts):
        np.testing.assert_allclose(together[row], embedder.embed([text])[0], atol=1e-5)


def test_batch_size_does_not_change_the_vectors(embedder: MiniLMEmbedder) -> None:
    texts = [*REFERENCE["sentences"], "Terrazzo " * 40, "Walnut veneer panel, oiled"]
    one_by_one = copy.copy(embedder)  # shares the weights: no second load
    one_by_one.batch_size = 1
    np.testing.assert_allclose(one_by_one.embed(texts), embedder.embed(texts), atol=1e-5)


def test_long_texts_are_cut_at_the_model_length(embedder: MiniLMEmbedder) -> None:
    # "tile" is one token: [CLS] + 254 of them + [SEP] fills the 256 that the model reads.
    assert embedder.max_tokens == 256
    cut, long = embedder.embed(["tile " * 254, "tile " * 1000])
    np.testing.assert_allclose(cut, long, atol=1e-6)


def test_a_query_lands_nearest_the_material_it_describes(embedder: MiniLMEmbedder) -> None:
    query, limestone, oak, steel = embedder.embed([QUERY, LIMESTONE, OAK, STEEL])
    assert query @ limestone > query @ steel
    assert query @ limestone > query @ oak


def test_gelu_is_the_exact_erf_form() -> None:
    # Enough rows to take several of the slices that _gelu works in.
    x = np.linspace(-12.0, 12.0, 200_000, dtype=np.float32).reshape(-1, 100)
    exact = np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))(
        x.astype(np.float64)
    )
    _gelu(x)
    assert np.abs(x - exact).max() < 1e-6


def test_one_text_must_come_in_a_sequence(embedder: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError, match="sequence of texts"):
        embedder.embed("Oak")


def test_refuses_impossible_settings() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        MiniLMEmbedder(batch_size=0)
    with pytest.raises(ValueError, match="max_tokens"):
        MiniLMEmbedder(max_tokens=513)


def test_the_default_embedder_is_one_per_process() -> None:
    first: TextEmbedder = default_embedder()
    assert default_embedder() is first
    assert first.embed(["Oak"]).shape == (1, EMBEDDING_DIMENSIONS)
