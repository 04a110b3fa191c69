"""Export of a compacted model as one self-contained file, in three formats.

- ``torchscript``: ``torch.jit.load`` (the default, as before);
- ``pt2``: a ``torch.export`` program (``torch.export.load``);
- ``onnx``: an ONNX model for onnxruntime, TensorRT or mobile runtimes, made by the
  ``torch.export``-based ONNX exporter (``torch.onnx.export(..., dynamo=True)``, needs
  ``onnxscript``) from the same program as ``pt2``, weights inside the one file.

Every file takes raw pixel intensities in [0, 1] shaped (N, C, H, W), with any batch size N,
and returns logits; any normalisation is inside. Each loads without l0sweep installed.
"""

from __future__ import annotations

import copy
import io
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from l0models.base import L0Model
from l0models.compaction import compact

__all__ = [
    "MODEL_FORMATS",
    "ExportedFiles",
    "compact_model_bytes",
    "export_compact_model",
    "export_model_files",
    "export_program",
    "load_compact_model",
    "onnx_model_bytes",
    "pt2_model_bytes",
]

#: Every format a compacted model is exported to; ``torchscript`` is the default download.
MODEL_FORMATS = ("torchscript", "onnx", "pt2")

# Input and output names of the ONNX graph, and its dynamic batch dimension.
ONNX_INPUT, ONNX_OUTPUT = "pixels", "logits"
_EXAMPLE_BATCH = 2


def _compacted(model_or_compact: nn.Module) -> nn.Module:
    if isinstance(model_or_compact, L0Model):
        module = compact(model_or_compact)
    elif isinstance(model_or_compact, nn.Module):
        module = copy.deepcopy(model_or_compact)
    else:
        raise TypeError(
            f"expected an L0 model or a compacted nn.Module, got {type(model_or_compact).__name__}"
        )
    return module.cpu().eval()


def _scripted(model_or_compact: nn.Module) -> torch.jit.ScriptModule:
    module = _compacted(model_or_compact)
    with warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but still the one format
        # that keeps a free batch size without extra declarations and loads anywhere.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(module)


def compact_model_bytes(model_or_compact: nn.Module) -> bytes:
    """The TorchScript file of the compacted model, as bytes (what the database stores)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(_scripted(model_or_compact), buffer)
    return buffer.getvalue()


def export_compact_model(model_or_compact: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write the TorchScript file of the compacted model to ``path`` atomically."""
    target = Path(path)
    data = compact_model_bytes(model_or_compact)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_compact_model(
    source: str | os.PathLike[str] | bytes, *, map_location: str | torch.device = "cpu"
) -> torch.jit.ScriptModule:
    """Load an exported model from a path or from bytes (same as ``torch.jit.load``)."""
    handle: str | os.PathLike[str] | io.BytesIO = (
        io.BytesIO(source) if isinstance(source, bytes) else source
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(handle, map_location=map_location)


def export_program(
    model_or_compact: nn.Module, *, input_shape: Sequence[int]
) -> torch.export.ExportedProgram:
    """The compacted model as a ``torch.export`` program with a dynamic batch dimension.

    Args:
        input_shape: One example's (C, H, W), e.g. ``Dataset.input_shape``.
    """
    module = _compacted(model_or_compact)
    example = torch.rand(_EXAMPLE_BATCH, *(int(s) for s in input_shape))
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.export.export(module, (example,), dynamic_shapes=({0: batch},))


def pt2_model_bytes(program: torch.export.ExportedProgram) -> bytes:
    """The ``torch.export.save`` file of ``program`` (load with ``torch.export.load``)."""
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def onnx_model_bytes(program: torch.export.ExportedProgram) -> bytes:
    """The ONNX file of ``program``: one file with its weights inside (no ``.onnx.data``).

    Input ``pixels`` (N, C, H, W) raw [0, 1], output ``logits`` (N, classes), N dynamic.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        onnx_program = torch.onnx.export(
            program,
            dynamo=True,
            input_names=[ONNX_INPUT],
            output_names=[ONNX_OUTPUT],
            external_data=False,
            verbose=False,
        )
    if onnx_program is None:  # pragma: no cover - only the legacy exporter returns None
        raise RuntimeError("torch.onnx.export returned no program")
    proto = onnx_program.model_proto
    _name_batch_dimension(proto)
    # Said once inside the file, for whoever deploys it without our docs.
    entry = proto.metadata_props.add()
    entry.key, entry.value = "input", "raw pixel intensities in [0, 1], (N, C, H, W)"
    entry = proto.metadata_props.add()
    entry.key, entry.value = "output", "logits, (N, classes); normalisation is inside"
    return bytes(proto.SerializeToString())


def _name_batch_dimension(proto: Any) -> None:
    """Call the exporter's symbolic batch size (``s31`` or so) ``batch`` everywhere."""
    graph = proto.graph
    symbol = graph.input[0].type.tensor_type.shape.dim[0].dim_param
    if not symbol:
        return
    for value in (*graph.input, *graph.output, *graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == symbol:
                dim.dim_param = "batch"


@dataclass
class ExportedFiles:
    """The files of one compacted model by format, and why any format could not be made."""

    files: dict[str, bytes] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def export_model_files(
    model_or_compact: nn.Module,
    *,
    input_shape: Sequence[int],
    formats: Sequence[str] = MODEL_FORMATS,
) -> ExportedFiles:
    """Every requested format of the compacted model; a format that fails is in ``errors``
    (the others are still made). ``pt2`` and ``onnx`` share one ``torch.export`` program.

    Args:
        input_shape: One example's (C, H, W).
        formats: A subset of :data:`MODEL_FORMATS`.
    """
    unknown = sorted(set(formats) - set(MODEL_FORMATS))
    if unknown:
        raise ValueError(f"unknown model formats {unknown}; expected some of {MODEL_FORMATS}")
    module = _compacted(model_or_compact)
    out = ExportedFiles()
    if "torchscript" in formats:
        _attempt(out, "torchscript", lambda: compact_model_bytes(module))
    program: torch.export.ExportedProgram | None = None
    if {"pt2", "onnx"} & set(formats):
        try:
            program = export_program(module, input_shape=input_shape)
        except Exception as exc:
            reason = f"torch.export failed: {type(exc).__name__}: {exc}"
            out.errors.update({f: reason for f in ("pt2", "onnx") if f in formats})
    if program is not None:
        exported = program
        if "pt2" in formats:
            _attempt(out, "pt2", lambda: pt2_model_bytes(exported))
        if "onnx" in formats:
            _attempt(out, "onnx", lambda: onnx_model_bytes(exported))
    return out


def _attempt(out: ExportedFiles, fmt: str, make: Callable[[], bytes]) -> None:
    try:
        out.files[fmt] = make()
    except Exception as exc:  # recorded: the trial keeps its other formats
        out.errors[fmt] = f"{fmt} export failed: {type(exc).__name__}: {exc}"[:2000]
