"""The noise contract (docs/noise.md) in Triton: Philox4x32-10 words, uniforms and normals of a tile.

A tile covers rows ``rows`` (global row = row_offset + local row, carried into the high word)
and columns ``first_column .. first_column + BLOCK`` with ``first_column`` a multiple of 4, so
each Philox call yields the four words of four neighbouring columns and is computed once, not
once per column. Box-Muller pairs columns (2j, 2j + 1) of one call; the four normals are then
interleaved back into column order.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .special import HARDWARE_MATH, noise_log, noise_sincos_two_pi, square_root

PHILOX_M0 = tl.constexpr(0xD2511F53)
PHILOX_M1 = tl.constexpr(0xCD9E8D57)
PHILOX_W0 = tl.constexpr(0x9E3779B9)
PHILOX_W1 = tl.constexpr(0xBB67AE85)
UNIFORM_SCALE = tl.constexpr(5.9604644775390625e-08)  # 2^-24
# Streams of docs/noise.md (omegabridge/core/noise.py).
STREAM_STEP = tl.constexpr(0)
STREAM_FINAL_UNIFORM = tl.constexpr(1)
STREAM_SPHERE_DIRECTION = tl.constexpr(2)
STREAM_VMF_FIRST = tl.constexpr(3)  # attempt i of the vMF loop: 3 + 3i, 4 + 3i, 5 + 3i
STREAM_TRAIN = tl.constexpr(0x8000)


# (high, low) words of the 64-bit product in one mul.wide.u32 (one IMAD.WIDE on the GPU, where
# mul.hi and mul.lo would be two instructions); the multipliers are immediates.
_MUL_WIDE_M0 = tl.constexpr("{ .reg .b64 product; mul.wide.u32 product, $2, 0xD2511F53; mov.b64 {$1, $0}, product; }")
_MUL_WIDE_M1 = tl.constexpr("{ .reg .b64 product; mul.wide.u32 product, $2, 0xCD9E8D57; mov.b64 {$1, $0}, product; }")


@triton.jit
def _multiply_wide(c, MULTIPLIER: tl.constexpr, INSTRUCTION: tl.constexpr):
    """(high, low) 32-bit words of MULTIPLIER * c."""
    if HARDWARE_MATH:
        return tl.inline_asm_elementwise(INSTRUCTION, "=r,=r,r", [c], dtype=(tl.uint32, tl.uint32), is_pure=True, pack=1)
    else:
        m = tl.full(c.shape, MULTIPLIER, tl.uint32)
        return tl.umulhi(m, c), m * c


@triton.jit
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Ten Philox rounds on uint32 tensors (counter c0..c3, key k0, k1); returns the four words."""
    for round_index in tl.static_range(10):
        if round_index > 0:
            k0 = k0 + PHILOX_W0
            k1 = k1 + PHILOX_W1
        hi0, lo0 = _multiply_wide(c0, PHILOX_M0, _MUL_WIDE_M0)
        hi1, lo1 = _multiply_wide(c2, PHILOX_M1, _MUL_WIDE_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


@triton.jit
def uniform(word):
    """((word >> 8) + 1) * 2^-24 in (0, 1], exact in float32."""
    return ((word >> 8) + 1).to(tl.float32) * UNIFORM_SCALE


@triton.jit
def global_rows(rows, offset_low, offset_high):
    """(low, high) uint32 words of row_offset + rows (rows: int32 local indices, offset split in words)."""
    base = tl.cast(offset_low, tl.uint32)
    low = base + rows.to(tl.uint32)
    carry = (low < base).to(tl.uint32)
    return low, tl.cast(offset_high, tl.uint32) + carry


@triton.jit
def words(seed_low, seed_high, step, row_low, row_high, stream, first_column, BLOCK: tl.constexpr):
    """The four Philox words of the calls covering columns first_column .. + BLOCK (shape rows x BLOCK/4 each)."""
    calls = (first_column // 4 + tl.arange(0, BLOCK // 4)).to(tl.uint32)[None, :]
    zero = row_low * 0 + calls * 0  # uint32 zeros of the tile's shape (rows x BLOCK/4), by broadcasting
    c0 = calls + zero
    c1 = row_low + zero
    c2 = (row_high | (tl.cast(stream, tl.uint32) << 16)) + zero
    c3 = zero + tl.cast(step, tl.uint32)
    k0 = zero + tl.cast(seed_low, tl.uint32)
    k1 = zero + tl.cast(seed_high, tl.uint32)
    return philox4x32_10(c0, c1, c2, c3, k0, k1)


@triton.jit
def interleave(a, b, c, d, BLOCK: tl.constexpr):
    """Columns 4j..4j+3 from a[j], b[j], c[j], d[j] (each rows x BLOCK/4) -> rows x BLOCK."""
    return tl.reshape(tl.join(tl.join(a, c), tl.join(b, d)), (a.shape[0], BLOCK))


@triton.jit
def uniforms(seed_low, seed_high, step, row_low, row_high, stream, first_column, BLOCK: tl.constexpr):
    """Uniforms of the tile, rows x BLOCK, in column order."""
    w0, w1, w2, w3 = words(seed_low, seed_high, step, row_low, row_high, stream, first_column, BLOCK)
    return interleave(uniform(w0), uniform(w1), uniform(w2), uniform(w3), BLOCK)


@triton.jit
def _column_normal(seed_low, seed_high, step, row_low, row_high, stream, column):
    """The normal of one column (rows x 1): the Box-Muller pair of its Philox block that holds it."""
    c0, c1, c2, c3 = words(seed_low, seed_high, step, row_low, row_high, stream, (column // 4) * 4, 4)
    word = column % 4
    radius = square_root(-2.0 * noise_log(uniform(tl.where(word >= 2, c2, c0))))
    sine, cosine = noise_sincos_two_pi(uniform(tl.where(word >= 2, c3, c1)))
    return radius * tl.where(word % 2 == 1, sine, cosine)


@triton.jit
def block_normals(seed_low, seed_high, step, row_low, row_high, stream, block):
    """The four normals of Philox call ``block`` (columns 4 block .. 4 block + 3), each of shape rows x 1: the
    same numbers ``normals`` gives those columns, for kernels that walk a row's columns one at a time."""
    w0, w1, w2, w3 = words(seed_low, seed_high, step, row_low, row_high, stream, block * 4, 4)
    return _box_muller(w0, w1, w2, w3)


@triton.jit
def _box_muller(w0, w1, w2, w3):
    """The four normals of one Philox call's words, in column order: r_a cos, r_a sin (pair w0, w1), r_b cos, r_b sin."""
    radius_a = square_root(-2.0 * noise_log(uniform(w0)))
    sin_a, cos_a = noise_sincos_two_pi(uniform(w1))
    radius_b = square_root(-2.0 * noise_log(uniform(w2)))
    sin_b, cos_b = noise_sincos_two_pi(uniform(w3))
    return radius_a * cos_a, radius_a * sin_a, radius_b * cos_b, radius_b * sin_b


@triton.jit
def word_of(WORD: tl.constexpr, first, second, third, fourth):
    """The one of four values that WORD (0..3, known when the kernel is compiled) names."""
    if WORD == 0:
        value = first
    elif WORD == 1:
        value = second
    elif WORD == 2:
        value = third
    else:
        value = fourth
    return value


@triton.jit
def normals(seed_low, seed_high, step, row_low, row_high, stream, first_column, BLOCK: tl.constexpr):
    """Box-Muller normals of the tile, rows x BLOCK: column 2j gets r cos(2 pi u_{2j+1}), 2j+1 gets r sin.

    ``first_column`` is a multiple of 4, or (BLOCK = 1) the one column of the tile."""
    if BLOCK == 1:
        result = _column_normal(seed_low, seed_high, step, row_low, row_high, stream, first_column)
    else:
        w0, w1, w2, w3 = words(seed_low, seed_high, step, row_low, row_high, stream, first_column, BLOCK)
        a, b, c, d = _box_muller(w0, w1, w2, w3)
        result = interleave(a, b, c, d, BLOCK)
    return result
