"""Export of a compacted model as one self-contained TorchScript file (``torch.jit.load``).

The file takes raw pixel intensities in [0, 1] shaped (N, C, H, W) and returns logits; any
normalisation is inside. It loads with plain torch: no l0sweep import is needed.
"""

from __future__ import annotations

import copy
import io
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from l0models.base import L0Model
from l0models.compaction import compact

__all__ = ["compact_model_bytes", "export_compact_model", "load_compact_model"]


def _scripted(model_or_compact: nn.Module) -> torch.jit.ScriptModule:
    if isinstance(model_or_compact, L0Model):
        module = compact(model_or_compact)
    elif isinstance(model_or_compact, nn.Module):
        module = copy.deepcopy(model_or_compact)
    else:
        raise TypeError(
            f"expected an L0 model or a compacted nn.Module, got {type(model_or_compact).__name__}"
        )
    module = module.cpu().eval()
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
