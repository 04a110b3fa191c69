"""Counter-based gate noise: every uniform the hard-concrete gates use is a pure function
u = f(seed, step, layer, unit) of the trial's seed, the training step, the gated layer and
the unit, computed for a whole (K members, S steps, units) block in one pass.

f is Philox-4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel Random Numbers: As Easy as
1, 2, 3", SC 2011): ten rounds of a multiply-xor bijection of a 128-bit counter under a
64-bit key. It passes TestU01's BigCrush (same paper), it is the generator of cuRAND's
``curandStatePhilox4_32_10``, of PyTorch's CUDA generator and of Triton's ``tl.rand``, and
its known-answer vectors (Random123's ``kat_vectors``) are checked in the tests.

Layout: key = the seed's low and high 32-bit words; counter = (unit // 4, step, layer,
stream); the unit's value is output word unit % 4. Stream 0 is a trial's own noise (the
fused trainer's ``"pack"`` mode shares one key and gives member k stream k + 1). Per-example
noise (``local_rep``) numbers the units of a (batch, groups) block row by row: unit =
example · groups + group. So a member's noise depends on its seed only, never on K, on the
chunking or on which device draws it, and the step counter is all a checkpoint needs.

Uniform: u = (⌊x / 2⁹⌋ + ½) · 2⁻²³ for the 32-bit word x: 2²³ equally likely values,
symmetric about ½, exact in float32 and in [2⁻²⁴, 1 − 2⁻²⁴] (never 0 or 1); the gates use
the logistic noise log u − log(1 − u) (|noise| ≤ 16.6).

Arithmetic: the 32-bit words sit in int64 tensors, and the 32 × 32-bit products split the
multiplier into 16-bit halves, so no intermediate reaches 2⁴⁹: no overflow, the same bits on
every device and backend. On the CPU the same words come from NumPy's uint64 arithmetic
(several times faster there than int64 torch ops); on a GPU the torch ops can be compiled
into one kernel (``compile_uniforms``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "PHILOX_ROUNDS",
    "CounterNoise",
    "counter_uniforms",
    "philox4x32",
    "philox4x32_numpy",
    "seed_key",
    "uniform_from_words",
]

PHILOX_ROUNDS = 10
_M32 = 0xFFFFFFFF
_MUL = (0xD2511F53, 0xCD9E8D57)  # Philox-4x32 round multipliers
_WEYL = (0x9E3779B9, 0xBB67AE85)  # key schedule increments
_UNIFORM_SHIFT = 9  # keep 23 of the 32 bits: (m + ½)·2⁻²³ is exact in float32
_UNIFORM_SCALE = 2.0**-23
# CPU blocks: counters per NumPy pass (eight arrays of 64 KiB stay in the L2 cache).
_CPU_PIECE = 8192
# Floats of pre-computed noise held at once, by device type.
_CHUNK_FLOATS = {"cpu": 1 << 22, "cuda": 1 << 25}

Shapes = Callable[[int], list[tuple[int, ...]]]


def seed_key(seed: int) -> tuple[int, int]:
    """The Philox key of a seed: its low and high 32-bit words (seed mod 2⁶⁴)."""
    seed = int(seed) % (1 << 64)
    return seed & _M32, seed >> 32


def _mulhilo(x: Tensor, m: int) -> tuple[Tensor, Tensor]:
    # (high, low) 32-bit words of x·m for int64 x in [0, 2³²): with m = a·2¹⁶ + b,
    # x·b and x·a are < 2⁴⁸ and x·m = x·a·2¹⁶ + x·b.
    p_lo = x * (m & 0xFFFF)
    p_hi = x * (m >> 16)
    lo = torch.add(p_lo, p_hi & 0xFFFF, alpha=1 << 16).bitwise_and_(_M32)
    hi = p_lo.bitwise_right_shift_(16).add_(p_hi).bitwise_right_shift_(16)
    return hi, lo


def philox4x32(
    c0: Tensor, c1: Tensor, c2: Tensor, c3: Tensor, k0: Tensor | int, k1: Tensor | int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Philox-4x32-10 of the counter (c0, c1, c2, c3) under the key (k0, k1).

    Every argument holds 32-bit words in int64 (values in [0, 2³²)); they broadcast.
    Returns the four output words, int64 in [0, 2³²).
    """
    for r in range(PHILOX_ROUNDS):
        if r:
            k0 = (k0 + _WEYL[0]) & _M32
            k1 = (k1 + _WEYL[1]) & _M32
        hi0, lo0 = _mulhilo(c0, _MUL[0])
        hi1, lo1 = _mulhilo(c2, _MUL[1])
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def philox4x32_numpy(
    c0: Any, c1: Any, c2: Any, c3: Any, k0: Any, k1: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``philox4x32`` in NumPy uint64 (the product of two 32-bit words fits): same words."""
    u = np.uint64
    m32 = u(_M32)
    c0, c1, c2, c3, k0, k1 = (np.asarray(v, dtype=u) for v in (c0, c1, c2, c3, k0, k1))
    for r in range(PHILOX_ROUNDS):
        if r:
            k0 = (k0 + u(_WEYL[0])) & m32
            k1 = (k1 + u(_WEYL[1])) & m32
        p0 = c0 * u(_MUL[0])
        p1 = c2 * u(_MUL[1])
        c0, c1, c2, c3 = (p1 >> u(32)) ^ c1 ^ k0, p1 & m32, (p0 >> u(32)) ^ c3 ^ k1, p0 & m32
    return c0, c1, c2, c3


def uniform_from_words(words: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """(⌊x / 2⁹⌋ + ½)·2⁻²³ of 32-bit words x: uniform on 2²³ points in (0, 1), exact."""
    return (words >> _UNIFORM_SHIFT).to(dtype).add_(0.5).mul_(_UNIFORM_SCALE)


def _uniforms_torch(
    units: Tensor, steps: Tensor, layer: Tensor, streams: Tensor, k0: Tensor, k1: Tensor
) -> Tensor:
    # units (N4,), steps (S,), layer (), streams/k0/k1 (K,) -> (K, S, 4·N4) float32
    c0 = units.view(1, 1, -1)
    c1 = steps.view(1, -1, 1)
    c3, key0, key1 = (t.view(-1, 1, 1) for t in (streams, k0, k1))
    words = torch.stack(philox4x32(c0, c1, layer, c3, key0, key1), dim=-1)
    k, s, n4 = words.shape[0], steps.shape[0], units.shape[0]
    return uniform_from_words(words.reshape(k, s, 4 * n4))


_compiled: dict[str, Any] = {}


def compile_uniforms(enable: bool = True) -> None:
    """Draw GPU noise through ``torch.compile`` (one fused kernel instead of ~250 launches
    per block), or stop doing so. Falls back to the eager ops if compiling fails."""
    if enable:
        _compiled.setdefault("fn", torch.compile(_uniforms_torch, dynamic=True))
    else:
        _compiled.pop("fn", None)


def _uniforms_numpy(
    n4: int, step0: int, n_steps: int, layer: int, streams: Sequence[int], keys: Sequence[int]
) -> Tensor:
    # The same words as _uniforms_torch, in (steps, units) blocks of about _CPU_PIECE
    # counters per member; the counter words broadcast, so the first rounds are cheap.
    u64 = np.uint64
    out = np.empty((len(keys), n_steps, n4, 4), dtype=np.float32)
    unit_piece = min(n4, _CPU_PIECE)
    step_piece = max(1, _CPU_PIECE // unit_piece)
    layer_word = u64(layer)
    for m, (stream, seed) in enumerate(zip(streams, keys, strict=True)):
        k0, k1 = seed_key(seed)
        for j in range(0, n4, unit_piece):
            units = np.arange(j, min(n4, j + unit_piece), dtype=u64)[None, :]
            for s in range(0, n_steps, step_piece):
                steps = np.arange(step0 + s, step0 + min(n_steps, s + step_piece), dtype=u64)
                words = philox4x32_numpy(units, steps[:, None], layer_word, stream, k0, k1)
                block = out[m, s : s + steps.shape[0], j : j + units.shape[1]]
                for lane, w in enumerate(words):
                    np.right_shift(w, u64(_UNIFORM_SHIFT), out=w)
                    block[..., lane] = w
    # (m + ½)·2⁻²³ over the whole block at once (exact in float32).
    t = torch.from_numpy(out).view(len(keys), n_steps, 4 * n4)
    return t.add_(0.5).mul_(_UNIFORM_SCALE)


def counter_uniforms(
    keys: Sequence[int],
    step0: int,
    n_steps: int,
    layer: int,
    n: int,
    *,
    streams: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The uniforms u(key_k, step0 + s, layer, j) for j < n: shape (K, n_steps, n).

    ``keys``: one seed per member; ``streams``: their stream words (default 0).
    """
    block = _uniform_block(keys, step0, n_steps, layer, n, streams, torch.device(device))
    return (block if block.dtype == dtype else block.to(dtype))[..., :n]


def _uniform_block(
    keys: Sequence[int],
    step0: int,
    n_steps: int,
    layer: int,
    n: int,
    streams: Sequence[int] | None,
    device: torch.device,
) -> Tensor:
    # (K, n_steps, 4·⌈n/4⌉) float32, contiguous.
    streams = [0] * len(keys) if streams is None else list(streams)
    if step0 < 0 or step0 + n_steps > 1 << 32:
        raise ValueError(f"gate-noise steps must lie in [0, 2^32), got {step0} + {n_steps}")
    n4 = max(1, math.ceil(n / 4))
    if device.type == "cpu":
        u = _uniforms_numpy(n4, step0, n_steps, layer, streams, keys)
    else:
        pairs = [seed_key(s) for s in keys]
        args = (
            torch.arange(n4, device=device),
            torch.arange(step0, step0 + n_steps, device=device),
            torch.tensor(layer, device=device),
            torch.tensor(streams, device=device, dtype=torch.int64),
            torch.tensor([p[0] for p in pairs], device=device, dtype=torch.int64),
            torch.tensor([p[1] for p in pairs], device=device, dtype=torch.int64),
        )
        fn = _compiled.get("fn")
        try:
            u = (fn or _uniforms_torch)(*args)
        except Exception:  # a compiler problem: the eager ops give the same words
            if fn is None:
                raise
            compile_uniforms(False)
            u = _uniforms_torch(*args)
    return u


class CounterNoise:
    """Logistic gate noise of K members, one training step at a time.

    Member k's noise for layer l at step t is logit u(keys[k], t, l, unit; streams[k]),
    whatever K, the chunking or the device, so a fused member draws its single run's numbers
    and a run resumed with ``step`` restored draws what it would have drawn. Whole steps are
    computed ahead in chunks of at most ``chunk_floats`` floats.

    Args:
        keys: the members' seeds.
        device: where the noise is needed.
        shapes: batch size → per member, the noise shape of each gated layer, in order.
        batch_size: the largest batch (chunks are sized for it; a larger one is drawn alone).
        streams: the members' stream words (default 0: each member's own noise).
        step: the first step's counter (steps drawn before, when resuming).
        chunk_floats: most floats computed ahead (default by device type).
        dtype: the noise dtype.
    """

    def __init__(
        self,
        keys: Sequence[int],
        device: torch.device | str,
        shapes: Shapes,
        *,
        batch_size: int,
        streams: Sequence[int] | None = None,
        step: int = 0,
        chunk_floats: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.keys = [int(k) for k in keys]
        self.streams = [0] * len(self.keys) if streams is None else [int(s) for s in streams]
        if len(self.streams) != len(self.keys) or not self.keys:
            raise ValueError("gate noise needs one stream word per member, and a member")
        self.k = len(self.keys)
        self.device = torch.device(device)
        self.shapes = shapes
        self.batch_size = int(batch_size)
        self.step = int(step)
        self.dtype = dtype
        self.chunk_floats = chunk_floats or _CHUNK_FLOATS.get(self.device.type, 1 << 24)
        self._chunk: list[Tensor] = []
        self._chunk_start = 0
        self._chunk_steps = 0

    def _draw(self, step0: int, n_steps: int, batch: int) -> list[Tensor]:
        # (K, n_steps, units) logistic noise per layer.
        out = []
        for layer, shape in enumerate(self.shapes(batch)):
            n = math.prod(shape)
            block = _uniform_block(self.keys, step0, n_steps, layer, n, self.streams, self.device)
            # logit over the contiguous block: its rounding must not depend on the layout.
            out.append(block.to(self.dtype).logit_()[..., :n])
        return out

    def next(self, batch: int) -> list[Tensor]:
        """This step's noise, (K, *shape) per gated layer; advances ``step``."""
        shapes = self.shapes(batch)
        if batch > self.batch_size:
            blocks, s = self._draw(self.step, 1, batch), 0
        else:
            s = self.step - self._chunk_start
            if not self._chunk or not 0 <= s < self._chunk_steps:
                per_step = self.k * sum(math.prod(x) for x in self.shapes(self.batch_size))
                n_steps = max(1, self.chunk_floats // max(1, per_step))
                self._chunk = self._draw(self.step, n_steps, self.batch_size)
                self._chunk_start, self._chunk_steps, s = self.step, n_steps, 0
            blocks = self._chunk
        self.step += 1
        return [
            b[:, s, : math.prod(shape)].view(self.k, *shape)
            for b, shape in zip(blocks, shapes, strict=True)
        ]
