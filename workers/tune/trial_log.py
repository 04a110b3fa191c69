"""Log lines of the runner and the trainables, with the ids an operator filters on.

The runner's lines carry the sweep it is running (:func:`sweep_logging`); a trainable's
carry the sweep, the pack (the Ray Tune trial id that trains it, as in Tune's own logs and
checkpoint folders) and the trial: each member's lines its own trial id, lines about the
whole pack the trial id of a one-member pack (null for a fused pack, whose members are
listed in ``trial_ids``). With ``L0SWEEP_LOG_FORMAT=json`` each line is one JSON object
(``service.logs``): the runner's format travels to its trainables with the job, and a
trainable's lines go to its Ray worker's log file.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from service.logs import active_log_format, configure_logging, log_context, resolve_log_format
from workers.tune.protocol import members_from_config

if TYPE_CHECKING:
    from workers.tune.protocol import Member, MemberEpoch

__all__ = ["log_exported", "log_member_epochs", "pack_logged", "pack_logging", "sweep_logging"]

log = logging.getLogger("workers.tune.trial")
runner_log = logging.getLogger("workers.tune.runner")

P = ParamSpec("P")
R = TypeVar("R")


def sweep_logging(run_sweep: Callable[P, R]) -> Callable[P, R]:
    """Decorates ``Runner.run_sweep(self, sweep)``: its lines carry ``sweep_id``; logs the
    sweep's start and outcome."""

    @functools.wraps(run_sweep)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        sweep: Any = kwargs.get("sweep", args[1] if len(args) > 1 else None)
        with log_context(sweep_id=getattr(sweep, "id", None)):
            runner_log.info(
                "running sweep %s (%s trials)",
                getattr(sweep, "id", None),
                getattr(sweep, "n_trials", "?"),
            )
            outcome: Any = run_sweep(*args, **kwargs)
            runner_log.info(
                "sweep %s: %s (%s trial(s) completed, %s failed%s)",
                getattr(sweep, "id", None),
                getattr(outcome, "status", "?"),
                getattr(outcome, "completed", "?"),
                getattr(outcome, "failed", "?"),
                ", interrupted" if getattr(outcome, "interrupted", False) else "",
            )
            return outcome

    return wrapper


def _tune_trial_id() -> str | None:
    try:
        from ray import tune

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # outside a session it warns and says None
            trial_id = tune.get_context().get_trial_id()
    except Exception:  # outside a Tune session (tests call the trainable directly)
        return None
    return None if trial_id is None else str(trial_id)


@contextmanager
def pack_logging(
    sweep_id: int | None, members: Sequence[Member], log_format: str | None = None
) -> Iterator[None]:
    """The context of one pack's trainable: its lines carry the sweep, pack and trial.

    Logs the pack's start, and its failure with the traceback.

    Args:
        log_format: The runner's (``TrainJob.log_format``); None: as this process logs
            already, else ``L0SWEEP_LOG_FORMAT``.
    """
    # A Ray worker process has no handler of ours (and a reused one may have another
    # format): lines go to its stderr, i.e. the worker's log file.
    active = active_log_format()
    if active is None or (log_format is not None and resolve_log_format(log_format) != active):
        configure_logging(log_format, level=logging.WARNING)
        logging.getLogger("workers").setLevel(logging.INFO)
    ids = [m.trial_id for m in members]
    single = ids[0] if len(ids) == 1 else None
    with log_context(sweep_id=sweep_id, trial_id=single, pack=_tune_trial_id(), trial_ids=ids):
        log.info("pack of %d member(s) started", len(ids))
        try:
            yield
        except Exception:
            log.exception("pack stopped by an error")
            raise


def pack_logged(train_pack: Callable[P, R]) -> Callable[P, R]:
    """Decorates the trainable ``train_pack(config, *, job, ...)`` with :func:`pack_logging`."""

    @functools.wraps(train_pack)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        config: Any = args[0] if args else kwargs["config"]
        job = kwargs.get("job")
        members = members_from_config(config)
        sweep_id, log_format = getattr(job, "sweep_id", None), getattr(job, "log_format", None)
        with pack_logging(sweep_id, members, log_format):
            return train_pack(*args, **kwargs)

    return wrapper


def log_member_epochs(members: Sequence[Member], records: Sequence[MemberEpoch]) -> None:
    """One line per finished member-epoch, carrying that member's trial id."""
    for record in records:
        with log_context(trial_id=members[record.member].trial_id):
            log.info(
                "epoch %d: loss %.4f, test accuracy %s, %.1f s",
                record.epoch,
                record.loss,
                "-" if record.accuracy is None else f"{record.accuracy:.4f}",
                record.seconds,
                extra={"epoch": record.epoch, "loss": record.loss, "accuracy": record.accuracy},
            )


def log_exported(member: Member, summary: Mapping[str, Any]) -> None:
    """The member's model files were written (with the formats that failed, if any)."""
    with log_context(trial_id=member.trial_id):
        failed = [k.removesuffix("_error") for k in summary if k.endswith("_error")]
        if failed:
            log.warning("model files exported; failed: %s", ", ".join(failed), extra=dict(summary))
        else:
            log.info("model files exported", extra=dict(summary))
