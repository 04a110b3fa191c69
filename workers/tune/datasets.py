"""The dataset of a trial process: loaded from the on-disk cache where the trial runs.

Datasets never travel through Ray's object store: a sweep's job carries only the dataset's
name and cache directory, and each process loads it from the cache (``l0models`` converts
MNIST once per machine). The last dataset is kept per process, so a reused trial actor does
not reload it for every trial; one slot bounds the memory whatever the number of sweeps.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import l0models

if TYPE_CHECKING:
    from l0models import Dataset

__all__ = ["cached_dataset"]

_lock = threading.Lock()
_last: tuple[tuple[str, str | None], Dataset] | None = None


def cached_dataset(name: str, root: str | None = None) -> Dataset:
    """``l0models.load_dataset(name, root=root)`` on CPU, reused while the key is the same."""
    global _last
    key = (name, root)
    with _lock:
        if _last is not None and _last[0] == key:
            return _last[1]
        _last = None  # drop the previous dataset before loading the next one
        data = l0models.load_dataset(name, root=root)
        _last = (key, data)
        return data
