"""A trained member's model files in every format, carried by the final Ray Tune checkpoint.

The trainable exports each member once, when its pack completes (measured against lazy
conversion in docs/benchmarks.md, "Model formats"), into the final checkpoint directory:
``model_<i>.pt`` (TorchScript, as before), ``model_<i>.onnx`` and ``model_<i>.pt2``, and
``model_<i>.<format>.error`` holding the reason for a format that could not be exported.
The driver-side callback reads them back and stores them with the trial's result.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import l0models
from service.repository import ModelFiles, ModelUnavailable
from service.vocabulary import ModelFormat

__all__ = ["model_file_path", "read_model_files", "write_model_files"]


def model_file_path(directory: str | Path, index: int, fmt: ModelFormat) -> Path:
    """``model_<index><suffix>`` in ``directory`` (``model_0.pt`` is the TorchScript file)."""
    return Path(directory, f"model_{index}{fmt.suffix}")


def _error_path(directory: str | Path, index: int, fmt: ModelFormat) -> Path:
    return Path(directory, f"model_{index}.{fmt.value}.error")


def write_model_files(
    result: Any, directory: str | Path, index: int, *, input_shape: Sequence[int]
) -> dict[str, float | str]:
    """Write member ``index``'s compacted model in every format into ``directory``.

    Args:
        result: The member's ``TrainResult``; or a ``FinishedMember`` of a sequential pack
            (exported when it finished, maybe before a resume). One checkpointed by older
            code holds TorchScript alone: the other formats are written as unavailable,
            with the reason.

    Returns:
        What the log line says: seconds spent and the formats that failed, with reasons.
    """
    start = time.perf_counter()
    model = getattr(result, "model", None)
    if model is not None:
        exported = l0models.export_model_files(model, input_shape=input_shape)
    elif getattr(result, "files", None):
        exported = l0models.ExportedFiles(dict(result.files), dict(result.errors))
    else:
        exported = l0models.ExportedFiles({ModelFormat.TORCHSCRIPT.value: result.model_bytes})
        reason = "checkpointed by an older l0sweep before its pack resumed: only TorchScript kept"
        exported.errors.update(
            {f.value: reason for f in ModelFormat if f.value not in exported.files}
        )
    for fmt in ModelFormat:
        if fmt.value in exported.files:
            model_file_path(directory, index, fmt).write_bytes(exported.files[fmt.value])
        else:
            reason = exported.errors.get(fmt.value, f"{fmt} was not exported")
            _error_path(directory, index, fmt).write_text(reason, encoding="utf-8")
    summary: dict[str, float | str] = {"export_seconds": round(time.perf_counter() - start, 3)}
    summary.update({f"{fmt}_error": reason for fmt, reason in exported.errors.items()})
    return summary


def read_model_files(directory: str | Path, index: int) -> ModelFiles:
    """Every format of member ``index`` found in ``directory``, or why it is missing."""
    files: dict[ModelFormat | str, bytes | ModelUnavailable] = {}
    for fmt in ModelFormat:
        path, error = model_file_path(directory, index, fmt), _error_path(directory, index, fmt)
        if path.exists():
            files[fmt] = path.read_bytes()
        elif error.exists():
            files[fmt] = ModelUnavailable(error.read_text(encoding="utf-8"))
        else:
            # A checkpoint written by a trainable from before this format was exported.
            files[fmt] = ModelUnavailable(f"{fmt} was not exported when this trial completed")
    return files
