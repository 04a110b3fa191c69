"""Ray Tune searcher of the budget strategy (issue 13): drives a :class:`BudgetPlanner`.

Each suggestion is one trial ``{"lam", "beta", "seed", "stop_at"}``: β is the spec's first,
seeds cycle through the spec's seeds in issue order, and ``stop_at`` is the epoch the runner
stops a probe at (None: train to the end). The searcher collects member 0's epoch records
(``kind == "epoch"``) of each trial and, when the trial ends, hands the planner the history
of a probe or the measures (``kind == "final"``, ``members[0]``) of a final.

Ray Tune does not pass a result to ``on_trial_result`` when that result stops the trial (a
stopper acting at ``stop_at``); it arrives as ``on_trial_complete``'s result, so that one is
read for epoch records too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ray.tune.search import Searcher

from service.spec import BudgetSearch
from workers.tune.budget import BudgetPlanner, FinishedTrial, Predictor, Proposal
from workers.tune.protocol import EPOCH, FINAL

if TYPE_CHECKING:
    from service.spec import SweepSpec

__all__ = ["BudgetSearcher", "budget_searcher"]


class BudgetSearcher(Searcher):
    """A ``ray.tune.search.Searcher`` that asks ``planner`` for every trial.

    Args:
        planner: The budget plan (restored trials already observed).
        beta: The gate temperature of every trial.
        seeds: Seeds, cycled in the order trials are issued.
    """

    def __init__(self, planner: BudgetPlanner, *, beta: float, seeds: Sequence[int]) -> None:
        super().__init__(metric="accuracy", mode="max")
        if not seeds:
            raise ValueError("seeds must not be empty")
        self.planner = planner
        self._beta = float(beta)
        self._seeds = [int(s) for s in seeds]
        self._live: dict[str, Proposal] = {}
        self._records: dict[str, dict[int, dict[str, Any]]] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        proposal = self.planner.next()
        if proposal is None:
            if self.planner.done:  # Ray types suggest as dict | None, yet reads FINISHED
                return Searcher.FINISHED  # type: ignore[return-value]
            return None
        self._live[trial_id] = proposal
        self._records[trial_id] = {}
        return {
            "lam": proposal.lam,
            "beta": self._beta,
            "seed": self._seeds[proposal.index % len(self._seeds)],
            "stop_at": proposal.stop_at,
        }

    def _collect(self, trial_id: str, result: Mapping[str, Any] | None) -> None:
        if not result or result.get("kind") != EPOCH or trial_id not in self._records:
            return
        for record in result.get("records") or ():
            if int(record.get("member", 0)) == 0:
                self._records[trial_id][int(record["epoch"])] = dict(record)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._collect(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        proposal = self._live.pop(trial_id, None)
        self._collect(trial_id, result)
        records = self._records.pop(trial_id, {})
        if proposal is None:
            return
        history = [records[e] for e in sorted(records)]
        measures = _measures(result)
        if proposal.kind == "probe":
            if history:  # a probe that failed late still has its trajectory
                self.planner.observe_probe(proposal.lam, history)
            else:
                self.planner.observe_failure(proposal.lam)
        elif measures is not None and not error:
            self.planner.observe_final(proposal.lam, measures)
        else:
            self.planner.observe_failure(proposal.lam)

    def best(self) -> tuple[float, Mapping[str, Any]] | None:
        return self.planner.best()

    def save(self, checkpoint_path: str) -> None:
        """Nothing to write: the database holds every finished trial and
        :func:`budget_searcher` rebuilds the plan from them (no pickles read back)."""

    def restore(self, checkpoint_path: str) -> None:
        """See :meth:`save`."""


def _measures(result: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not result or result.get("kind") != FINAL:
        return None
    members = result.get("members") or []
    return members[0] if members else None


def budget_searcher(
    spec: SweepSpec,
    *,
    finished: Iterable[FinishedTrial] = (),
    predictor: Predictor | None = None,
) -> BudgetSearcher:
    """The searcher of a ``search.strategy == "budget"`` spec, warm-started with the trials
    ``finished`` before a runner restart (λ, epoch records, measures: probes and finals).

    The λ interval is ``spec.lambda_bounds()``; FLOPs and parameters are normalised by the
    dense model's (``spec.model_size()``, the trials' ``flops_dense``/``params_dense``).
    """
    search = spec.search
    if not isinstance(search, BudgetSearch):
        raise ValueError(f"budget_searcher needs search.strategy 'budget', got {search.strategy!r}")
    constraint = search.constraint
    dense = spec.model_size()
    planner = BudgetPlanner(
        constraint.kind,
        constraint.value,
        spec.lambda_bounds(),
        spec.training.epochs,
        search.n_trials,
        dense=float(dense.flops if constraint.kind == "max_flops" else dense.params),
        predictor=predictor,
    )
    planner.restore(finished)
    betas = spec.betas
    beta = float(betas[0]) if isinstance(betas, list) else float(betas.min)
    return BudgetSearcher(planner, beta=beta, seeds=spec.seeds)
