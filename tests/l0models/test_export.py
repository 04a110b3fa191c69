"""Exported compacted models: one self-contained file per format (TorchScript, ONNX,
torch.export), each loadable without l0sweep."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from l0models import (
    L0MLP,
    MODEL_FORMATS,
    L0LeNet5,
    L0WideResNet,
    WRNConfig,
    compact,
    compact_model_bytes,
    export_compact_model,
    export_model_files,
    export_program,
    load_compact_model,
    pt2_model_bytes,
)
from l0models import export as export_module


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


# --------------------------------------------------------------------- ONNX and torch.export

_BLOCK_L0SWEEP = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"l0models", "service", "workers", "api"}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
"""


def _run_without_l0sweep(script: str, cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _BLOCK_L0SWEEP + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout.strip()


@pytest.mark.parametrize("arch", ["mlp", "lenet5", "lenet5-no-conv1", "wrn"])
def test_every_format_loads_without_l0sweep_with_any_batch_size(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, shape = {
        "mlp": (L0MLP(), (1, 28, 28)),
        "lenet5": (L0LeNet5(), (1, 28, 28)),
        "lenet5-no-conv1": (L0LeNet5(), (1, 28, 28)),
        "wrn": (L0WideResNet(WRNConfig(depth=10, width=1)), (3, 32, 32)),
    }[arch]
    _prune_some(model)
    if arch == "lenet5-no-conv1":  # a high λ can close a whole layer: conv2 keeps its bias
        with torch.no_grad():
            model.l0_layers()[0].log_alpha.fill_(-10.0)
    model.eval()
    exported = export_model_files(model, input_shape=shape)
    assert exported.errors == {} and set(exported.files) == set(MODEL_FORMATS)
    for fmt, suffix in (("torchscript", ".pt"), ("onnx", ".onnx"), ("pt2", ".pt2")):
        (tmp_path / f"model{suffix}").write_bytes(exported.files[fmt])
    xs = {n: torch.rand(n, *shape) for n in (1, 17)}  # raw [0, 1] pixels
    with torch.no_grad():
        torch.save({n: (x, model(x)) for n, x in xs.items()}, tmp_path / "io.pt")
    # Each file alone in its directory: an ONNX side file (.onnx.data) would be missing.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "io.pt",
        "model.onnx",
        "model.pt",
        "model.pt2",
    ]
    script = """
        import numpy as np, onnx, onnxruntime as ort, torch
        cases = torch.load("io.pt")
        proto = onnx.load("model.onnx", load_external_data=False)
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL
                       for t in proto.graph.initializer)
        assert [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim][0] == "batch"
        session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["pixels"]
        program = torch.export.load("model.pt2").module()
        scripted = torch.jit.load("model.pt")
        worst = 0.0
        for n, (x, want) in cases.items():
            got = {
                "onnx": torch.from_numpy(session.run(["logits"], {"pixels": x.numpy()})[0]),
                "pt2": program(x),
                "torchscript": scripted(x),
            }
            for fmt, y in got.items():
                assert y.shape == (n, want.shape[1]), (fmt, y.shape)
                worst = max(worst, (y - want).abs().max().item())
        assert worst < 1e-4, worst
        assert not {"l0models", "service", "workers", "api"} & set(sys.modules)
        print("ok")
    """
    assert _run_without_l0sweep(script, tmp_path) == "ok"


def test_a_format_that_fails_is_reported_and_the_others_still_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(program: object) -> bytes:
        raise RuntimeError("no ONNX today")

    monkeypatch.setattr(export_module, "onnx_model_bytes", broken)
    exported = export_model_files(L0MLP().eval(), input_shape=(1, 28, 28))
    assert set(exported.files) == {"torchscript", "pt2"}
    assert exported.errors == {"onnx": "onnx export failed: RuntimeError: no ONNX today"}
    only = export_model_files(L0MLP().eval(), input_shape=(784,), formats=("torchscript",))
    assert set(only.files) == {"torchscript"} and only.errors == {}
    with pytest.raises(ValueError, match="tflite"):
        export_model_files(L0MLP(), input_shape=(784,), formats=("tflite",))


def test_the_exported_program_is_the_compacted_model() -> None:
    torch.manual_seed(1)
    model = L0LeNet5()
    _prune_some(model)
    model.eval()
    program = export_program(model, input_shape=(1, 28, 28))
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(program.module()(x), model(x), atol=1e-5, rtol=0)
    loaded = torch.export.load(io.BytesIO(pt2_model_bytes(program)))
    torch.testing.assert_close(loaded.module()(x), model(x), atol=1e-5, rtol=0)
    # Compacted: pruned units are gone from the program's weights too.
    sizes = {name: p.numel() for name, p in program.state_dict.items() if name.endswith("weight")}
    assert sum(sizes.values()) < sum(
        p.numel() for n, p in model.named_parameters() if n.endswith("weight")
    )


def test_formats_are_the_services_vocabulary() -> None:
    from service.vocabulary import ModelFormat

    assert tuple(f.value for f in ModelFormat) == MODEL_FORMATS
