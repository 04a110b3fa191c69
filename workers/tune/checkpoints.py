"""Pack checkpoints on shared storage: plain data written, nothing executable read back.

Anyone who can write to the checkpoint storage (an NFS share, a bucket) must not be able
to run code in the trainables that read it. So an engine state is saved as a plain dict of
tensors, numbers and strings (``TrainState.as_dict`` / ``FusedState.as_dict``; finished
members of a sequential pack as model-file bytes plus measures) and loaded with
``torch.load(..., weights_only=True)``, which refuses any other pickle.

A checkpoint that cannot be loaded (refused, truncated, missing its state) is skipped with a
logged reason for the previous one of that trial; when none loads, the pack restarts from
epoch 0. Either way the trial goes on: a bad file costs epochs, never the runner.

A finished sweep's checkpoints are deleted (:func:`discard_checkpoints`): its trials' models
and histories are in the database, and nothing resumes a finished sweep, so a service left
running for months does not fill its storage with them. Tune's small files (logs, params,
experiment state) stay.

Old checkpoints are deleted by the runner, not by Ray Tune (:func:`prune_checkpoints`), and
only once a newer one is in the resume index: the checkpoint the database points at, and
the one before it, are always on storage, however far the files run ahead of the index (a
runner cut off from the database, or stopped with results still queued, trains on while
nothing it does reaches the index).
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow.fs
import torch
from ray import tune

from l0models import TrainState
from l0models.fused import FusedState
from workers.tune.protocol import FinishedMember, Member, MemberEpoch, SequentialState

__all__ = [
    "KEEP_CHECKPOINTS",
    "META_FILE",
    "STATE_FILE",
    "ResumePoint",
    "discard_checkpoints",
    "load_resume_point",
    "prune_checkpoints",
    "state_from_dict",
    "state_to_dict",
    "write_checkpoint_files",
]

log = logging.getLogger(__name__)

STATE_FILE = "pack_state.pt"
META_FILE = "pack_meta.json"
#: Indexed checkpoints kept per trial: the latest and one to fall back to.
KEEP_CHECKPOINTS = 2

_FORMAT = "l0sweep-pack-state/1"
_CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")


# ---------------------------------------------------------------------- engine state <-> dict


def _bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _tensor_bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
        raise ValueError(f"a finished member's {what} must be a uint8 tensor")
    return bytes(value.numpy().tobytes())


def _finished_to_dict(member: FinishedMember) -> dict[str, Any]:
    return {
        "model": _bytes_tensor(member.model_bytes),
        "measures": dict(member.measures),
        "files": {fmt: _bytes_tensor(data) for fmt, data in member.files.items()},
        "errors": {fmt: str(reason) for fmt, reason in member.errors.items()},
    }


def _finished_from_dict(d: Mapping[str, Any]) -> FinishedMember:
    files = d.get("files") or {}  # absent in checkpoints of older code: TorchScript only
    errors = d.get("errors") or {}
    return FinishedMember(
        model_bytes=_tensor_bytes(d["model"], "model"),
        measures=dict(d["measures"]),
        files={str(fmt): _tensor_bytes(data, f"{fmt} file") for fmt, data in files.items()},
        errors={str(fmt): str(reason) for fmt, reason in errors.items()},
    )


def state_to_dict(state: Any) -> dict[str, Any]:
    """An engine state as a plain dict that ``torch.load(weights_only=True)`` reads back."""
    if isinstance(state, TrainState):
        return {"format": _FORMAT, "kind": "train", "state": state.as_dict()}
    if isinstance(state, FusedState):
        return {"format": _FORMAT, "kind": "fused", "state": state.as_dict()}
    if isinstance(state, SequentialState):
        inner = None if state.inner is None else state_to_dict(state.inner)
        return {
            "format": _FORMAT,
            "kind": "sequential",
            "done": [_finished_to_dict(m) for m in state.done],
            "inner": inner,
        }
    raise TypeError(f"no checkpoint format for an engine state of type {type(state).__name__}")


def state_from_dict(d: Any) -> Any:
    """The engine state of :func:`state_to_dict`; ValueError for anything else."""
    if not isinstance(d, Mapping) or d.get("format") != _FORMAT:
        raise ValueError("not an l0sweep pack state")
    kind = d.get("kind")
    if kind == "train":
        return TrainState.from_dict(dict(d["state"]))
    if kind == "fused":
        return FusedState.from_dict(dict(d["state"]))
    if kind == "sequential":
        inner = None if d.get("inner") is None else state_from_dict(d["inner"])
        return SequentialState(done=[_finished_from_dict(m) for m in d["done"]], inner=inner)
    raise ValueError(f"unknown pack state kind {kind!r}")


def write_checkpoint_files(
    directory: str,
    members: Sequence[Member],
    records: Sequence[MemberEpoch],
    state: Any | None = None,
) -> None:
    """The files of one checkpoint: the state (when given) and the JSON metadata."""
    if state is not None:
        torch.save(state_to_dict(state), Path(directory, STATE_FILE))
    meta = {"members": [asdict(m) for m in members], "records": [asdict(r) for r in records]}
    Path(directory, META_FILE).write_text(json.dumps(meta), encoding="utf-8")


# ---------------------------------------------------------------------- loading, with fallback


class ResumePoint:
    """What a (re)started pack continues from.

    Attributes:
        state: The engine state, or None to start from scratch.
        epoch: The last epoch the state holds (0 when starting from scratch).
        refused: Why checkpoints were skipped, one line each (empty when none was).
    """

    def __init__(self, state: Any | None, epoch: int, refused: list[str]) -> None:
        self.state = state
        self.epoch = epoch
        self.refused = refused


def _read(checkpoint: tune.Checkpoint) -> tuple[Any, int]:
    with checkpoint.as_directory() as directory:
        path = Path(directory, STATE_FILE)
        if not path.exists():
            raise ValueError(f"no {STATE_FILE}")
        meta = json.loads(Path(directory, META_FILE).read_text(encoding="utf-8"))
        epoch = max((int(r["epoch"]) for r in meta["records"]), default=0)
        # weights_only: tensors, numbers, strings and containers; any other pickle is refused.
        state = state_from_dict(torch.load(path, map_location="cpu", weights_only=True))
        return state, epoch


def _older_checkpoints(checkpoint: tune.Checkpoint) -> list[tune.Checkpoint]:
    """The trial's other ``checkpoint_NNNNNN`` folders older than ``checkpoint``, newest
    first."""
    path = checkpoint.path.rstrip("/")
    match = _CHECKPOINT_DIR.match(posixpath.basename(path))
    if match is None:
        return []
    current = int(match.group(1))
    fs = checkpoint.filesystem
    if fs is None:
        return []
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(posixpath.dirname(path)))
    except OSError:
        return []
    older = []
    for info in infos:
        found = _CHECKPOINT_DIR.match(info.base_name)
        if info.type == pyarrow.fs.FileType.Directory and found and int(found[1]) < current:
            older.append((int(found[1]), info.path))
    return [tune.Checkpoint(p, filesystem=fs) for _, p in sorted(older, reverse=True)]


def prune_checkpoints(checkpoint: tune.Checkpoint) -> list[str]:
    """Delete the trial's checkpoints older than ``checkpoint`` but the newest
    ``KEEP_CHECKPOINTS - 1``; newer ones stay. Call once ``checkpoint`` is in the resume
    index. Returns the deleted folders; a failed deletion is logged and left for later."""
    deleted = []
    for old in _older_checkpoints(checkpoint)[KEEP_CHECKPOINTS - 1 :]:
        try:
            assert checkpoint.filesystem is not None  # _older_checkpoints found some
            checkpoint.filesystem.delete_dir(old.path)
        except OSError as exc:
            log.warning("could not delete old checkpoint %s: %s", old.path, _one_line(exc))
            continue
        deleted.append(old.path)
    return deleted


def discard_checkpoints(root: str) -> tuple[int, int]:
    """Delete every ``checkpoint_NNNNNN`` folder under ``root`` (a local path or a URI such
    as ``s3://bucket/prefix``). Returns (folders, bytes) deleted; a folder that cannot be
    deleted is logged and skipped."""
    if "://" in root:
        fs, base = pyarrow.fs.FileSystem.from_uri(root)
    else:
        fs, base = pyarrow.fs.LocalFileSystem(), root
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(base, recursive=True))
    except OSError:  # FileNotFoundError included: nothing was stored
        return 0, 0
    sizes: dict[str, int] = {}  # checkpoint folder -> bytes of the files in it
    for info in infos:
        if info.type == pyarrow.fs.FileType.Directory and _CHECKPOINT_DIR.match(info.base_name):
            sizes.setdefault(info.path, 0)
        elif info.type == pyarrow.fs.FileType.File:
            folder = _checkpoint_folder(info.path)
            if folder is not None:
                sizes[folder] = sizes.get(folder, 0) + int(info.size or 0)
    deleted = freed = 0
    for folder in sorted(sizes):
        try:
            fs.delete_dir(folder)
        except OSError as exc:
            log.warning("could not delete checkpoint %s: %s", folder, _one_line(exc))
            continue
        deleted, freed = deleted + 1, freed + sizes[folder]
    return deleted, freed


def _checkpoint_folder(path: str) -> str | None:
    """The ``checkpoint_NNNNNN`` folder a file path lies in (None: in none)."""
    parts = path.split("/")
    for i, part in enumerate(parts[:-1]):
        if _CHECKPOINT_DIR.match(part):
            return "/".join(parts[: i + 1])
    return None


def load_resume_point(checkpoint: tune.Checkpoint | None) -> ResumePoint:
    """The newest loadable state among ``checkpoint`` and its trial's older checkpoints."""
    if checkpoint is None:
        return ResumePoint(None, 0, [])
    refused: list[str] = []
    for candidate in [checkpoint, *_older_checkpoints(checkpoint)]:
        try:
            state, epoch = _read(candidate)
        except Exception as exc:  # refused pickle, truncated zip, bad JSON, missing file
            reason = f"{posixpath.basename(candidate.path.rstrip('/'))}: {_one_line(exc)}"
            log.warning("checkpoint refused, trying an older one: %s", reason)
            refused.append(reason)
            continue
        return ResumePoint(state, epoch, refused)
    log.warning("no usable checkpoint of this trial: it restarts from epoch 0")
    return ResumePoint(None, 0, refused)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]
