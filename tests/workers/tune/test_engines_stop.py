"""Early stopping through the pack engines (issue 13): every engine passes ``should_stop(k,
history)`` down with k = the member's index in the pack, stopped members report no further
epochs, the final measures carry ``stopped_epoch``, and a fused state holding stopped
members survives the checkpoint format (``torch.load(weights_only=True)``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from l0models import EpochRecord
from l0models.fused import FusedState
from service.spec import SweepSpec
from workers.tune import spec_adapter
from workers.tune.checkpoints import state_from_dict, state_to_dict
from workers.tune.engines import fused_pack_engine, sequential_engine, single_engine
from workers.tune.protocol import FinishedMember, Member, MemberEpoch, SequentialState, TrainJob

EPOCHS = 3


@pytest.fixture(scope="module")
def job() -> TrainJob:
    spec = SweepSpec.model_validate(
        {
            "model": {"arch": "mlp", "hidden": [16]},
            "dataset": "synthetic",
            "lambdas": [0.1, 0.5, 1.0],
            "seeds": [0],
            "training": {"epochs": EPOCHS, "batch_size": 100},
        }
    )
    return TrainJob(spec=spec)


def _members(job: TrainJob) -> list[Member]:
    return [Member(p.lam, p.beta, p.seed, trial_id=i) for i, p in enumerate(job.spec.expand_grid())]


class _Oracle:
    """Stops member k at epoch ``at[k]``; records every ask as (k, epoch)."""

    def __init__(self, at: dict[int, int]) -> None:
        self.at = at
        self.asked: list[tuple[int, int]] = []

    def __call__(self, k: int, history: Sequence[EpochRecord]) -> bool:
        self.asked.append((k, history[-1].epoch))
        return k in self.at and history[-1].epoch >= self.at[k]


def _run(engine: Any, members: list[Member], job: TrainJob, oracle: _Oracle, resume=None):
    reported: list[MemberEpoch] = []
    states: list[Any] = []

    def on_progress(records: Sequence[MemberEpoch], state: Any) -> None:
        reported.extend(records)
        states.append(state)

    results = engine(
        members, job, device="cpu", on_progress=on_progress, resume=resume, should_stop=oracle
    )
    return results, reported, states


def _stopped_epochs(results: Sequence[Any]) -> list[int | None]:
    return [spec_adapter.measures_dict(r)["stopped_epoch"] for r in results]


def test_single_engine_asks_member_zero(job: TrainJob) -> None:
    member = _members(job)[:1]
    oracle = _Oracle({0: 1})
    results, reported, _ = _run(single_engine, member, job, oracle)
    assert oracle.asked == [(0, 1)]
    assert [(r.member, r.epoch) for r in reported] == [(0, 1)]
    assert results[0].stopped_epoch == 1 and _stopped_epochs(results) == [1]
    never = _Oracle({})
    results, reported, _ = _run(single_engine, member, job, never)
    assert never.asked == [(0, e) for e in range(1, EPOCHS)]
    assert _stopped_epochs(results) == [None]


def test_sequential_engine_asks_each_member_by_its_index(job: TrainJob) -> None:
    members = _members(job)
    oracle = _Oracle({1: 1})
    results, reported, states = _run(sequential_engine, members, job, oracle)
    assert oracle.asked == [(0, 1), (0, 2), (1, 1), (2, 1), (2, 2)]
    assert [(r.member, r.epoch) for r in reported] == [
        (0, 1), (0, 2), (0, 3), (1, 1), (2, 1), (2, 2), (2, 3),
    ]  # fmt: skip
    assert all(isinstance(r, FinishedMember) for r in results)
    assert _stopped_epochs(results) == [None, 1, None]
    # Resumed inside member 1 right after its stop: it is asked again and trains no further.
    inner = next(s for s in states if s.inner is not None and s.inner.meta["lam"] == 0.5)
    again = _Oracle({1: 1})
    resumed, reported, _ = _run(sequential_engine, members, job, again, resume=inner)
    assert again.asked[0] == (1, 1) and reported[0].member == 2
    assert _stopped_epochs(resumed) == [None, 1, None]
    # A finished member checkpointed before early stopping existed reports None.
    old = FinishedMember(model_bytes=b"", measures={"accuracy": 0.5})
    assert spec_adapter.measures_dict(old) == {"stopped_epoch": None, "accuracy": 0.5}
    assert isinstance(inner, SequentialState)


def test_fused_engine_drops_stopped_members(job: TrainJob, tmp_path: Path) -> None:
    members = _members(job)
    oracle = _Oracle({0: 1, 2: 1})
    results, reported, states = _run(fused_pack_engine, members, job, oracle)
    assert oracle.asked == [(0, 1), (1, 1), (2, 1), (1, 2)]
    assert [(r.member, r.epoch) for r in reported] == [(0, 1), (1, 1), (2, 1), (1, 2), (1, 3)]
    assert _stopped_epochs(results) == [1, None, 1]
    assert [len(r.history) for r in results] == [1, EPOCHS, 1]
    # The checkpoint of the epoch of the stop: plain data, the stop fields kept.
    state = states[0]
    assert isinstance(state, FusedState) and state.active == [1]
    path = tmp_path / "state.pt"
    torch.save(state_to_dict(state), path)
    again = state_from_dict(torch.load(path, weights_only=True))
    assert again.active == [1] and sorted(again.stopped) == [0, 2]
    for k in (0, 2):
        a, b = again.stopped[k], state.stopped[k]
        assert a.epoch == b.epoch == 1 and a.meta == b.meta
        assert all(torch.equal(a.model_state[n], t) for n, t in b.model_state.items())
        assert [r.as_dict() for r in a.history] == [r.as_dict() for r in b.history]
    # ... and the pack resumed from it ends as the straight run did.
    resumed, reported, _ = _run(fused_pack_engine, members, job, _Oracle({0: 1, 2: 1}), again)
    assert [(r.member, r.epoch) for r in reported] == [(1, 2), (1, 3)]
    assert _stopped_epochs(resumed) == [1, None, 1]
    for a, b in zip(results, resumed, strict=True):
        assert spec_adapter.measures_dict(a) == spec_adapter.measures_dict(b)


def test_a_fused_checkpoint_from_before_early_stopping_still_resumes(job: TrainJob) -> None:
    members = _members(job)
    straight, _, states = _run(fused_pack_engine, members, job, _Oracle({}))
    old = state_to_dict(states[0])
    del old["state"]["active"], old["state"]["stopped"]  # the dict of an older version
    legacy = state_from_dict(old)
    assert legacy.active is None and legacy.stopped == {}
    resumed, reported, _ = _run(fused_pack_engine, members, job, _Oracle({}), legacy)
    assert [(r.member, r.epoch) for r in reported] == [(k, e) for e in (2, 3) for k in range(3)]
    for a, b in zip(straight, resumed, strict=True):
        assert spec_adapter.measures_dict(a) == spec_adapter.measures_dict(b)
