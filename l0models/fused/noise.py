"""``GateNoise``: the logistic noise of the hard-concrete gates of K fused members.

The stacked layers take their gates' noise as arguments instead of drawing it, so that the
fused trainer can give every member exactly the noise its single run draws. The noise is
counter-based (``l0models.noise``): member k's noise at step t is a function of its seed,
t, the layer and the unit only, computed for the whole (K, ...) block at once, so
per-member noise costs what one stream for the pack costs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from l0models.noise import CounterNoise, Shapes

__all__ = ["NOISE_MODES", "GateNoise"]

NOISE_MODES = ("member", "pack")


class GateNoise(CounterNoise):
    """Logistic gate noise for K members, one training step at a time.

    ``member`` mode: member k's stream is ``train_model``'s for its seed (the same numbers,
    so members reproduce their single runs). ``pack`` mode: one key for the pack (from all
    the members' seeds) and member k on stream k + 1: statistically the same, but a
    member's numbers depend on its pack mates and no single run reproduces them. Both cost
    the same; ``pack`` is kept for runs and checkpoints that asked for it.

    Args:
        mode: ``"member"`` or ``"pack"`` (``NOISE_MODES``).
        seeds: the members' trial seeds, in pack order.
        device: where the noise is needed.
        shapes: batch size → the per-member noise shape of each gated layer, in order.
        batch_size: the training batch size (the largest batch).
        step: steps drawn before (when resuming).
        chunk_floats: most floats of noise computed ahead (default by device type).
    """

    def __init__(
        self,
        mode: str,
        seeds: Sequence[int],
        device: torch.device | str,
        shapes: Shapes,
        *,
        batch_size: int,
        step: int = 0,
        chunk_floats: int | None = None,
    ) -> None:
        if mode not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {mode!r}")
        self.mode = mode
        if mode == "member":
            keys, streams = list(seeds), [0] * len(seeds)
        else:
            keys, streams = [_pack_seed(seeds)] * len(seeds), list(range(1, len(seeds) + 1))
        super().__init__(
            keys,
            device,
            shapes,
            batch_size=batch_size,
            streams=streams,
            step=step,
            chunk_floats=chunk_floats,
        )


def _pack_seed(seeds: Sequence[int]) -> int:
    # One key for the pack's noise, from all members' seeds.
    seed = 0x9E3779B1
    for s in seeds:
        seed = (seed * 1000003 + int(s)) % (1 << 63)
    return seed
