"""Terminal output of the CLI: the progress bar of a running sweep and result tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.vocabulary import RESULT_TRIAL_STATUSES
from workers.cli.client import ApiClient

__all__ = ["inert", "print_front", "print_status", "progress_of", "wait_with_progress"]


def inert(value: object) -> str:
    """Text from a user or a server made safe to print: control characters (terminal escape
    sequences, NUL, bidi overrides, lone surrogates) written out as ``\\x1b``-style escapes
    instead of acted on, and rich markup escaped (a name like ``x[/]y`` is shown, not
    parsed)."""
    text = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(value)
    )
    return escape(text)


def progress_of(sweep: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(trial-epochs done, trial-epochs in total) of a sweep; an early-stopped trial is done
    (it counts all its planned epochs, as ``/progress`` counts it)."""
    epochs = int(sweep["spec"]["training"]["epochs"])
    total = int(sweep["n_trials"]) * epochs
    done = 0
    for t in trials:
        finished = t["status"] in RESULT_TRIAL_STATUSES
        done += epochs if finished else min(epochs, int(t["epochs_done"] or 0))
    return done, total


def _counts(sweep: Mapping[str, Any]) -> str:
    counts = sweep.get("counts") or {}
    return inert(" ".join(f"{k} {v}" for k, v in counts.items() if v))


def wait_with_progress(client: ApiClient, sweep_id: int, console: Console) -> dict[str, Any]:
    """Poll the sweep with a progress bar (trial-epochs) until it finishes."""
    columns = (
        TextColumn("[bold]sweep {task.fields[sweep]}[/bold] {task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("trial-epochs"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("", total=None, sweep=sweep_id, status="", counts="")

        def update(sweep: dict[str, Any], trials: list[dict[str, Any]]) -> None:
            done, total = progress_of(sweep, trials)
            progress.update(
                task,
                completed=done,
                total=total,
                status=inert(sweep["status"]),
                counts=_counts(sweep),
            )

        return client.wait(sweep_id, poll_s=1.0, on_update=update)


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    try:
        return format(value, spec)
    except (TypeError, ValueError):  # not a number: shown as the text it is
        return inert(value)


def _varying(trials: Sequence[Mapping[str, Any]]) -> list[str]:
    """The β / seed columns worth showing: those that differ between trials."""
    columns = []
    if len({t["beta"] for t in trials}) > 1:
        columns.append("β")
    if len({t["seed"] for t in trials}) > 1:
        columns.append("seed")
    return columns


def _extra_cells(trial: Mapping[str, Any], columns: Sequence[str]) -> list[str]:
    cells = {"β": _fmt(trial["beta"], ".3g"), "seed": inert(trial["seed"])}
    return [cells[c] for c in columns]


def print_front(
    console: Console, front: Mapping[str, Any], sweep: Mapping[str, Any] | None = None
) -> None:
    """The Pareto front as a table, best accuracy first."""
    objectives = ", ".join(
        f"{o} ({d})" for o, d in zip(front["objectives"], front["directions"], strict=False)
    )
    title = f"Pareto front on {objectives}"
    if sweep is not None:
        title = f"sweep {inert(sweep['id'])} ({inert(sweep['status'])}): " + title
    table = Table(title=title)
    items = sorted(front["items"], key=lambda t: -(t["metrics"] or {}).get("accuracy", 0.0))
    extra = _varying(items)
    columns = ["trial", "λ", *extra, "error %", "sparsity %", "params", "FLOPs", "kept"]
    for column in columns:
        table.add_column(column, justify="right" if column != "kept" else "left")
    for t in items:
        m = t["metrics"] or {}
        table.add_row(
            inert(t["id"]),
            _fmt(t["lambda"], ".3g"),
            *_extra_cells(t, extra),
            _fmt(None if m.get("error") is None else 100 * m["error"], ".2f"),
            _fmt(None if m.get("sparsity") is None else 100 * m["sparsity"], ".1f"),
            _fmt(m.get("params"), ",.0f"),
            _fmt(m.get("flops"), ",.0f"),
            inert("-".join(str(a) for a in m.get("architecture") or [])),
        )
    console.print(table)
    console.print(f"hypervolume {front['hypervolume']:.4f} · {len(items)} trial(s) on the front")


def print_status(
    console: Console, sweep: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]
) -> None:
    """A sweep's state and its trials."""
    done, total = progress_of(sweep, trials)
    console.print(
        f"sweep {inert(sweep['id'])} [bold]{inert(sweep['name'])}[/bold]: "
        f"{inert(sweep['status'])} · "
        f"{_counts(sweep)} · {done}/{total} trial-epochs"
    )
    best = sweep.get("best")
    if best:  # a budget sweep's most accurate trial within its constraint
        m = best.get("metrics") or {}
        error = None if m.get("error") is None else 100 * m["error"]
        console.print(
            f"best within the budget: trial {inert(best['id'])} · "
            f"error {_fmt(error, '.2f')} % · FLOPs {_fmt(m.get('flops'), ',.0f')} · "
            f"params {_fmt(m.get('params'), ',.0f')}"
        )
    table = Table()
    extra = _varying(trials)
    columns = ["trial", "status", "λ", *extra, "epochs", "node", "error %", "sparsity %"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("status", "node") else "right")
    for t in trials:
        m = t.get("metrics") or {}
        table.add_row(
            inert(t["id"]),
            inert(t["status"]),
            _fmt(t["lambda"], ".3g"),
            *_extra_cells(t, extra),
            inert(t["epochs_done"]),
            inert(t.get("node") or "-"),
            _fmt(None if m.get("error") is None else 100 * m["error"], ".2f"),
            _fmt(None if m.get("sparsity") is None else 100 * m["sparsity"], ".1f"),
        )
    console.print(table)
