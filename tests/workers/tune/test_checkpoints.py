"""Checkpoints hold plain data and nothing executable is read back: engine states round-trip
through torch.load(weights_only=True); a tampered, truncated or incomplete checkpoint is
refused with a reason and the previous one is used, or the pack starts afresh."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from ray import tune

from l0models import MLPConfig, TrainSettings, load_dataset, train_model
from l0models.fused import MemberSpec, train_fused
from workers.tune.checkpoints import (
    STATE_FILE,
    discard_checkpoints,
    load_resume_point,
    prune_checkpoints,
    state_from_dict,
    state_to_dict,
    write_checkpoint_files,
)
from workers.tune.protocol import FinishedMember, Member, MemberEpoch, SequentialState


@pytest.fixture(scope="module")
def states() -> dict[str, Any]:
    data = load_dataset("synthetic")
    config = MLPConfig(hidden=(8,), in_features=784, num_classes=10)
    settings = TrainSettings(epochs=1, batch_size=200)
    single: list[Any] = []
    result = train_model(
        config,
        lam=0.1,
        beta=0.6,
        seed=0,
        settings=settings,
        data=data,
        on_epoch=lambda _r, s: single.append(s),
    )
    fused: list[Any] = []
    train_fused(
        config,
        [MemberSpec(0.1, 0.6, 0), MemberSpec(1.0, 0.6, 1)],
        settings=settings,
        data=data,
        on_state=fused.append,
    )
    finished = FinishedMember(
        model_bytes=b"\x00torchscript\xff" * 10,
        measures={"accuracy": 0.5},
        files={"torchscript": b"\x00torchscript\xff" * 10, "onnx": b"\x08onnx"},
        errors={"pt2": "pt2 export failed: why"},
    )
    return {
        "train": single[-1],
        "fused": fused[-1],
        "sequential": SequentialState(done=[finished], inner=single[-1]),
        "result": result,
    }


def _roundtrip(state: Any, tmp_path: Path) -> Any:
    path = tmp_path / "state.pt"
    torch.save(state_to_dict(state), path)
    return state_from_dict(torch.load(path, weights_only=True))


@pytest.mark.parametrize("kind", ["train", "fused", "sequential"])
def test_engine_states_round_trip_as_plain_data(
    states: dict[str, Any], kind: str, tmp_path: Path
) -> None:
    state = states[kind]
    again = _roundtrip(state, tmp_path)
    assert type(again) is type(state)
    if kind == "sequential":
        assert again.done == state.done
        inner, original = again.inner, state.inner
    else:
        inner, original = again, state
    assert inner.epoch == original.epoch
    for name, tensor in original.model_state.items():
        assert torch.equal(inner.model_state[name], tensor)
    assert [r.as_dict() for r in getattr(inner, "history", [])] == [
        r.as_dict() for r in getattr(original, "history", [])
    ]


def test_a_train_result_is_not_a_checkpoint_state(states: dict[str, Any]) -> None:
    # Whole results (nn.Modules) are never written: only the engines' plain states.
    with pytest.raises(TypeError):
        state_to_dict(states["result"])


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _checkpoints(tmp_path: Path, state: Any, n: int) -> list[tune.Checkpoint]:
    """``n`` checkpoints of one trial, as Ray Tune lays them out (checkpoint_00000i)."""
    trial = tmp_path / "trial"
    out = []
    for i in range(n):
        directory = trial / f"checkpoint_{i:06d}"
        directory.mkdir(parents=True)
        record = MemberEpoch(0, i + 1, 0.5, 0.9, 1.0, 1.0, 0.1)
        write_checkpoint_files(str(directory), [Member(0.1, 0.6, 0, 1)], [record], state)
        out.append(tune.Checkpoint(str(directory)))
    return out


def test_a_tampered_checkpoint_is_refused_and_the_previous_one_used(
    states: dict[str, Any], tmp_path: Path
) -> None:
    _older, latest = _checkpoints(tmp_path, states["train"], 2)
    marker = tmp_path / "code-ran"
    evil = Path(latest.path, STATE_FILE)
    torch.save({"state": _RunsCode(marker)}, evil)  # a torch file whose pickle calls os.system
    point = load_resume_point(latest)
    assert not marker.exists()
    assert point.epoch == 1 and point.state is not None  # checkpoint_000000 holds epoch 1
    assert len(point.refused) == 1 and "checkpoint_000001" in point.refused[0]
    assert "UnpicklingError" in point.refused[0]
    # The control: an unrestricted load of that file does run its code.
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_truncated_and_incomplete_checkpoints_fall_back_to_a_fresh_start(
    states: dict[str, Any], tmp_path: Path
) -> None:
    first, second, third = _checkpoints(tmp_path, states["sequential"], 3)
    data = Path(third.path, STATE_FILE).read_bytes()
    Path(third.path, STATE_FILE).write_bytes(data[: len(data) // 2])  # truncated
    Path(second.path, STATE_FILE).unlink()  # incomplete
    Path(first.path, "pack_meta.json").write_text("{not json")
    point = load_resume_point(third)
    assert (point.state, point.epoch) == (None, 0)
    assert [r.split(":")[0] for r in point.refused] == [
        "checkpoint_000002",
        "checkpoint_000001",
        "checkpoint_000000",
    ]


def test_no_checkpoint_means_a_fresh_start() -> None:
    point = load_resume_point(None)
    assert (point.state, point.epoch, point.refused) == (None, 0, [])


def test_pruning_keeps_the_indexed_checkpoint_the_one_before_and_every_newer_one(
    states: dict[str, Any], tmp_path: Path
) -> None:
    """The files ran ahead of the index (checkpoints 4 and 5 are not in it yet): pruning at
    the indexed checkpoint 3 deletes only 0-1, and 3 still resumes with 2 to fall back to."""
    checkpoints = _checkpoints(tmp_path, states["train"], 6)
    deleted = prune_checkpoints(checkpoints[3])
    assert sorted(Path(p).name for p in deleted) == ["checkpoint_000000", "checkpoint_000001"]
    left = sorted(p.name for p in (tmp_path / "trial").iterdir())
    assert left == [f"checkpoint_{i:06d}" for i in (2, 3, 4, 5)]
    assert load_resume_point(checkpoints[3]).epoch == 4
    assert prune_checkpoints(checkpoints[3]) == []  # nothing more to delete


def test_discarding_a_finished_sweeps_checkpoints_keeps_everything_else(
    states: dict[str, Any], tmp_path: Path
) -> None:
    checkpoints = _checkpoints(tmp_path, states["train"], 3)
    (tmp_path / "trial" / "result.json").write_text("{}")
    (tmp_path / "tuner.pkl").write_bytes(b"x")
    size = sum(f.stat().st_size for c in checkpoints for f in Path(c.path).iterdir())
    assert discard_checkpoints(str(tmp_path)) == (3, size)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["result.json", "trial", "tuner.pkl"]
    assert discard_checkpoints(str(tmp_path)) == (0, 0)
    assert discard_checkpoints(str(tmp_path / "never-made")) == (0, 0)
