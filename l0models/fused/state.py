"""``FusedState``: a fused run's checkpoint (``l0models.fused.trainer``), and how a member
leaves it: ``member_state(k)`` cuts member k out as the ``TrainState`` of its single run,
``without(ks)`` moves stopped members out of the stacked tensors (early stopping).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from l0models.training import EpochRecord, TrainState, check_noise_format, to_cpu

__all__ = ["FusedState"]


@dataclass
class FusedState:
    """Everything needed to continue a fused run exactly (CPU tensors, picklable).

    ``model_state`` and ``optimizer_state`` (and the EMA's shadow) hold stacked tensors, one
    row per active member: row r is member ``active[r]`` (``active`` None: every member, in
    order). ``data_rng_states``, ``histories`` and ``members`` are indexed by the member's
    index in the pack. ``stopped``: each member stopped early (``should_stop``) as its
    single-run ``TrainState`` at its stop epoch. ``member_state(k)`` cuts out member k as an
    ordinary ``TrainState`` that ``train_model(resume=...)`` continues alone.
    """

    epoch: int  # epochs completed (by the active members)
    model_state: dict[str, Tensor]
    optimizer_state: dict[str, Any]
    scheduler_state: dict[str, Any] | None
    data_rng_states: list[Tensor]
    noise_step: int  # gate-noise steps drawn (the counter of every member's stream)
    histories: list[list[EpochRecord]]
    members: list[dict[str, Any]]  # MemberSpec.meta(settings) of each member
    noise: str = "member"
    param_names: list[str] = field(default_factory=list)  # optimizer param order
    ema_state: dict[str, Any] | None = None  # ParamEMA.state_dict() of the stacked params
    active: list[int] | None = None  # member index of each stacked row; None: all
    stopped: dict[int, TrainState] = field(default_factory=dict)  # stopped early, by index

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["histories"] = [[r.as_dict() for r in h] for h in self.histories]
        d["stopped"] = {int(k): s.as_dict() for k, s in self.stopped.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusedState:
        d = dict(d)
        check_noise_format(d, "noise_rng_states")
        d["histories"] = [
            [r if isinstance(r, EpochRecord) else EpochRecord(**r) for r in h]
            for h in d["histories"]
        ]
        d["stopped"] = {
            int(k): s if isinstance(s, TrainState) else TrainState.from_dict(s)
            for k, s in (d.get("stopped") or {}).items()
        }
        if d.get("active") is not None:
            d["active"] = [int(k) for k in d["active"]]
        return cls(**d)

    def active_members(self) -> list[int]:
        """The member indices of the stacked rows, in row order."""
        return list(range(len(self.members))) if self.active is None else list(self.active)

    def member_state(self, k: int) -> TrainState:
        """Member ``k`` as a single-trainer ``TrainState`` (needs ``noise="member"``); a
        stopped member's state at its stop epoch."""
        if self.noise != "member":
            raise ValueError("only runs with per-member noise can be split into single states")
        if k in self.stopped:
            return TrainState.from_dict(to_cpu(self.stopped[k].as_dict()))
        return self._cut(k)

    def _cut(self, k: int) -> TrainState:
        active = self.active_members()
        if k not in active:
            raise ValueError(f"member {k} is not in this pack's stack (rows: {active})")
        row = active.index(k)
        names = set(self.param_names)
        model_state = {n: t[row].clone() for n, t in self.model_state.items() if n in names}
        opt = self.optimizer_state
        state = {
            i: {
                key: (v[row].clone() if isinstance(v, Tensor) and v.dim() > 0 else to_cpu(v))
                for key, v in s.items()
            }
            for i, s in opt["state"].items()
        }
        groups = to_cpu(opt["param_groups"])
        for group in groups:  # let the single trainer pick its own Adam implementation
            for key in ("fused", "foreach"):
                if key in group:
                    group[key] = None
        ema_state = None
        if self.ema_state is not None:
            shadow = self.ema_state["shadow"]
            ema_state = {**self.ema_state, "shadow": {n: t[row].clone() for n, t in shadow.items()}}
        return TrainState(
            epoch=self.epoch,
            model_state=model_state,
            optimizer_state={"state": state, "param_groups": groups},
            scheduler_state=to_cpu(self.scheduler_state),
            data_rng_state=self.data_rng_states[k].clone(),
            noise_step=self.noise_step,
            history=list(self.histories[k]),
            meta=dict(self.members[k]),
            ema_state=ema_state,
        )

    def without(self, ks: Iterable[int]) -> FusedState:
        """This state with the active members ``ks`` stopped: each moved into ``stopped`` as
        its single-run state, every stacked tensor (parameters, optimiser moments, EMA
        shadow) cut to the remaining rows. ``self`` when none of ``ks`` is active."""
        active = self.active_members()
        leaving = {int(k) for k in ks} & set(active)
        if not leaving:
            return self
        stopped = dict(self.stopped)
        for k in sorted(leaving):
            stopped[k] = self._cut(k)
        rows = torch.tensor([r for r, k in enumerate(active) if k not in leaving], dtype=torch.long)

        def cut(v: Any) -> Any:
            return v.index_select(0, rows) if isinstance(v, Tensor) and v.dim() > 0 else to_cpu(v)

        opt = self.optimizer_state
        ema_state = None
        if self.ema_state is not None:
            shadow = {n: cut(t) for n, t in self.ema_state["shadow"].items()}
            ema_state = {**self.ema_state, "shadow": shadow}
        return dataclasses.replace(
            self,
            model_state={n: cut(t) for n, t in self.model_state.items()},
            optimizer_state={
                "state": {
                    i: {key: cut(v) for key, v in s.items()} for i, s in opt["state"].items()
                },
                "param_groups": to_cpu(opt["param_groups"]),
            },
            ema_state=ema_state,
            active=[k for k in active if k not in leaving],
            stopped=stopped,
        )
