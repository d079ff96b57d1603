"""The fused posterior mean, Euler step, bridge-solver step and training target of a whole layout in one Triton launch.

One kernel, four modes (``MEAN``, ``STEP``, ``BRIDGE_STEP``, ``TARGET``). The grid is (work items) x (row
blocks), work item fastest, so the programs running together read the same rows and share
their cache lines. Each program handles one item (see kernels/plan.py) for ``ROWS_PER_PROGRAM``
rows, in tiles of ``TILE`` elements (a small categorical group: a row per lane, column by column):

* STEP:   out = z + db [(m(z, s) - z)/s + f] + sqrt(db) xi, xi from stream 0 (in place allowed);
* BRIDGE_STEP: x_hat = m(z, s) + s f into ``target``, and out = z + fraction (x_hat + w (x_hat - previous) - z)
  + spread xi, ``spread`` per column, xi from stream 0 (omegabridge/solvers.py; in place allowed);
* TARGET: z_t = c x + sigma_t eps (eps from stream 0x8000) and y = (x - m(z_t, s))/s, per-row c, sigma_t, s;
* MEAN:   m(z, s) with per-row s.

Rows may be strided (any row stride, columns contiguous); f and x may be float32, bfloat16 or
float16 and are widened on load; the state and every output are float32.
"""

from __future__ import annotations

import triton
import triton.language as tl

from omegabridge.core.noise import NoiseAddress

from . import philox, posterior, special
from .philox import STREAM_STEP, STREAM_TRAIN
from .special import NEGATIVE_HUGE
from .plan import (FIRST_ALIGNED_CLASS, FIRST_GROUP_CLASS, FIRST_SMALL_GROUP_CLASS, SMALL_GROUP_CLASSES,
                   SMALL_GROUP_GPU_ROWS, TILE_WIDTHS, WIDE_CLASS, WIDE_TILE, Plan, program_item)


MEAN = tl.constexpr(0)
STEP = tl.constexpr(1)
TARGET = tl.constexpr(2)
BRIDGE_STEP = tl.constexpr(3)


@triton.jit
def _element_pointers(pointer, stride, rows, row0, columns, WIDE_OFFSETS: tl.constexpr):
    """Pointers of a tile's elements: the trip's first row in 64-bit arithmetic once, the offsets
    from it in 32 bits (fewer instructions per element); 64 bits throughout where the launch says
    that ROWS_PER_PROGRAM x stride might not fit 31 bits."""
    if WIDE_OFFSETS:
        return pointer + rows.to(tl.int64) * stride + columns
    else:
        return (pointer + tl.cast(row0, tl.int64) * stride) + ((rows - row0) * stride + columns)


@triton.jit
def _row_inputs(s_ptr, c_ptr, noise_scale_ptr, remaining, rows, last_row, MODE: tl.constexpr):
    """(s, sigma, 1/s, c, sigma_t): the scalar s of the step, or the per-row columns (TILE rows x 1) of the
    other modes; c and sigma_t of z_t = c x + sigma_t eps (TARGET, else 0)."""
    c = 0.0
    noise_scale = 0.0
    if MODE == STEP or MODE == BRIDGE_STEP:
        s = remaining + tl.zeros(rows.shape, tl.float32)  # checked on the host
    else:
        # Rows past the end read the last row, unmasked (a masked load costs a move per row and
        # per column loaded); their outputs are masked off.
        present = tl.minimum(rows, last_row - 1)
        s = tl.load(s_ptr + present)
        # Per-row s is not checked on the host for GPU tensors (that would synchronise every
        # call): a row whose s is not a positive normal float (0 < s < inf and not subnormal, as
        # reciprocal_of_normal needs) gets NaN in every output that depends on s. One unsigned
        # compare on the bits: the two float compares took 8 instructions a row on sm_90.
        s = tl.where(s.to(tl.uint32, bitcast=True) - 0x00800000 < 0x7F000000, s, float("nan"))
        if MODE == TARGET:
            c = tl.load(c_ptr + present)
            noise_scale = tl.load(noise_scale_ptr + present)
    return s, special.square_root(s), special.reciprocal_of_normal(s), c, noise_scale


