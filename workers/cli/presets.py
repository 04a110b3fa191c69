"""The paper's presets on the command line: ``l0sweep presets`` and ``submit --preset``.

Presets are defined once, in :mod:`service.presets` (the API serves the same ones); this
module lists them and turns one into a request body with ``--epochs`` and ``--set``
overrides. The API validates the result, so a bad override is its usual 422.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from service.presets import PRESETS, get_preset

__all__ = ["preset_body", "print_presets", "set_path"]


def print_presets(console: Console) -> None:
    """A table of the presets beside the paper's numbers."""
    table = Table(title="The paper's experiments (l0sweep submit --preset NAME)")
    for column in ("name", "title", "paper error %", "paper architecture", "source"):
        table.add_column(column)
    for p in PRESETS:
        table.add_row(p.name, p.title, f"{p.paper.error:g}", p.paper.architecture, p.paper.source)
    console.print(table)


def set_path(body: dict[str, Any], assignment: str) -> None:
    """Apply ``dotted.path=value`` to ``body``; the value is JSON when it parses (numbers,
    lists, true/false/null), else a string. Raises ValueError without an ``=``."""
    path, sep, raw = assignment.partition("=")
    if not sep or not path:
        raise ValueError(f"--set needs PATH=VALUE (e.g. training.lr=0.002), got {assignment!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    *parents, leaf = path.split(".")
    node = body
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value


def preset_body(name: str, *, epochs: int | None = None, sets: Sequence[str] = ()) -> dict:
    """The preset's spec (defaults filled in) with ``--epochs`` and ``--set`` applied.
    Raises NotFoundError for an unknown name, ValueError for a malformed ``--set``."""
    body = get_preset(name).as_dict()["spec"]
    if epochs is not None:
        body["training"]["epochs"] = epochs
    for assignment in sets:
        set_path(body, assignment)
    return body
