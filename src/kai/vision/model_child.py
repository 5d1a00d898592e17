"""The sandbox child that runs one organization's uploaded image model (see kai.kit.sandbox
for the limits it runs under, kai.vision.backbones.sandboxed for the server's side).

Requests: `load` (the payload is the model: checked with `onnx`, loaded into onnxruntime from
the checked bytes, and run once on two blank images) and `embed` (the payload is a stack of
RGB views; the answer is a row of float32 per view). Answers name what went wrong by code:
only a runtime's own message goes back as `log`, for the server's log, never for a caller.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kai.vision.onnx_check import UnsafeModel, check_model
from kai.vision.onnx_session import ModelMismatch, OnnxModelSpec, OnnxSession

_loaded: OnnxSession | None = None


def prepare() -> None:
    """Import now what a request needs: once sealed, the child can open no file."""
    import onnx
    import onnxruntime

    del onnx, onnxruntime
    np.zeros((2, 2)).mean(axis=(0, 1))


def handle(header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    if header.get("op") == "load":
        return _load(header, payload), b""
    if header.get("op") == "embed" and _loaded is not None:
        return _embed(_loaded, header, payload)
    return {"failed": "protocol"}, b""


def _load(header: dict[str, Any], payload: bytes) -> dict[str, Any]:
    global _loaded
    try:
        spec = OnnxModelSpec.from_json(header["spec"])
        checked = check_model(payload, max_bytes=int(header["max_bytes"]))
    except UnsafeModel as exc:
        return {"refused": exc.rule, "subject": exc.subject}
    del payload
    try:
        session = OnnxSession(checked, spec, threads=int(header["threads"]), gpu=False)
        del checked
        # Photos are embedded several at a time: a model exported for one image at a time
        # (a fixed batch of 1) would load and run here and fail in every training.
        blank = np.zeros((spec.input_side, spec.input_side, 3), dtype=np.uint8)
        rows = session.rows([blank, blank])
    except ModelMismatch as exc:
        return {"mismatch": exc.what, "value": exc.value}
    except MemoryError:
        return {"failed": "memory"}
    except Exception as exc:  # onnxruntime's own errors: for the server's log only
        return _runtime_failure(exc)
    if rows.shape[0] != 2:
        return {"failed": "runtime", "log": f"two images gave {rows.shape[0]} rows"}
    _loaded = session
    return {"ok": True, "dimension": int(rows.shape[1])}


def _embed(
    session: OnnxSession, header: dict[str, Any], payload: bytes
) -> tuple[dict[str, Any], bytes]:
    side = session.spec.input_side
    views = np.frombuffer(payload, dtype=np.uint8)
    if views.size % (side * side * 3):
        return {"failed": "protocol"}, b""
    stacked = views.reshape(-1, side, side, 3)
    try:
        rows = session.rows(list(stacked))
    except ModelMismatch as exc:
        return {"mismatch": exc.what, "value": exc.value}, b""
    except MemoryError:
        return {"failed": "memory"}, b""
    except Exception as exc:  # onnxruntime's own errors: for the server's log only
        return _runtime_failure(exc), b""
    found = np.ascontiguousarray(rows, dtype=np.float32)
    return {"ok": True, "rows": int(found.shape[0]), "dimension": int(found.shape[1])}, (
        found.tobytes()
    )


def _runtime_failure(exc: Exception) -> dict[str, Any]:
    text = str(exc)
    # Under the address-space limit a large allocation fails with an error, not a kill.
    if "allocate" in text.lower() or "bad_alloc" in text:
        return {"failed": "memory", "log": text[:2000]}
    return {"failed": "runtime", "log": text[:2000]}
