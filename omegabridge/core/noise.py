"""Counter-based noise shared by every backend (the contract is docs/noise.md).

Philox4x32-10 is computed here with plain int64 tensor ops so that the torch
reference produces the very same 32-bit words as the C++, CUDA and Triton
kernels. A value is addressed by (seed, step, global row, column, stream), never
by a position in a sequential stream, so batch size and chunking cannot change a
sample.

Example:
    >>> import omegabridge.core.noise as noise
    >>> xi = noise.normals(seed=0, step=3, row_offset=0, rows=2, width=5)
    >>> xi.shape
    torch.Size([2, 5])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "NoiseAddress",
    "STREAM_STEP",
    "STREAM_FINAL_UNIFORM",
    "STREAM_SPHERE_DIRECTION",
    "STREAM_START",
    "STREAM_TRAIN",
    "vmf_streams",
    "philox4x32_10",
    "random_words",
    "uniforms",
    "normals",
    "bits_to_uniform",
]

# Streams separate independent uses of the same (step, row, column).
STREAM_STEP = 0  # Euler-Maruyama normals; the last step's normals for Real columns
STREAM_FINAL_UNIFORM = 1  # the last step's one uniform per column (inverse-CDF draws)
STREAM_SPHERE_DIRECTION = 2  # normals for the tangent direction of a von Mises-Fisher draw
_STREAM_VMF_FIRST = 3  # attempt i of the vMF rejection loop uses 3 + 3i, 4 + 3i, 5 + 3i
VMF_MAX_ATTEMPTS = 64
STREAM_START = 0x4000  # normals of a random start point Z_0 ~ N(0, gamma^2 I)
STREAM_TRAIN = 0x8000  # normals of the training marginal Z_t

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
_MASK32 = 0xFFFFFFFF
UNIFORM_SCALE = 2.0**-24  # a uniform is ((word >> 8) + 1) * 2^-24, exactly representable in float32


@dataclass(frozen=True)
class NoiseAddress:
    """Where an op's noise is read in the contract: the run's ``seed``, the ``step_index`` and the global
    row of the op's first row (``row_offset``). Kernels take these three numbers, nothing else.

    >>> NoiseAddress(seed=7, step_index=3).row_offset
    0
    """

    seed: int
    step_index: int = 0
    row_offset: int = 0


def vmf_streams(attempt: int) -> tuple[int, int, int]:
    """Streams of attempt ``attempt`` of Wood's vMF rejection loop: (normals A, normals B, uniform)."""
    base = _STREAM_VMF_FIRST + 3 * attempt
    return base, base + 1, base + 2


def _mulhilo(multiplier: int, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # 32 x 32 -> 64-bit product without overflowing int64: split value into 16-bit halves.
    low_half = value & 0xFFFF
    high_half = value >> 16
    product_low = multiplier * low_half  # < 2^48
    product_high = multiplier * high_half  # < 2^48
    middle = ((product_high & 0xFFFF) << 16) + product_low  # < 2^49
    lo = middle & _MASK32
    hi = (product_high >> 16) + (middle >> 32)
    return hi & _MASK32, lo


def philox4x32_10(counter: tuple[torch.Tensor, ...], key: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """Philox4x32-10 (Salmon et al., SC'11) on int64 tensors holding uint32 values.

    ``counter`` is four broadcastable int64 tensors with values in [0, 2^32), ``key``
    two ints in [0, 2^32). Returns the four output words as int64 tensors.
    """
    c0, c1, c2, c3 = (torch.as_tensor(c, dtype=torch.int64) for c in counter)
    c0, c1, c2, c3 = torch.broadcast_tensors(c0, c1, c2, c3)
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    for round_index in range(10):
        if round_index:
            k0 = (k0 + PHILOX_W0) & _MASK32
            k1 = (k1 + PHILOX_W1) & _MASK32
        hi0, lo0 = _mulhilo(PHILOX_M0, c0)
        hi1, lo1 = _mulhilo(PHILOX_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def _check_address(seed: int, step: int, stream: int) -> None:
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be in [0, 2^64), got {seed}")
    if not 0 <= int(step) < 2**32:
        raise ValueError(f"step must be in [0, 2^32), got {step}")
    if not 0 <= int(stream) < 2**16:
        raise ValueError(f"stream must be in [0, 2^16), got {stream}")


def random_words(
    seed: int,
    step: int,
    row_offset: int,
    rows: int,
    width: int,
    stream: int = STREAM_STEP,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The 32-bit word of every (row, column) as an int64 tensor of shape (rows, width).

    Column ``c`` of global row ``r`` takes word ``c % 4`` of Philox4x32-10 with
    counter (c // 4, r mod 2^32, (r >> 32) | stream << 16, step) and key
    (seed mod 2^32, seed >> 32).
    """
    _check_address(seed, step, stream)
    if row_offset < 0 or row_offset + rows > 2**48:
        raise ValueError(f"rows [{row_offset}, {row_offset + rows}) must lie in [0, 2^48)")
    groups = (width + 3) // 4
    row = torch.arange(row_offset, row_offset + rows, dtype=torch.int64, device=device).unsqueeze(1)
    group = torch.arange(groups, dtype=torch.int64, device=device).unsqueeze(0)
    counter = (group, row & _MASK32, (row >> 32) | (int(stream) << 16), torch.tensor(int(step), device=device))
    words = philox4x32_10(counter, (int(seed) & _MASK32, int(seed) >> 32))
    return torch.stack(words, dim=-1).reshape(rows, groups * 4)[:, :width]


def bits_to_uniform(words: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Map 32-bit words to uniforms in (0, 1]: ((word >> 8) + 1) * 2^-24, exact in float32."""
    return ((words >> 8) + 1).to(dtype) * UNIFORM_SCALE


def uniforms(
    seed: int,
    step: int,
    row_offset: int,
    rows: int,
    width: int,
    stream: int = STREAM_FINAL_UNIFORM,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Uniforms in (0, 1], one per (row, column), shape (rows, width)."""
    return bits_to_uniform(random_words(seed, step, row_offset, rows, width, stream, device), dtype)


def normals(
    seed: int,
    step: int,
    row_offset: int,
    rows: int,
    width: int,
    stream: int = STREAM_STEP,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Standard normals, shape (rows, width), by Box-Muller on column pairs (2j, 2j + 1).

    With u_a, u_b the uniforms of columns 2j and 2j + 1: r = sqrt(-2 log u_a),
    column 2j gets r cos(2 pi u_b) and column 2j + 1 gets r sin(2 pi u_b).
    """
    padded = width + (width & 1)
    u = uniforms(seed, step, row_offset, rows, padded, stream, dtype, device)
    radius = torch.sqrt(-2.0 * torch.log(u[:, 0::2]))
    angle = (2.0 * math.pi) * u[:, 1::2]
    pairs = torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=-1)
    return pairs.reshape(rows, padded)[:, :width]
