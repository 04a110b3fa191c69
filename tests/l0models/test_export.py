"""Exported compacted models: one self-contained TorchScript file, loadable without l0sweep."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from l0models import (
    L0LeNet5,
    L0WideResNet,
    WRNConfig,
    compact,
    compact_model_bytes,
    export_compact_model,
    load_compact_model,
)


def _prune_some(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.l0_layers():  # type: ignore[operator]
            layer.log_alpha.copy_(torch.empty(layer.log_alpha.shape).uniform_(-4, 3, generator=g))


def test_exported_file_loads_without_l0sweep(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = L0LeNet5()
    _prune_some(model)
    model.eval()
    path = export_compact_model(model, tmp_path / "model.pt")
    x = torch.rand(5, 1, 28, 28)
    torch.save({"x": x, "y": model(x).detach()}, tmp_path / "io.pt")
    # A fresh interpreter in which importing l0models (or any l0sweep package) fails.
    script = textwrap.dedent(
        f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in {{"l0models", "service", "workers", "api"}}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import torch
        m = torch.jit.load({str(path)!r})
        io = torch.load({str(tmp_path / "io.pt")!r})
        diff = (m(io["x"]) - io["y"]).abs().max().item()
        assert diff < 1e-5, diff
        assert m(torch.rand(17, 1, 28, 28)).shape == (17, 10)  # any batch size
        assert "l0models" not in sys.modules
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_bytes_round_trip_of_wrn_with_normalisation_inside() -> None:
    torch.manual_seed(0)
    model = L0WideResNet(WRNConfig(depth=10, width=1))
    _prune_some(model)
    model.eval()
    data = compact_model_bytes(model)
    assert isinstance(data, bytes) and len(data) > 0
    loaded = load_compact_model(data)
    x = torch.rand(3, 3, 32, 32)  # raw [0, 1] pixels: the model normalises inside
    torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=0)
    # An already-compacted module exports to the same function.
    again = load_compact_model(compact_model_bytes(compact(model)))
    torch.testing.assert_close(again(x), loaded(x))