@triton.jit
def _tile_noise(seed_low, seed_high, step_index, row_low, row_high, first_column, MODE: tl.constexpr, BLOCK: tl.constexpr):
    """The mode's normals for a tile: eps of the training stream (TARGET), xi of the step's stream (STEP,
    BRIDGE_STEP); MEAN draws none (a zero)."""
    if MODE == TARGET:
        noise = philox.normals(seed_low, seed_high, step_index, row_low, row_high, STREAM_TRAIN, first_column, BLOCK)
    elif MODE == MEAN:
        noise = 0.0
    else:
        noise = philox.normals(seed_low, seed_high, step_index, row_low, row_high, STREAM_STEP, first_column, BLOCK)
    return noise


@triton.jit
def _state(input_ptr, input_stride, c, noise_scale, rows, row0, columns, mask, eps,
           MODE: tl.constexpr, WIDE_OFFSETS: tl.constexpr):
    """(v, x): the state the mean is taken at (z, or z_t = c x + sigma_t eps) and the data x (TARGET)."""
    values = tl.load(_element_pointers(input_ptr, input_stride, rows, row0, columns, WIDE_OFFSETS), mask=mask,
                     other=0.0).to(tl.float32)
    if MODE == TARGET:
        return c * values + noise_scale * eps, values
    return values, values


@triton.jit
def _finish(v, x, m, s, inverse_s, rows, row0, columns, mask, xi, out_ptr, out_stride, target_ptr, target_stride,
            drift_ptr, drift_stride, previous_ptr, previous_stride, spread_ptr, increment, weight,
            MODE: tl.constexpr, HAS_DRIFT: tl.constexpr, HAS_PREVIOUS: tl.constexpr, WIDE_OFFSETS: tl.constexpr):
    """Write the mode's outputs for one tile (``xi``: the step's normals, STEP and BRIDGE_STEP)."""
    if MODE == MEAN:
        tl.store(_element_pointers(out_ptr, out_stride, rows, row0, columns, WIDE_OFFSETS), m, mask=mask)
    elif MODE == STEP:
        velocity = (m - v) * inverse_s
        if HAS_DRIFT:
            velocity += tl.load(_element_pointers(drift_ptr, drift_stride, rows, row0, columns, WIDE_OFFSETS), mask=mask, other=0.0).to(tl.float32)
        tl.store(_element_pointers(out_ptr, out_stride, rows, row0, columns, WIDE_OFFSETS), v + increment * velocity + tl.sqrt_rn(increment) * xi, mask=mask)
    elif MODE == BRIDGE_STEP:  # increment carries the fraction delta / s
        prediction = m
        if HAS_DRIFT:
            prediction += s * tl.load(_element_pointers(drift_ptr, drift_stride, rows, row0, columns, WIDE_OFFSETS), mask=mask, other=0.0).to(tl.float32)
        moved = prediction
        if HAS_PREVIOUS:
            previous = tl.load(_element_pointers(previous_ptr, previous_stride, rows, row0, columns, WIDE_OFFSETS), mask=mask, other=0.0)
            moved = prediction + weight * (prediction - previous)
        spread = tl.load(spread_ptr + columns + 0 * rows, mask=mask, other=0.0)
        tl.store(_element_pointers(target_ptr, target_stride, rows, row0, columns, WIDE_OFFSETS), prediction, mask=mask)
        tl.store(_element_pointers(out_ptr, out_stride, rows, row0, columns, WIDE_OFFSETS), v + increment * (moved - v) + spread * xi, mask=mask)
    else:
        tl.store(_element_pointers(out_ptr, out_stride, rows, row0, columns, WIDE_OFFSETS), v, mask=mask)
        tl.store(_element_pointers(target_ptr, target_stride, rows, row0, columns, WIDE_OFFSETS), (x - m) * inverse_s, mask=mask)


