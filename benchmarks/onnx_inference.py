"""Inference of the compacted MLP: the ONNX file under onnxruntime vs the TorchScript file.

The two files are what ``GET /trials/{id}/model?format=onnx`` and the default download hold
(``l0models.export_model_files``), for an L0 MLP 784-300-100 whose gates are set to the
paper's L0 architecture 219-214-100 (kept units per gated layer; the kept gates take
random test-time values). Both run on the CPU with the same number of threads (each
count of --threads in turn: torch.set_num_threads and onnxruntime's intra-op threads), on
raw [0, 1] MNIST-shaped inputs, in interleaved rounds; the ratio is the median of
per-round ratios ONNX / TorchScript (< 1: ONNX is faster). Target: ratio <= 1 at every
batch size and thread count. The load average is printed: on a shared machine, threads
beyond the idle cores make torch's OpenMP pool spin against other processes.

    .venv/bin/python benchmarks/onnx_inference.py [--threads 1,2] [--batches 1,100,10000]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
import warnings

import numpy as np
import onnxruntime as ort
import torch
from targets import Targets, add_check_flag

from l0models import L0MLP, export_model_files
from l0models.base import L0Model

PAPER_ARCH = (219, 214, 100)  # Louizos et al., Table 1: MLP, L0 with lambda = 0.1/N


def set_architecture(model: L0Model, kept: tuple[int, ...], seed: int = 0) -> None:
    """Open exactly ``kept[i]`` gates of gated layer i, at random test-time values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer, k in zip(model.l0_layers(), kept, strict=True):
            n = layer.log_alpha.numel()
            la = torch.empty(n).uniform_(-1.0, 4.0, generator=g)  # open: z in (0.17, 1]
            la[torch.randperm(n, generator=g)[: n - k]] = -6.0  # closed
            layer.log_alpha.copy_(la)


def compare(
    scripted: torch.jit.ScriptModule,
    session: ort.InferenceSession,
    batch: int,
    rounds: int,
    budget_s: float,
) -> tuple[float, float, float]:
    """Median ms per call of each, and the median per-round ratio ONNX / TorchScript."""
    x = torch.rand(batch, 1, 28, 28)
    x_np = x.numpy()
    runs = {
        "torchscript": lambda: scripted(x),
        "onnx": lambda: session.run(["logits"], {"pixels": x_np}),
    }
    with torch.inference_mode():
        gap = np.abs(scripted(x).numpy() - session.run(["logits"], {"pixels": x_np})[0])
        assert gap.max() < 1e-4, gap.max()
        for fn in runs.values():  # warm-up
            for _ in range(5):
                fn()
        t0 = time.perf_counter()
        runs["torchscript"]()
        reps = max(1, int(budget_s / max(time.perf_counter() - t0, 1e-6)))
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(rounds):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                times[name].append((time.perf_counter() - t0) / reps)
    pairs = zip(times["onnx"], times["torchscript"], strict=True)
    ratio = statistics.median(o / t for o, t in pairs)
    return (
        statistics.median(times["torchscript"]) * 1e3,
        statistics.median(times["onnx"]) * 1e3,
        ratio,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, in turn")
    parser.add_argument("--batches", default="1,100,10000")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--budget-s", type=float, default=0.2, help="per format, per round")
    add_check_flag(parser)
    args = parser.parse_args()
    targets = Targets.from_args(args)
    torch.manual_seed(0)
    model = L0MLP().eval()
    set_architecture(model, PAPER_ARCH)
    assert model.architecture() == list(PAPER_ARCH), model.architecture()
    files = export_model_files(model, input_shape=(1, 28, 28)).files
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        scripted = torch.jit.load(io.BytesIO(files["torchscript"])).eval()
    print(
        f"compacted MLP 784-300-100 kept {'-'.join(map(str, PAPER_ARCH))}; "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'threads':>7} {'batch':>6} {'torchscript ms':>15} {'onnx ms':>10} {'onnx/ts':>8}")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(files["onnx"], options, providers=["CPUExecutionProvider"])
        for batch in (int(b) for b in args.batches.split(",")):
            ts_ms, onnx_ms, ratio = compare(scripted, session, batch, args.rounds, args.budget_s)
            name = f"onnx/torchscript, {threads} thread(s), batch {batch}"
            verdict = targets.at_most(name, ratio, 1.0)
            print(
                f"{threads:>7} {batch:>6} {ts_ms:>15.4f} {onnx_ms:>10.4f} {ratio:>8.2f}"
                f"  {verdict} (<= 1)"
            )
    targets.finish()


if __name__ == "__main__":
    main()
