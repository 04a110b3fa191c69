"""Early stopping at the caller's decision (issue 13): ``train_model(should_stop=...)`` and
``train_fused(should_stop=...)``, where a stopped member leaves the stacked computation.

A single run stopped at epoch e is the run of ``epochs=e`` (same seed): the same parameters
bit for bit, the same measures. A fused member stopped at e matches its single run stopped
at e, and the survivors, re-packed without it, still match their single runs to the end,
within the tolerance of ``test_fused.py`` (float summation order; see its docstring).
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Sequence

import pytest
import torch

from l0models import (
    Dataset,
    EpochRecord,
    MLPConfig,
    TrainResult,
    TrainSettings,
    TrainState,
    synthetic_dataset,
    train_model,
)
from l0models.fused import FusedState, MemberSpec, train_fused

CONFIG = MLPConfig(hidden=(32, 16))
MEMBERS = [
    MemberSpec(lam=0.0, beta=2 / 3, seed=3),
    MemberSpec(lam=0.05, beta=0.5, seed=11),
    MemberSpec(lam=0.5, beta=2 / 3, seed=12),
    MemberSpec(lam=2.0, beta=0.9, seed=13),
]
STOP_AT = {1: 2, 3: 2}  # member -> the epoch it stops at


@pytest.fixture(scope="module")
def data() -> Dataset:
    return synthetic_dataset(n_train=300, n_test=100)


def _same_params(a: TrainResult, b: TrainResult) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _rows(history: Sequence[EpochRecord]) -> list[dict]:
    return [{**r.as_dict(), "seconds": None} for r in history]


def _stop_at(epoch: int, asked: list[int] | None = None):
    def should_stop(history: Sequence[EpochRecord]) -> bool:
        if asked is not None:
            asked.append(history[-1].epoch)
        return history[-1].epoch >= epoch

    return should_stop


def _fused_stop(stop_at: dict[int, int], asked: list[tuple[int, int]] | None = None):
    def should_stop(k: int, history: Sequence[EpochRecord]) -> bool:
        if asked is not None:
            asked.append((k, history[-1].epoch))
        return k in stop_at and history[-1].epoch >= stop_at[k]

    return should_stop


def _saved(state: FusedState | TrainState):
    buf = io.BytesIO()
    torch.save(state.as_dict(), buf)  # what a checkpoint on disk holds
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# ---- train_model ----------------------------------------------------------------------------


@pytest.mark.parametrize("ema", [None, 0.9])
def test_a_stopped_run_is_the_shorter_run(data: Dataset, ema: float | None) -> None:
    settings = TrainSettings(epochs=4, batch_size=50, ema=ema)
    asked: list[int] = []
    seen: list[int] = []
    got = train_model(
        CONFIG, lam=0.5, beta=0.5, seed=7, settings=settings, data=data,
        on_epoch=lambda r, _s: seen.append(r.epoch), should_stop=_stop_at(2, asked),
    )  # fmt: skip
    short = dataclasses.replace(settings, epochs=2)
    want = train_model(CONFIG, lam=0.5, beta=0.5, seed=7, settings=short, data=data)
    assert asked == [1, 2] and seen == [1, 2]
    assert got.stopped_epoch == 2 and want.stopped_epoch is None
    assert _same_params(got, want)
    assert got.measures == want.measures
    assert _rows(got.history) == _rows(want.history)
    assert not got.model.training


def test_the_last_epoch_is_never_asked_about(data: Dataset) -> None:
    settings = TrainSettings(epochs=3, batch_size=100)
    asked: list[int] = []
    got = train_model(
        CONFIG, lam=0.5, beta=0.5, seed=7, settings=settings, data=data,
        should_stop=_stop_at(99, asked),
    )  # fmt: skip
    want = train_model(CONFIG, lam=0.5, beta=0.5, seed=7, settings=settings, data=data)
    assert asked == [1, 2] and got.stopped_epoch is None
    assert _same_params(got, want)


def test_a_resumed_run_is_asked_first(data: Dataset) -> None:
    settings = TrainSettings(epochs=4, batch_size=50)
    states: dict[int, TrainState] = {}

    def save(record: EpochRecord, state: TrainState) -> None:
        states[record.epoch] = TrainState.from_dict(_saved(state))

    full = train_model(
        CONFIG, lam=0.2, beta=2 / 3, seed=1, settings=settings, data=data, on_epoch=save
    )
    stopped = train_model(
        CONFIG, lam=0.2, beta=2 / 3, seed=1, settings=settings, data=data,
        should_stop=_stop_at(2),
    )  # fmt: skip
    # A decision taken at epoch 2, right before a crash: the resumed run trains no further.
    asked: list[int] = []
    seen: list[int] = []
    again = train_model(
        CONFIG, lam=0.2, beta=2 / 3, seed=1, settings=settings, data=data, resume=states[2],
        on_epoch=lambda r, _s: seen.append(r.epoch), should_stop=_stop_at(2, asked),
    )  # fmt: skip
    assert asked == [2] and seen == [] and again.stopped_epoch == 2
    assert _same_params(again, stopped) and again.measures == stopped.measures
    # Not stopping: the resumed run goes on exactly; a finished state is not asked about.
    asked.clear()
    on = train_model(
        CONFIG, lam=0.2, beta=2 / 3, seed=1, settings=settings, data=data, resume=states[1],
        should_stop=_stop_at(99, asked),
    )  # fmt: skip
    assert asked == [1, 2, 3] and on.stopped_epoch is None and _same_params(on, full)
    asked.clear()
    done = train_model(
        CONFIG, lam=0.2, beta=2 / 3, seed=1, settings=settings, data=data, resume=states[4],
        should_stop=_stop_at(1, asked),
    )  # fmt: skip
    assert asked == [] and done.stopped_epoch is None and _same_params(done, full)


# ---- train_fused ----------------------------------------------------------------------------


def _assert_close(got: TrainResult, want: TrainResult, settings: TrainSettings, data: Dataset):
    # test_fused.py's fused-vs-single tolerance (see its docstring).
    steps = len(want.history) * math.ceil(data.n_train / settings.batch_size)
    n_test = data.x_test.shape[0]
    want_sd, got_sd = want.model.state_dict(), got.model.state_dict()
    assert want_sd.keys() == got_sd.keys()
    for name, w in want_sd.items():
        diff = (got_sd[name] - w).abs()
        assert diff.max() <= settings.lr * steps, (name, float(diff.max()))
        scale = max(float(w.norm()), settings.lr * steps * math.sqrt(w.numel()))
        assert float(diff.norm()) / scale <= 1e-2, name
        if name.endswith("log_alpha"):
            assert diff.max() <= 1e-3, (name, float(diff.max()))
    assert got.measures.architecture == want.measures.architecture
    assert abs(got.measures.accuracy - want.measures.accuracy) <= 2 / n_test
    assert got.measures.params == want.measures.params
    assert got.measures.expected_l0 == pytest.approx(want.measures.expected_l0, rel=1e-4)
    assert [r.epoch for r in got.history] == [r.epoch for r in want.history]
    for rg, rw in zip(got.history, want.history, strict=True):
        assert rg.loss == pytest.approx(rw.loss, rel=1e-4)
    assert got.stopped_epoch == want.stopped_epoch


def _single(spec: MemberSpec, k: int, settings: TrainSettings, data: Dataset, stop_at=STOP_AT):
    return train_model(
        CONFIG, lam=spec.lam, beta=spec.beta, seed=spec.seed, settings=spec.settings(settings),
        data=data, should_stop=_stop_at(stop_at[k]) if k in stop_at else None,
    )  # fmt: skip


@pytest.mark.parametrize(
    "settings",
    [
        TrainSettings(epochs=4, batch_size=50),
        TrainSettings(epochs=3, batch_size=60, optimizer="sgd", lr=0.05, ema=0.9),
    ],
    ids=["adam", "sgd-ema"],
)
def test_stopped_members_leave_the_pack_and_match_their_single_runs(
    data: Dataset, settings: TrainSettings
) -> None:
    asked: list[tuple[int, int]] = []
    seen: list[tuple[int, int]] = []
    states: list[FusedState] = []
    fused = train_fused(
        CONFIG, MEMBERS, settings=settings, data=data, on_state=states.append,
        on_epoch=lambda k, r: seen.append((k, r.epoch)), should_stop=_fused_stop(STOP_AT, asked),
    )  # fmt: skip
    last = settings.epochs
    assert seen == [(k, e) for e in range(1, last + 1) for k in range(4) if e <= 2 or k in (0, 2)]
    assert asked == [(k, e) for k, e in seen if e < last]
    assert [s.epoch for s in states] == list(range(1, last + 1))
    assert states[0].active is None and not states[0].stopped
    for s in states[1:]:  # from the stop on, the stacked rows are members 0 and 2 only
        assert s.active == [0, 2] and sorted(s.stopped) == [1, 3]
        assert all(t.shape[0] == 2 for t in s.model_state.values())
        assert [len(h) for h in s.histories] == [s.epoch, 2, s.epoch, 2]
    for k, spec in enumerate(MEMBERS):
        want = _single(spec, k, settings, data)
        assert fused[k].stopped_epoch == (2 if k in STOP_AT else None)
        _assert_close(fused[k], want, settings, data)
        assert fused[k].measures.accuracy_raw is not None
        assert not fused[k].model.training
    # member_state: a stopped member's state at its stop, an active one's by its row.
    assert states[-1].member_state(1).epoch == 2 and states[-1].member_state(0).epoch == last
    assert states[-1].member_state(2).meta == MEMBERS[2].meta(settings)
    with pytest.raises(ValueError, match="not in this pack"):
        states[-1].member_state(7)


def test_resume_after_a_stop_continues_identically(data: Dataset) -> None:
    settings = TrainSettings(epochs=4, batch_size=50)
    states: list[FusedState] = []
    straight = train_fused(
        CONFIG, MEMBERS, settings=settings, data=data, on_state=states.append,
        should_stop=_fused_stop(STOP_AT),
    )  # fmt: skip
    for epoch in (1, 2, 3):  # before the stop, right after it, and later
        asked: list[tuple[int, int]] = []
        state = FusedState.from_dict(_saved(states[epoch - 1]))
        resumed = train_fused(
            CONFIG, MEMBERS, settings=settings, data=data, resume=state,
            should_stop=_fused_stop(STOP_AT, asked),
        )  # fmt: skip
        active = [0, 1, 2, 3] if epoch == 1 else [0, 2]
        assert asked[: len(active)] == [(k, epoch) for k in active]  # the resume ask first
        for a, b in zip(straight, resumed, strict=True):
            assert _same_params(a, b)
            assert [r.loss for r in a.history] == [r.loss for r in b.history]
            assert a.measures == b.measures and a.stopped_epoch == b.stopped_epoch


def test_every_member_stopping_returns_at_once(data: Dataset) -> None:
    settings = TrainSettings(epochs=5, batch_size=50)
    stop_all = {k: 1 for k in range(len(MEMBERS))}
    states: list[FusedState] = []
    fused = train_fused(
        CONFIG, MEMBERS, settings=settings, data=data, on_state=states.append,
        should_stop=_fused_stop(stop_all),
    )  # fmt: skip
    assert len(states) == 1 and states[0].active == [] and sorted(states[0].stopped) == [0, 1, 2, 3]
    for k, spec in enumerate(MEMBERS):
        assert fused[k].stopped_epoch == 1 and len(fused[k].history) == 1
        _assert_close(fused[k], _single(spec, k, settings, data, stop_all), settings, data)
    seen: list[int] = []
    again = train_fused(
        CONFIG, MEMBERS, settings=settings, data=data,
        resume=FusedState.from_dict(_saved(states[0])),
        on_epoch=lambda k, _r: seen.append(k), should_stop=_fused_stop(stop_all),
    )  # fmt: skip
    assert seen == []
    assert all(_same_params(a, b) for a, b in zip(fused, again, strict=True))


def test_a_stop_asked_on_resume_repacks_before_training(data: Dataset) -> None:
    settings = TrainSettings(epochs=3, batch_size=50)
    states: list[FusedState] = []
    train_fused(CONFIG, MEMBERS, settings=settings, data=data, on_state=states.append)
    stop = {2: 1}
    seen: list[tuple[int, int]] = []
    resumed = train_fused(
        CONFIG, MEMBERS, settings=settings, data=data,
        resume=FusedState.from_dict(_saved(states[0])),
        on_epoch=lambda k, r: seen.append((k, r.epoch)), should_stop=_fused_stop(stop),
    )  # fmt: skip
    assert seen == [(k, e) for e in (2, 3) for k in (0, 1, 3)]
    assert resumed[2].stopped_epoch == 1 and len(resumed[2].history) == 1
    for k, spec in enumerate(MEMBERS):
        _assert_close(resumed[k], _single(spec, k, settings, data, stop), settings, data)


def test_pack_noise_survivors_keep_their_streams(data: Dataset) -> None:
    # "pack" noise: one key for the pack, member k on stream k + 1; a re-packed survivor
    # keeps its own stream, so it trains as in the pack that never stopped anyone.
    settings = TrainSettings(epochs=3, batch_size=50)
    full = train_fused(CONFIG, MEMBERS, settings=settings, data=data, noise="pack")
    cut = train_fused(
        CONFIG, MEMBERS, settings=settings, data=data, noise="pack",
        should_stop=_fused_stop({0: 1, 1: 1}),
    )  # fmt: skip
    for k in (2, 3):
        assert cut[k].stopped_epoch is None
        _assert_close(cut[k], full[k], settings, data)
    assert cut[0].stopped_epoch == 1


def test_old_states_without_the_stop_fields_still_load(data: Dataset) -> None:
    settings = TrainSettings(epochs=2, batch_size=100)
    states: list[FusedState] = []
    straight = train_fused(
        CONFIG, MEMBERS[:2], settings=settings, data=data, on_state=states.append
    )
    old = _saved(states[0])
    del old["active"], old["stopped"]
    state = FusedState.from_dict(old)
    assert state.active is None and state.stopped == {} and state.active_members() == [0, 1]
    resumed = train_fused(CONFIG, MEMBERS[:2], settings=settings, data=data, resume=state)
    assert all(_same_params(a, b) for a, b in zip(straight, resumed, strict=True))