@triton.jit
def _tile_item(kind, start, end, first_row, rows_total,
               input_ptr, input_stride, drift_ptr, drift_stride, out_ptr, out_stride, target_ptr, target_stride,
               previous_ptr, previous_stride, spread_ptr,
               s_ptr, c_ptr, noise_scale_ptr, parameters_ptr, parameters_stride, quadrature_ptr,
               remaining, increment, weight, seed_low, seed_high, step_index, offset_low, offset_high,
               MODE: tl.constexpr, HAS_DRIFT: tl.constexpr, HAS_PREVIOUS: tl.constexpr, KINDS: tl.constexpr,
               IS_GROUP: tl.constexpr, ALIGNED: tl.constexpr,
               BLOCK: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr, TILE: tl.constexpr, WIDE_OFFSETS: tl.constexpr):
    """One item whose columns fit one tile width: element-wise columns, or one group per row.

    ALIGNED: start and end are multiples of 4 (kernels/plan.py), written so that the compiler
    sees it and moves whole blocks of four columns with 16-byte loads and stores."""
    SUB_ROWS: tl.constexpr = 1 if TILE < BLOCK else (TILE // BLOCK if TILE // BLOCK < ROWS_PER_PROGRAM else ROWS_PER_PROGRAM)
    if BLOCK == 1:
        first_column = start  # a lone column (kernels/plan.py): the tile is that column
    else:
        first_column = (start // 4) * 4
    columns = first_column + tl.arange(0, BLOCK)[None, :]
    if ALIGNED:
        column_mask = columns < (end // 4) * 4
    else:
        column_mask = (columns >= start) & (columns < end)
    if not IS_GROUP:
        low = tl.load(parameters_ptr + columns, mask=column_mask, other=0.0)
        high = tl.load(parameters_ptr + parameters_stride + columns, mask=column_mask, other=1.0)
        step = tl.load(parameters_ptr + 2 * parameters_stride + columns, mask=column_mask, other=1.0)
        inverse_step = tl.load(parameters_ptr + 3 * parameters_stride + columns, mask=column_mask, other=1.0)
        last = tl.load(parameters_ptr + 4 * parameters_stride + columns, mask=column_mask, other=0.0)
    last_row = tl.minimum(first_row + ROWS_PER_PROGRAM, rows_total)
    for row0 in range(first_row, last_row, SUB_ROWS):
        rows = row0 + tl.arange(0, SUB_ROWS)[:, None]
        row_mask = rows < last_row
        mask = row_mask & column_mask
        row_low, row_high = philox.global_rows(rows, offset_low, offset_high)
        s, sigma, inverse_s, c, noise_scale = _row_inputs(s_ptr, c_ptr, noise_scale_ptr, remaining, rows, last_row, MODE)
        # TARGET's eps before the mean (the state needs it), the step's xi after it (fewer registers live).
        eps = _tile_noise(seed_low, seed_high, step_index, row_low, row_high, first_column, TARGET if MODE == TARGET else MEAN,
                          BLOCK)
        v, x = _state(input_ptr, input_stride, c, noise_scale, rows, row0, columns, mask, eps, MODE,
                      WIDE_OFFSETS)
        if IS_GROUP:
            m = posterior.group_mean(kind, v, s, inverse_s, mask, (end - start).to(tl.float32), KINDS)
        else:
            m = posterior.elementwise_mean(kind, v, low, high, step, inverse_step, last, s, sigma, inverse_s, mask,
                                           quadrature_ptr, KINDS)
        xi = _tile_noise(seed_low, seed_high, step_index, row_low, row_high, first_column, MEAN if MODE == TARGET else MODE,
                         BLOCK)
        _finish(v, x, m, s, inverse_s, rows, row0, columns, mask, xi, out_ptr, out_stride, target_ptr, target_stride,
                drift_ptr, drift_stride, previous_ptr, previous_stride, spread_ptr, increment, weight,
                MODE, HAS_DRIFT, HAS_PREVIOUS, WIDE_OFFSETS)


@triton.jit
def _wide_group_item(kind, start, end, first_row, rows_total,
                     input_ptr, input_stride, drift_ptr, drift_stride, out_ptr, out_stride, target_ptr, target_stride,
                     previous_ptr, previous_stride, spread_ptr, s_ptr, c_ptr, noise_scale_ptr,
                     remaining, increment, weight, seed_low, seed_high, step_index, offset_low, offset_high,
                     MODE: tl.constexpr, HAS_DRIFT: tl.constexpr, HAS_PREVIOUS: tl.constexpr, KINDS: tl.constexpr,
                     BLOCK: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr, TILE: tl.constexpr,
                     WIDE_OFFSETS: tl.constexpr):
    """A group wider than the widest tile: pass 1 reduces over chunks (online softmax, or the squared
    norm of a sphere), pass 2 recomputes each chunk's state and writes it."""
    SUB_ROWS: tl.constexpr = 1 if TILE < BLOCK else (TILE // BLOCK if TILE // BLOCK < ROWS_PER_PROGRAM else ROWS_PER_PROGRAM)
    first_column = start - start % 4
    last_row = tl.minimum(first_row + ROWS_PER_PROGRAM, rows_total)
    for row0 in range(first_row, last_row, SUB_ROWS):
        rows = row0 + tl.arange(0, SUB_ROWS)[:, None]
        row_mask = rows < last_row
        row_low, row_high = philox.global_rows(rows, offset_low, offset_high)
        s, sigma, inverse_s, c, noise_scale = _row_inputs(s_ptr, c_ptr, noise_scale_ptr, remaining, rows, last_row, MODE)
        top = tl.full((SUB_ROWS, 1), NEGATIVE_HUGE, tl.float32)
        total = tl.zeros((SUB_ROWS, 1), tl.float32)
        for chunk in range(first_column, end, BLOCK):
            columns = chunk + tl.arange(0, BLOCK)[None, :]
            mask = row_mask & (columns >= start) & (columns < end)
            eps = _tile_noise(seed_low, seed_high, step_index, row_low, row_high, chunk, TARGET if MODE == TARGET else MEAN, BLOCK)
            v, x = _state(input_ptr, input_stride, c, noise_scale, rows, row0, columns, mask, eps, MODE,
                          WIDE_OFFSETS)
            if kind == posterior.CATEGORICAL:
                new_top = tl.maximum(top, tl.max(tl.where(mask, v, NEGATIVE_HUGE), axis=1)[:, None])
                weights = tl.where(mask, special.exp2_flushing_subnormals((v - new_top) * (posterior.LOG2E * inverse_s)), 0.0)
                total = total * special.exp2_flushing_subnormals((top - new_top) * (posterior.LOG2E * inverse_s)) + tl.sum(weights, axis=1)[:, None]
                top = new_top
            else:
                total += tl.sum(tl.where(mask, v * v, 0.0), axis=1)[:, None]
        for chunk in range(first_column, end, BLOCK):
            columns = chunk + tl.arange(0, BLOCK)[None, :]
            mask = row_mask & (columns >= start) & (columns < end)
            eps = _tile_noise(seed_low, seed_high, step_index, row_low, row_high, chunk, TARGET if MODE == TARGET else MEAN, BLOCK)
            v, x = _state(input_ptr, input_stride, c, noise_scale, rows, row0, columns, mask, eps, MODE,
                          WIDE_OFFSETS)
            if kind == posterior.CATEGORICAL:
                m = special.exp2_flushing_subnormals((v - top) * (posterior.LOG2E * inverse_s)) * special.reciprocal_of_normal(total)
            else:
                m = posterior.sphere_mean(v, s, (end - start).to(tl.float32), total)
            xi = _tile_noise(seed_low, seed_high, step_index, row_low, row_high, chunk, MEAN if MODE == TARGET else MODE, BLOCK)
            _finish(v, x, m, s, inverse_s, rows, row0, columns, mask, xi, out_ptr, out_stride, target_ptr, target_stride,
                    drift_ptr, drift_stride, previous_ptr, previous_stride, spread_ptr, increment, weight,
                    MODE, HAS_DRIFT, HAS_PREVIOUS, WIDE_OFFSETS)


@triton.jit
def _small_group_state(input_ptr, input_stride, out_ptr, out_stride, c, noise_scale, eps, rows, row0, column, row_mask, top,
                       MODE: tl.constexpr, WIDE_OFFSETS: tl.constexpr):
    """Pass 1 of ``_small_group_item`` for one column: its state (TARGET: z_t, written to ``out``) and the running max."""
    v = tl.load(_element_pointers(input_ptr, input_stride, rows, row0, column, WIDE_OFFSETS), mask=row_mask,
                other=0.0).to(tl.float32)
    if MODE == TARGET:
        v = c * v + noise_scale * eps
        tl.store(_element_pointers(out_ptr, out_stride, rows, row0, column, WIDE_OFFSETS), v, mask=row_mask)
    return tl.maximum(top, v)


@triton.jit
def _small_group_output(v, top, scale, inverse_total, s, inverse_s, input_ptr, input_stride, rows, row0, column, row_mask,
                        xi, out_ptr, out_stride, target_ptr, target_stride, drift_ptr, drift_stride, previous_ptr,
                        previous_stride, spread_ptr, increment, weight, MODE: tl.constexpr, HAS_DRIFT: tl.constexpr,
                        HAS_PREVIOUS: tl.constexpr, WIDE_OFFSETS: tl.constexpr):
    """Pass 3 of ``_small_group_item`` for one column: its mean and the mode's outputs."""
    m = special.exp2_flushing_subnormals((v - top) * scale) * inverse_total
    if MODE == TARGET:
        x = tl.load(_element_pointers(input_ptr, input_stride, rows, row0, column, WIDE_OFFSETS), mask=row_mask,
                    other=0.0).to(tl.float32)
        tl.store(_element_pointers(target_ptr, target_stride, rows, row0, column, WIDE_OFFSETS), (x - m) * inverse_s,
                 mask=row_mask)
    else:
        _finish(v, v, m, s, inverse_s, rows, row0, column, row_mask, xi, out_ptr, out_stride, target_ptr, target_stride,
                drift_ptr, drift_stride, previous_ptr, previous_stride, spread_ptr, increment, weight, MODE, HAS_DRIFT,
                HAS_PREVIOUS, WIDE_OFFSETS)


@triton.jit
def _small_group_item(start, first_row, rows_total,
                      input_ptr, input_stride, drift_ptr, drift_stride, out_ptr, out_stride, target_ptr, target_stride,
                      previous_ptr, previous_stride, spread_ptr, s_ptr, c_ptr, noise_scale_ptr,
                      remaining, increment, weight, seed_low, seed_high, step_index, offset_low, offset_high,
                      MODE: tl.constexpr, HAS_DRIFT: tl.constexpr, HAS_PREVIOUS: tl.constexpr, WIDTH: tl.constexpr,
                      OFFSET: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr, TILE: tl.constexpr, WIDE_OFFSETS: tl.constexpr):
    """A categorical group of WIDTH columns from ``start`` (start % 4 == OFFSET), a row per lane (kernels/plan.py).

    Each column is a (rows x 1) vector, so the group's max and sum are taken across those vectors in
    registers and no lane works on a column outside the group. The loops run over the Philox blocks the
    group touches and the four words of each, so each block's normals are drawn once and each column's
    word is known when the kernel is compiled. Three passes (the max; the sum of the weights; the
    outputs) read each column again rather than hold it; TARGET writes z_t in the first pass and reads it
    back from ``out``."""
    # One row per thread on a GPU (GPU_SETTINGS: 4 warps), so the up to 12 normals a row holds stay in registers; the
    # interpreter's large tiles take a quarter of TILE rows (kernels/plan.py, small_group_rows).
    TRIP: tl.constexpr = SMALL_GROUP_GPU_ROWS if TILE <= 1024 else TILE // 4
    SUB_ROWS: tl.constexpr = TRIP if TRIP < ROWS_PER_PROGRAM else ROWS_PER_PROGRAM
    BLOCKS: tl.constexpr = (OFFSET + WIDTH + 3) // 4
    first_block = start // 4
    last_row = tl.minimum(first_row + ROWS_PER_PROGRAM, rows_total)
    if MODE == TARGET:
        states_ptr, states_stride = out_ptr, out_stride
    else:
        states_ptr, states_stride = input_ptr, input_stride
    for row0 in range(first_row, last_row, SUB_ROWS):
        rows = row0 + tl.arange(0, SUB_ROWS)[:, None]
        row_mask = rows < last_row
        row_low, row_high = philox.global_rows(rows, offset_low, offset_high)
        s, sigma, inverse_s, c, noise_scale = _row_inputs(s_ptr, c_ptr, noise_scale_ptr, remaining, rows, last_row, MODE)
        scale = posterior.LOG2E * inverse_s
        # Pass 1: each column's state and the group's max.
        top = tl.full((SUB_ROWS, 1), NEGATIVE_HUGE, tl.float32)
        for block in tl.static_range(BLOCKS):
            n0, n1, n2, n3 = 0.0, 0.0, 0.0, 0.0
            if MODE == TARGET:
                n0, n1, n2, n3 = philox.block_normals(seed_low, seed_high, step_index, row_low, row_high, STREAM_TRAIN,
                                                      first_block + block)
            for word in tl.static_range(4):
                if 4 * block + word >= OFFSET:
                    if 4 * block + word < OFFSET + WIDTH:
                        column = (first_block + block) * 4 + word
                        top = _small_group_state(input_ptr, input_stride, out_ptr, out_stride, c, noise_scale,
                                                 philox.word_of(word, n0, n1, n2, n3), rows, row0, column, row_mask, top,
                                                 MODE, WIDE_OFFSETS)
        # Pass 2: the sum of the weights (>= 1: the largest is 1).
        total = tl.zeros((SUB_ROWS, 1), tl.float32)
        for j in tl.static_range(WIDTH):
            v = tl.load(_element_pointers(states_ptr, states_stride, rows, row0, start + j, WIDE_OFFSETS), mask=row_mask,
                        other=0.0).to(tl.float32)
            total += special.exp2_flushing_subnormals((v - top) * scale)
        inverse_total = special.reciprocal_of_normal(total)
        # Pass 3: the mode's outputs.
        for block in tl.static_range(BLOCKS):
            n0, n1, n2, n3 = 0.0, 0.0, 0.0, 0.0
            if MODE == STEP or MODE == BRIDGE_STEP:
                n0, n1, n2, n3 = philox.block_normals(seed_low, seed_high, step_index, row_low, row_high, STREAM_STEP,
                                                      first_block + block)
            for word in tl.static_range(4):
                if 4 * block + word >= OFFSET:
                    if 4 * block + word < OFFSET + WIDTH:
                        column = (first_block + block) * 4 + word
                        v = tl.load(_element_pointers(states_ptr, states_stride, rows, row0, column, WIDE_OFFSETS),
                                    mask=row_mask, other=0.0).to(tl.float32)
                        _small_group_output(v, top, scale, inverse_total, s, inverse_s, input_ptr, input_stride, rows, row0,
                                            column, row_mask, philox.word_of(word, n0, n1, n2, n3), out_ptr, out_stride,
                                            target_ptr, target_stride, drift_ptr, drift_stride, previous_ptr, previous_stride,
                                            spread_ptr, increment, weight, MODE, HAS_DRIFT, HAS_PREVIOUS, WIDE_OFFSETS)


@triton.jit(do_not_specialize=["rows_total", "item_count", "seed_low", "seed_high", "step_index", "offset_low", "offset_high"])
def bridge_kernel(input_ptr, input_stride, drift_ptr, drift_stride, out_ptr, out_stride, target_ptr, target_stride,
                  previous_ptr, previous_stride, spread_ptr,
                  s_ptr, c_ptr, noise_scale_ptr, items_ptr, parameters_ptr, parameters_stride, quadrature_ptr,
                  rows_total, item_count, remaining, increment, weight, seed_low, seed_high, step_index, offset_low,
                  offset_high, MODE: tl.constexpr, HAS_DRIFT: tl.constexpr, HAS_PREVIOUS: tl.constexpr,
                  KINDS: tl.constexpr, CLASSES: tl.constexpr,
                  ROWS_PER_PROGRAM: tl.constexpr, TILE: tl.constexpr, WIDE_OFFSETS: tl.constexpr):
    """Mean, step or target of every factor of the layout; CLASSES and KINDS mask the branches compiled in;
    WIDE_OFFSETS: element offsets in 64 bits (row strides too large for 32-bit offsets within a program)."""
    kind, start, end, item_class, first_row = program_item(items_ptr, item_count, ROWS_PER_PROGRAM)
    # One branch per tile class of kernels/plan.py present in the layout, then the chunked wide groups.
    for index in tl.static_range(WIDE_CLASS):
        if (CLASSES >> index) & 1:
            if item_class == index:
                _tile_item(kind, start, end, first_row, rows_total, input_ptr, input_stride, drift_ptr, drift_stride,
                           out_ptr, out_stride, target_ptr, target_stride, previous_ptr, previous_stride, spread_ptr,
                           s_ptr, c_ptr, noise_scale_ptr, parameters_ptr,
                           parameters_stride, quadrature_ptr, remaining, increment, weight, seed_low, seed_high, step_index,
                           offset_low, offset_high, MODE, HAS_DRIFT, HAS_PREVIOUS, KINDS, index >= FIRST_GROUP_CLASS.value,
                           FIRST_ALIGNED_CLASS.value <= index < FIRST_GROUP_CLASS.value, TILE_WIDTHS[index],
                           ROWS_PER_PROGRAM, TILE, WIDE_OFFSETS)
    # One branch per small categorical group class present: its width and first column % 4 (kernels/plan.py).
    for index in tl.static_range(SMALL_GROUP_CLASSES):
        if (CLASSES >> (FIRST_SMALL_GROUP_CLASS.value + index)) & 1:
            if item_class == FIRST_SMALL_GROUP_CLASS + index:
                _small_group_item(start, first_row, rows_total, input_ptr, input_stride, drift_ptr, drift_stride,
                                  out_ptr, out_stride, target_ptr, target_stride, previous_ptr, previous_stride,
                                  spread_ptr, s_ptr, c_ptr, noise_scale_ptr, remaining, increment, weight, seed_low,
                                  seed_high, step_index, offset_low, offset_high, MODE, HAS_DRIFT, HAS_PREVIOUS,
                                  index // 4 + 1, index % 4, ROWS_PER_PROGRAM, TILE, WIDE_OFFSETS)
    if (CLASSES >> WIDE_CLASS.value) & 1:
        if item_class == WIDE_CLASS:
            _wide_group_item(kind, start, end, first_row, rows_total,
                             input_ptr, input_stride, drift_ptr, drift_stride, out_ptr, out_stride, target_ptr,
                             target_stride, previous_ptr, previous_stride, spread_ptr, s_ptr, c_ptr, noise_scale_ptr,
                             remaining, increment, weight, seed_low,
                             seed_high, step_index, offset_low, offset_high, MODE, HAS_DRIFT, HAS_PREVIOUS, KINDS,
                             WIDE_TILE, ROWS_PER_PROGRAM, TILE, WIDE_OFFSETS)


# Rows per program, elements per tile and warps on a GPU. TILE = 1024 with 4 warps keeps 8
# elements of each live tensor per thread, and no counted variant of the benchmark layouts
# spills (bench/results/instructions-sm90.md); TILE = 2048 spilled in the lattice target. A layout
# mixing kinds compiles every kind's branch into one kernel, which needs more registers: it
# runs with half the tile. Measured on an H200 before the instruction diet
# (bench/results/triton-gpu-h200.md, launch settings sweep): Adult-like step 67 G el/s at
# TILE 512 vs 47 at 1024; half-line 146 vs 168; lattice K=256 81 vs 82.
GPU_SETTINGS = {"ROWS_PER_PROGRAM": 256, "TILE": 1024, "num_warps": 4}
MIXED_LAYOUT_TILE = 512
# The interpreter runs each program as numpy calls: few, large programs are fastest.
INTERPRETER_SETTINGS = {"ROWS_PER_PROGRAM": 1024, "TILE": 4096}


# Element offsets within a program's rows are 32-bit while ROWS_PER_PROGRAM x the largest row
# stride stays below this (else WIDE_OFFSETS: 64-bit throughout).
THIRTY_TWO_BIT_OFFSETS_BELOW = 2**31


def _signed(word: int) -> int:
    """A 32-bit word as the int32 with the same bits, so every launch passes i32 arguments
    (Triton types an int argument by its value: one compiled variant, not one per range)."""
    return word - (1 << 32) if word >= 1 << 31 else word


def address_words(address: NoiseAddress) -> tuple[int, int, int, int, int]:
    """(seed low, seed high, step, row offset low, row offset high) as int32-typed kernel arguments."""
    seed, row_offset = address.seed, address.row_offset
    words = (seed & 0xFFFFFFFF, seed >> 32, address.step_index, row_offset & 0xFFFFFFFF, row_offset >> 32)
    return tuple(_signed(word) for word in words)


def launch_settings(device, plan: Plan | None = None) -> dict:
    """Launch settings for tensors on ``device`` (the interpreter's for CPU tensors), for ``plan``'s layout."""
    if device.type == "cpu":
        return dict(INTERPRETER_SETTINGS)
    settings = dict(GPU_SETTINGS)
    if plan is not None and bin(plan.kinds).count("1") > 1 and MIXED_LAYOUT_TILE:
        settings["TILE"] = min(settings["TILE"], MIXED_LAYOUT_TILE)
    return settings


def launch_grid(plan: Plan, rows: int, device) -> tuple[tuple[int], dict]:
    """(grid, settings) of a launch over ``rows`` rows: one program per (work item, block of rows)."""
    settings = launch_settings(device, plan)
    return (plan.items.shape[0] * triton.cdiv(rows, settings["ROWS_PER_PROGRAM"]),), settings


def launch(mode: int, plan: Plan, inputs, *, out, drift=None, target=None, remaining_rows=None, mean_scale_rows=None,
           noise_scale_rows=None, remaining: float = 1.0, increment: float = 1.0, address: NoiseAddress = NoiseAddress(0),
           previous=None, spread=None, weight: float = 0.0) -> None:
    """Launch ``bridge_kernel`` over every row of ``inputs`` (z, or x for the target).

    ``inputs``, ``drift``, ``out`` and ``target`` are 2-D with contiguous columns (any row stride);
    ``remaining_rows`` (MEAN, TARGET), ``mean_scale_rows`` and ``noise_scale_rows`` (TARGET) are
    contiguous float32 vectors of one value per row; ``remaining``, ``increment`` and ``address``
    are the STEP's scalars and the noise's address (STEP, TARGET). BRIDGE_STEP writes x_hat into
    ``target``, reads ``previous`` (optional, 2-D like ``out``) and ``spread`` (one float32 per column),
    and takes the fraction delta / s as ``increment`` and the multistep ``weight``. The caller has
    validated everything.
    """
    rows = inputs.shape[0]
    if rows == 0 or plan.width == 0:
        return
    grid, settings = launch_grid(plan, rows, inputs.device)
    drift_tensor = drift if drift is not None else inputs
    target_tensor = target if target is not None else out
    previous_tensor = previous if previous is not None else inputs
    unused = plan.quadrature  # a float32 tensor standing in for the per-row vectors a mode does not read
    strides = [tensor.stride(0) for tensor in (inputs, drift_tensor, out, target_tensor, previous_tensor)]
    wide_offsets = max(strides) * settings["ROWS_PER_PROGRAM"] >= THIRTY_TWO_BIT_OFFSETS_BELOW
    bridge_kernel[grid](
        inputs, inputs.stride(0), drift_tensor, drift_tensor.stride(0), out, out.stride(0),
        target_tensor, target_tensor.stride(0), previous_tensor, previous_tensor.stride(0),
        unused if spread is None else spread,
        unused if remaining_rows is None else remaining_rows,
        unused if mean_scale_rows is None else mean_scale_rows,
        unused if noise_scale_rows is None else noise_scale_rows,
        plan.items, plan.parameters, plan.parameters.stride(0), plan.quadrature,
        rows, plan.items.shape[0], float(remaining), float(increment), float(weight),
        *address_words(address),
        MODE=mode, HAS_DRIFT=drift is not None, HAS_PREVIOUS=previous is not None, KINDS=plan.kinds, CLASSES=plan.classes,
        WIDE_OFFSETS=wide_offsets, **settings,
    )
