"""The compiled fused step (``l0models.fused.compiled``) trains what the eager step trains.

On the CPU inductor needs a C++ compiler and compiles for tens of seconds (slow test).
Tolerance: compiled kernels fuse elementwise ops and may round differently (observed ≤ 8e-7
on parameters after 12 steps); the bound is lr × steps per element, as for fused vs single
runs (test_fused.py), plus identical architecture and loss to 1e-5.
"""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from l0models import MLPConfig, TrainSettings, synthetic_dataset
from l0models.fused import MemberSpec, train_fused
from l0models.fused.compiled import use_compile


def test_compile_is_opt_in_on_every_device() -> None:
    # Off by default: the compiled CUDA-graph step collapsed every gate on an H200.
    assert not use_compile(None, torch.device("cuda"))
    assert not use_compile(None, torch.device("cpu"))
    assert use_compile(True, torch.device("cpu"))
    assert not use_compile(False, torch.device("cuda"))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="no C++")
def test_compiled_step_trains_what_the_eager_step_trains() -> None:
    data = synthetic_dataset(n_train=300, n_test=100)
    settings = TrainSettings(epochs=2, batch_size=50)
    members = [MemberSpec(0.1, 2 / 3, 1), MemberSpec(0.5, 0.5, 2), MemberSpec(1.0, 2 / 3, 3)]
    config = MLPConfig(hidden=(32, 16))
    eager = train_fused(config, members, settings=settings, data=data, compile=False)
    compiled = train_fused(config, members, settings=settings, data=data, compile=True)
    steps = settings.epochs * math.ceil(data.n_train / settings.batch_size)
    for a, b in zip(eager, compiled, strict=True):
        for name, t in a.model.state_dict().items():
            assert (t - b.model.state_dict()[name]).abs().max() <= settings.lr * steps, name
        assert a.measures.architecture == b.measures.architecture
        for ra, rb in zip(a.history, b.history, strict=True):
            assert ra.loss == pytest.approx(rb.loss, rel=1e-5)
