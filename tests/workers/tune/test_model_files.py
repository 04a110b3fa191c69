"""Model files of really trained MNIST trials, through the path a completed trial takes:
the trainable writes every format into the final checkpoint, the callback reads them back,
the repository stores them, the API serves them; each file then runs without l0sweep.

The loader runs in a fresh interpreter in which l0sweep's packages cannot be imported: ONNX
through onnxruntime, pt2 through ``torch.export.load``, TorchScript through
``torch.jit.load``. Each must reproduce the trial's stored test accuracy to within 2 of the
10,000 test examples, at two batch sizes.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient

import l0models
from api.main import create_app
from service import repository as repo
from service.db import create_engine_for, session_scope, upgrade_database
from service.settings import Settings
from service.spec import SweepSpec
from service.vocabulary import ModelFormat
from workers.tune.model_files import model_file_path, read_model_files, write_model_files

TOKEN = "t"
_BLOCK_L0SWEEP = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"l0models", "service", "workers", "api"}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
"""
_LOADER = """
import json, numpy as np, onnxruntime as ort, torch
x = torch.from_numpy(np.load("x_test.npy"))
y = torch.from_numpy(np.load("y_test.npy"))
models = {
    "torchscript": torch.jit.load("model.pt").eval(),
    "pt2": torch.export.load("model.pt2").module(),
}
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
models["onnx"] = lambda xb: torch.from_numpy(session.run(["logits"], {"pixels": xb.numpy()})[0])
correct = {}
with torch.no_grad():
    for fmt, model in models.items():
        for batch in (100, 997):  # 997: every batch but the last is odd-sized
            hits = sum(
                int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
                for i in range(0, len(x), batch)
            )
            correct[f"{fmt}/{batch}"] = hits
assert not {"l0models", "service", "workers", "api"} & set(sys.modules)
print(json.dumps(correct))
"""

SPECS = {
    "mlp": {"model": {"arch": "mlp", "hidden": [300, 100]}},
    "lenet5": {"model": {"arch": "lenet5"}},
}


@pytest.fixture(scope="module")
def mnist() -> l0models.Dataset:
    return l0models.load_dataset("mnist")


def _trained(arch: str, data: l0models.Dataset) -> l0models.TrainResult:
    mlp = arch == "mlp"
    config = l0models.MLPConfig(hidden=(300, 100)) if mlp else l0models.LeNet5Config()
    # A short real training: one epoch on the first 6,000 (LeNet-5: 3,000) training images;
    # the measures are taken on the whole test set, as for every trial. (Compaction of
    # pruned models in every format: tests/l0models/test_export.py.)
    n = 6_000 if mlp else 3_000
    short = dataclasses.replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n])
    settings = l0models.TrainSettings(epochs=1)
    return l0models.train_model(config, lam=0.1, beta=2 / 3, seed=0, settings=settings, data=short)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mlp", "lenet5"])
def test_downloaded_files_reproduce_the_stored_accuracy_without_l0sweep(
    arch: str, mnist: l0models.Dataset, tmp_path: Path
) -> None:
    result = _trained(arch, mnist)
    assert result.measures.accuracy > 0.5  # it learnt something: misclassifications vary

    # The trainable's side: every format into the final checkpoint directory.
    checkpoint = tmp_path / "final"
    checkpoint.mkdir()
    summary = write_model_files(result, checkpoint, 0, input_shape=mnist.input_shape)
    assert not [k for k in summary if k.endswith("_error")], summary
    # The driver's side: read back and stored with the measures.
    url = f"sqlite:///{tmp_path / 'l0sweep.db'}"
    upgrade_database(url)
    engine = create_engine_for(url)
    spec = SweepSpec.model_validate({"dataset": "mnist", "lambdas": [0.1], **SPECS[arch]})
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, spec).id
        trial_id = repo.list_trials(s, sweep_id).items[0].id
        measures = result.measures.as_dict()
        repo.record_trial_result(s, trial_id, measures, read_model_files(checkpoint, 0))
    engine.dispose()

    # The user's side: download each format over the API, run it without l0sweep.
    settings = Settings(database_url=url, api_tokens=[TOKEN], data_dir=tmp_path / "data")
    run_dir = tmp_path / "user"
    run_dir.mkdir()
    with TestClient(create_app(settings)) as client:
        stored = client.get(f"/api/v1/sweeps/{sweep_id}/trials").json()["items"][0]
        accuracy = stored["metrics"]["accuracy"]
        for fmt in ModelFormat:
            r = client.get(f"/api/v1/trials/{trial_id}/model", params={"format": fmt.value})
            assert r.status_code == 200, r.text
            (run_dir / f"model{fmt.suffix}").write_bytes(r.content)
    x = l0models.measures.as_float_images(mnist.x_test).numpy().astype(np.float32)
    np.save(run_dir / "x_test.npy", x)  # raw [0, 1] pixels, (N, 1, 28, 28)
    np.save(run_dir / "y_test.npy", mnist.y_test.numpy())
    out = subprocess.run(
        [sys.executable, "-c", _BLOCK_L0SWEEP + textwrap.dedent(_LOADER)],
        capture_output=True,
        text=True,
        cwd=run_dir,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    correct = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(correct) == {f"{f}/{b}" for f in ("torchscript", "pt2", "onnx") for b in (100, 997)}
    expected = accuracy * len(mnist.y_test)
    for key, hits in correct.items():
        # The compacted model equals the gated one up to float rounding: at most a couple
        # of borderline test images may flip.
        assert abs(hits - expected) <= 2, (key, hits, expected)


def test_unavailable_formats_travel_with_their_reason(tmp_path: Path) -> None:
    # A member restored from a checkpoint as its TorchScript file alone.
    finished = SimpleNamespace(model_bytes=b"torchscript-file")
    summary = write_model_files(finished, tmp_path, 3, input_shape=(1, 28, 28))
    assert set(summary) == {"export_seconds", "onnx_error", "pt2_error"}
    files = read_model_files(tmp_path, 3)
    assert files[ModelFormat.TORCHSCRIPT] == b"torchscript-file"
    assert isinstance(files[ModelFormat.ONNX], repo.ModelUnavailable)
    assert "only TorchScript" in files[ModelFormat.PT2].reason  # type: ignore[union-attr]
    # A checkpoint written before formats existed holds model_<i>.pt only.
    model_file_path(tmp_path, 4, ModelFormat.TORCHSCRIPT).write_bytes(b"old")
    old = read_model_files(tmp_path, 4)
    assert old[ModelFormat.TORCHSCRIPT] == b"old"
    assert "was not exported" in old[ModelFormat.ONNX].reason  # type: ignore[union-attr]
    assert model_file_path(tmp_path, 0, ModelFormat.TORCHSCRIPT).name == "model_0.pt"
