"""workers.tune.trial_log: runner and trainable lines carry sweep_id, trial_id and pack."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from service.logs import active_log_format, configure_logging
from workers.tune.protocol import Member, MemberEpoch, TrainJob, pack_config
from workers.tune.trial_log import log_exported, log_member_epochs, pack_logged, sweep_logging


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    stream = io.StringIO()
    configure_logging("json", level=logging.WARNING, stream=stream)
    logging.getLogger("workers").setLevel(logging.INFO)
    yield stream
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    configure_logging.__globals__["_active"] = None


def _parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_packs_lines_carry_its_sweep_and_each_members_trial(lines: io.StringIO) -> None:
    members = [Member(0.1, 0.5, 0, trial_id=11), Member(1.0, 0.5, 0, trial_id=12)]
    job = TrainJob(spec=None, sweep_id=7, log_format="json")  # type: ignore[arg-type]

    @pack_logged
    def train_pack(config: dict[str, Any], *, job: TrainJob) -> str:
        records = [MemberEpoch(k, 1, 0.5, 0.9 if k else None, 10.0, 20.0, 1.5) for k in (0, 1)]
        log_member_epochs(members, records)
        log_exported(members[1], {"export_seconds": 1.2, "onnx_error": "onnx export failed"})
        return "done"

    assert train_pack({"pack": pack_config(members)}, job=job) == "done"
    assert active_log_format() == "json"
    out = _parsed(lines)
    assert [line["message"] for line in out] == [
        "pack of 2 member(s) started",
        "epoch 1: loss 0.5000, test accuracy -, 1.5 s",
        "epoch 1: loss 0.5000, test accuracy 0.9000, 1.5 s",
        "model files exported; failed: onnx",
    ]
    for line in out:
        assert line["sweep_id"] == 7 and "pack" in line and line["trial_ids"] == [11, 12]
    assert [line["trial_id"] for line in out] == [None, 11, 12, 12]  # a fused pack: no one id
    assert out[1]["epoch"] == 1 and out[3]["onnx_error"] == "onnx export failed"


def test_a_failing_pack_logs_its_traceback(lines: io.StringIO) -> None:
    member = Member(0.1, 0.5, 0, trial_id=3)

    @pack_logged
    def train_pack(config: dict[str, Any], *, job: TrainJob) -> None:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        train_pack({"pack": pack_config([member])}, job=TrainJob(spec=None, sweep_id=1))  # type: ignore[arg-type]
    started, failed = _parsed(lines)
    assert started["trial_id"] == failed["trial_id"] == 3  # a one-member pack: its trial
    assert failed["level"] == "ERROR" and "RuntimeError: out of memory" in failed["exc_info"]


def test_the_runner_logs_each_sweep_with_its_id(lines: io.StringIO) -> None:
    @dataclass
    class Outcome:
        status: str = "completed"
        completed: int = 4
        failed: int = 1
        interrupted: bool = False

    class Runner:
        @sweep_logging
        def run_sweep(self, sweep: Any) -> Outcome:
            logging.getLogger("workers.tune.runner").warning("inside")
            return Outcome()

    sweep = type("SweepRow", (), {"id": 5, "n_trials": 5})()
    assert Runner().run_sweep(sweep) == Outcome()
    out = _parsed(lines)
    assert [line["message"] for line in out] == [
        "running sweep 5 (5 trials)",
        "inside",
        "sweep 5: completed (4 trial(s) completed, 1 failed)",
    ]
    assert {line["sweep_id"] for line in out} == {5}
