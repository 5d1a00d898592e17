"""Hypothesis strategies for the files people upload: photos, zips, catalog files, ONNX models.

Mostly files a real client would send, some of them broken the ways real files break
(truncated, a tail after the end, the wrong kind, nonsense), so that a fuzzer reaches the code
behind the content checks rather than stopping at the first one.
"""

from __future__ import annotations

import csv
import io
import json
import random
import zipfile

import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper
from PIL import Image

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
CSV_SPECIALS = (",", ";", '"', "'", "\r", "\n", "\r\n", "\t", "=", "+", "-", "@")
CATALOG_COLUMNS = ("code", "name", "category", "description", "price", "currency", "tags")


@st.composite
def images(draw: st.DrawFn) -> bytes:
    """A small photo: noise or a flat colour, in one of the formats the platform reads."""
    width = draw(st.integers(min_value=1, max_value=96))
    height = draw(st.integers(min_value=1, max_value=96))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    if draw(st.booleans()):
        # Noise, reproducible from the drawn seed: no secret in test pixels.
        pixels = random.Random(seed).randbytes(width * height * 3)  # noqa: S311
        image = Image.frombytes("RGB", (width, height), pixels)
    else:
        image = Image.new("RGB", (width, height), (seed & 255, seed >> 8 & 255, seed >> 16 & 255))
    buffer = io.BytesIO()
    image.save(buffer, format=draw(st.sampled_from(IMAGE_FORMATS)))
    return buffer.getvalue()


def broken(files: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Files that break as uploads do: cut short, with a tail after their end, or random."""

    @st.composite
    def breaking(draw: st.DrawFn) -> bytes:
        data = draw(files)
        how = draw(st.sampled_from(("truncated", "tail", "flipped")))
        if how == "truncated":
            return data[: draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))]
        if how == "tail":
            return data + draw(st.binary(min_size=1, max_size=64))
        position = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        return data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]

    return breaking()


def mostly_valid(files: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    # Valid files first in the mix: Hypothesis also prefers earlier branches when shrinking.
    return st.one_of(files, files, broken(files), st.binary(max_size=256))


# Catalog text as people type it, and worse: any script, and often what means something to a
# CSV reader or a spreadsheet (quotes, separators, line breaks, formula signs).
catalog_text = st.lists(
    st.one_of(st.sampled_from(CSV_SPECIALS), st.text(max_size=8)), max_size=6
).map("".join)


@st.composite
def catalog_csv(draw: st.DrawFn) -> bytes:
    # Mostly the columns the import knows, sometimes ones it does not (or twice).
    column = st.one_of(
        st.sampled_from(CATALOG_COLUMNS), st.sampled_from(CATALOG_COLUMNS), catalog_text
    )
    columns = draw(st.lists(column, min_size=1, max_size=6))
    rows = draw(st.lists(st.lists(catalog_text, min_size=len(columns)), max_size=5))
    if draw(st.booleans()):
        # As a spreadsheet writes it: quoted where a field needs it.
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(rows)
        text = buffer.getvalue()
    else:
        # As a script or a hostile client writes it: never quoted, whatever the field holds
        # (a bare carriage return in a cell included).
        lines = [",".join(row) for row in (columns, *rows)]
        text = draw(st.sampled_from(("\n", "\r\n"))).join(lines)
    encoding = draw(st.sampled_from(("utf-8", "utf-8-sig")))
    return text.encode(encoding)


@st.composite
def catalog_json(draw: st.DrawFn) -> bytes:
    records = draw(
        st.lists(
            st.dictionaries(st.sampled_from(CATALOG_COLUMNS), catalog_text, max_size=5),
            max_size=4,
        )
    )
    return json.dumps(records).encode()


@st.composite
def zips(draw: st.DrawFn, members: st.SearchStrategy[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in draw(st.lists(members, max_size=4, unique_by=lambda item: item[0])):
            archive.writestr(name, data)
    return buffer.getvalue()


photo_names = st.sampled_from(("a.jpg", "b.png", "c.webp", "d/e.jpeg", "notes.txt"))
photos = st.tuples(photo_names, mostly_valid(images()))
photo_zips = zips(photos)
catalog_zips = zips(
    st.one_of(
        st.tuples(st.sampled_from(("materials.csv", "catalog.csv")), catalog_csv()),
        st.tuples(st.just("materials.json"), catalog_json()),
        photos,
        st.tuples(st.just("nested.zip"), photo_zips),
    )
)

# What each upload route reads, by field: a photo, a batch of photos and zips, a catalog file.
photo_upload = mostly_valid(images())
batch_upload = st.lists(st.one_of(photo_upload, photo_upload, photo_zips), min_size=1, max_size=3)
catalog_upload = st.one_of(
    catalog_csv(), catalog_csv(), catalog_json(), catalog_zips, broken(catalog_csv())
)


@st.composite
def onnx_models(draw: st.DrawFn) -> bytes:
    """A tiny image backbone: an NCHW image in, pooled features out (or a wrong one)."""
    side = draw(st.sampled_from((16, 32, "side")))
    channels = draw(st.sampled_from((3, 3, 1)))
    features = draw(st.integers(min_value=1, max_value=8))
    pixels = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", channels, side, side])
    embedding = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", features])
    weights = helper.make_tensor(
        "weights",
        TensorProto.FLOAT,
        [channels, features],
        [float(value) for value in range(channels * features)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "weights"], ["embedding"]),
        ],
        "backbone",
        [pixels],
        [embedding],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


model_upload = mostly_valid(onnx_models())

# By operation (method and path) and multipart field.
UPLOADS: dict[tuple[str, str], dict[str, st.SearchStrategy[object]]] = {
    ("POST", "/api/v1/materials/{material_id}/images"): {"file": photo_upload},
    ("POST", "/api/v1/recognitions"): {"file": photo_upload},
    ("POST", "/api/v1/search/images"): {"file": photo_upload},
    ("POST", "/api/v1/recognition-batches"): {"files": batch_upload},
    ("POST", "/api/v1/catalog/imports"): {"file": catalog_upload},
    ("POST", "/api/v1/backbones"): {"file": model_upload},
}
