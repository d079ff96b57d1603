"""The exact last step of a whole layout in one Triton launch: a draw from N(z + s f, s I)
restricted to every factor (bridge-math.md section 3), with the uniforms and normals of the
noise contract (docs/noise.md) at step ``step_index``.

Same work items and tiles as kernels/bridge.py. Every output lies in the domain exactly:
canonical lattice points (rounded once from float64), exact one-hot vectors, values clamped
into [low, high], unit vectors on spheres (Wood's vMF sampler, at most 64 attempts, as the
reference and the CPU kernel).
"""

from __future__ import annotations

import triton
import triton.language as tl

from omegabridge.core.noise import NoiseAddress

from . import philox, posterior, special
from .bridge import address_words, launch_grid
from .philox import STREAM_FINAL_UNIFORM, STREAM_SPHERE_DIRECTION, STREAM_STEP, STREAM_VMF_FIRST
from .special import NEGATIVE_HUGE
from .plan import (FIRST_GROUP_CLASS, FIRST_SMALL_GROUP_CLASS, SMALL_GROUP_CLASSES, SMALL_GROUP_FINAL_TILE, TILE_WIDTHS,
                   WIDE_CLASS, WIDE_TILE, Plan, program_item)


VMF_MAX_ATTEMPTS = tl.constexpr(64)
ROUND_MAGIC_64 = tl.constexpr(6755399441055744.0)  # 1.5 * 2^52: rounds a float64 half to even
LATTICE_DRAW_CORRECTIONS = tl.constexpr(3)  # as reference.LATTICE_DRAW_CORRECTIONS


@triton.jit
def _endpoint_mean(z_ptr, z_stride, drift_ptr, drift_stride, rows64, columns, mask, s, HAS_DRIFT: tl.constexpr):
    """z + s f on a tile: the mean of the endpoint law N(z + s f, s I)."""
    mean = tl.load(z_ptr + rows64 * z_stride + columns, mask=mask, other=0.0)
    if HAS_DRIFT:
        mean += s * tl.load(drift_ptr + rows64 * drift_stride + columns, mask=mask, other=0.0).to(tl.float32)
    return mean


@triton.jit
def _scaled_gaussian_mass(t_a, t_b, w_a, w_b, t_c):
    """integral over [t_a, t_b] of exp(-(t^2 - t_c^2)/2) (w: the integrand at the ends): Mills' ratios
    in either tail, positive halves across 0 (only when y lies inside, where t_c is small)."""
    upper = w_a * special.mills_ratio(tl.maximum(t_a, 0.0)) - w_b * special.mills_ratio(tl.maximum(t_b, 0.0))
    lower = w_b * special.mills_ratio(tl.maximum(-t_b, 0.0)) - w_a * special.mills_ratio(tl.maximum(-t_a, 0.0))
    scale = posterior.SQRT_TWO_PI * tl.exp(tl.minimum(0.5 * t_c * t_c, 80.0))
    across = scale * special.normal_mass(tl.minimum(t_a, -1e-30), tl.maximum(t_b, 1e-30))
    return tl.where(t_a >= 0.0, upper, tl.where(t_b <= 0.0, lower, across))


@triton.jit
def _lattice_weight(t, t_c):
    """exp(-(t^2 - t_c^2)/2): a point's weight relative to the nearest point's."""
    return tl.exp(-0.5 * (t - t_c) * (t + t_c))


@triton.jit
def _lattice_partial_sum(k, y, sigma_points, inverse_sigma_points, t_c, t_0, w_0):
    """S(k) = w_0 + ... + w_k by Euler-Maclaurin (reference.lattice_euler_maclaurin_draw)."""
    t_k = (k - y) * inverse_sigma_points
    w_k = _lattice_weight(t_k, t_c)
    total = sigma_points * _scaled_gaussian_mass(t_0, t_k, w_0, w_k, t_c) + 0.5 * (w_0 + w_k)
    inverse_variance = inverse_sigma_points * inverse_sigma_points
    v_0 = tl.minimum(tl.maximum(t_0 * inverse_sigma_points, -1e3), 1e3)  # beyond, the end weighs 0
    v_k = tl.minimum(tl.maximum(t_k * inverse_sigma_points, -1e3), 1e3)
    previous_0 = tl.full(y.shape, 1.0, tl.float32)
    previous_k = tl.full(y.shape, 1.0, tl.float32)
    current_0 = v_0
    current_k = v_k
    for p in tl.static_range(1, 5):
        order = 2 * p - 1
        total += posterior.EULER_MACLAURIN[p - 1] * (current_0 * w_0 - current_k * w_k)
        next_0 = posterior._scaled_hermite_step(v_0, current_0, previous_0, order, inverse_variance)
        next_k = posterior._scaled_hermite_step(v_k, current_k, previous_k, order, inverse_variance)
        previous_0 = next_0
        current_0 = posterior._scaled_hermite_step(v_0, next_0, current_0, order + 1, inverse_variance)
        previous_k = next_k
        current_k = posterior._scaled_hermite_step(v_k, next_k, current_k, order + 1, inverse_variance)
    return total


@triton.jit
def _lattice_euler_maclaurin_index(mean, sigma, low, step, last, u):
    """Index (float) of the inverse-CDF draw where many points carry weight, at a bounded cost: the
    continuous quantile on [-1/2, last + 1/2], then one-point moves by the partial sums."""
    sigma_points = sigma / step
    inverse_sigma_points = 1.0 / sigma_points
    y = (mean - low) / step
    nearest = (tl.minimum(tl.maximum(y, -1.0), last + 1.0) + special.ROUND_MAGIC) - special.ROUND_MAGIC
    nearest = tl.minimum(tl.maximum(nearest, 0.0), last)
    t_c = (nearest - y) * inverse_sigma_points
    t_0 = -y * inverse_sigma_points
    w_0 = _lattice_weight(t_0, t_c)
    target = u * _lattice_partial_sum(last, y, sigma_points, inverse_sigma_points, t_c, t_0, w_0)
    # truncated_normal draws from the upper end down when the mean lies above the interval
    upper_end = last + 0.5
    guess = special.truncated_normal(y, sigma_points, tl.full(y.shape, -0.5, tl.float32), upper_end,
                                     tl.where(y >= upper_end, 1.0 - u, u))
    k = (tl.minimum(tl.maximum(guess, -1.0), last + 1.0) + special.ROUND_MAGIC) - special.ROUND_MAGIC
    k = tl.minimum(tl.maximum(k, 0.0), last)
    running = _lattice_partial_sum(k, y, sigma_points, inverse_sigma_points, t_c, t_0, w_0)
    for _ in tl.static_range(LATTICE_DRAW_CORRECTIONS):
        up = (running < target) & (k < last)
        k = tl.where(up, k + 1.0, k)
        w_k = _lattice_weight((k - y) * inverse_sigma_points, t_c)
        running = tl.where(up, running + w_k, running)
        down = (~up) & (k > 0.0) & (running - w_k >= target)
        running = tl.where(down, running - w_k, running)
        k = tl.where(down, k - 1.0, k)
    return k


@triton.jit
def _lattice_draw(mean, sigma, s, low64, step64, last, valid, u):
    """Inverse-CDF draw, canonical float32 point: Euler-Maclaurin partial sums where many points carry
    weight, else the window of at most LATTICE_WINDOW_LIMIT points on either side of the nearest."""
    position = (mean.to(tl.float64) - low64) / step64
    position = tl.minimum(tl.maximum(position, -1.0), last.to(tl.float64) + 1.0)
    position = tl.where(position == position, position, 0.0)  # NaN -> 0
    position = (position + ROUND_MAGIC_64) - ROUND_MAGIC_64
    nearest = tl.minimum(tl.maximum(position, 0.0), last.to(tl.float64))
    radius = tl.floor(sigma.to(tl.float64) * 9.0 / step64 + 1.0) + 1.0
    radius = tl.minimum(radius, posterior.LATTICE_WINDOW_LIMIT)
    first = tl.maximum(nearest - radius, 0.0)
    final = tl.minimum(nearest + radius, last.to(tl.float64))
    x_near = (low64 + nearest * step64).to(tl.float32)
    delta_near = x_near - mean
    inverse_two_s = 0.5 / s
    low = low64.to(tl.float32)
    step = step64.to(tl.float32)
    use_formula = valid & posterior.lattice_uses_euler_maclaurin((mean - low) / step, last, sigma / step)
    # the window only as wide as the elements that take it need (none, in a tile of wide spreads)
    count = tl.max(tl.where(valid & ~use_formula, final - first + 1.0, 0.0)).to(tl.int32)
    total = tl.zeros(mean.shape, tl.float32)
    k = first
    for _ in range(0, count):
        offset = (low64 + k * step64).to(tl.float32) - x_near
        total += tl.where(k <= final, tl.exp(posterior.lattice_logit(offset, delta_near, inverse_two_s)), 0.0)
        k += 1.0
    threshold = u * total
    running = tl.zeros(mean.shape, tl.float32)
    chosen = final
    found = mean != mean  # all False
    k = first
    for _ in range(0, count):
        offset = (low64 + k * step64).to(tl.float32) - x_near
        running += tl.where(k <= final, tl.exp(posterior.lattice_logit(offset, delta_near, inverse_two_s)), 0.0)
        hit = (running >= threshold) & (k <= final) & (~found)
        chosen = tl.where(hit, k, chosen)
        found = found | hit
        k += 1.0
    if tl.max(use_formula.to(tl.int32)) > 0:
        formula_index = _lattice_euler_maclaurin_index(mean, sigma + tl.zeros(mean.shape, tl.float32), low, step, last, u)
        chosen = tl.where(use_formula, formula_index.to(tl.float64), chosen)
    return (low64 + chosen * step64).to(tl.float32)


@triton.jit
def _elementwise_draw(kind, mean, sigma, s, low, high, last, low64, step64, valid, u, xi, KINDS: tl.constexpr):
    """The draw of an element-wise tile of one kind (uniforms u from stream 1, normals xi from stream 0)."""
    x = mean + sigma * xi  # Real
    CONTINUOUS: tl.constexpr = (KINDS >> posterior.INTERVAL.value) & 7  # interval and the two half-lines
    if CONTINUOUS:
        if (kind >= posterior.INTERVAL) & (kind <= posterior.HALFLINE_UPPER):
            # One inlined truncated normal for the three kinds (an infinite end for a half-line).
            lower = tl.where(kind == posterior.HALFLINE_UPPER, float("-inf"), low)
            upper = tl.where(kind == posterior.HALFLINE_LOWER, float("inf"), high)
            x = special.truncated_normal(mean, sigma, lower, upper, u)
    if (KINDS >> posterior.BINARY.value) & 1:
        if kind == posterior.BINARY:
            x = tl.where(u <= posterior.binary_mean(mean, s), 1.0, 0.0)
    if (KINDS >> posterior.LATTICE.value) & 1:
        if kind == posterior.LATTICE:
            x = _lattice_draw(mean, sigma, s, low64, step64, last, valid, u)
    return x


@triton.jit
def _von_mises_fisher(mean, s, columns, start, end, valid, row_valid, row_low, row_high, seed_low, seed_high,
                      step_index, first_column, BLOCK: tl.constexpr):
    """Wood's (1994) rejection sampler for vMF(mean/|mean|, |mean|/s), one group per row of the tile."""
    dimension = (end - start).to(tl.float32)
    mean = tl.where(valid, mean, 0.0)
    norm = tl.sqrt_rn(tl.sum(mean * mean, axis=1))[:, None]
    unit = tl.where(columns == start, 1.0, 0.0)
    direction = tl.where(norm > 0.0, mean / tl.where(norm > 0.0, norm, 1.0), unit)
    kappa = norm / s
    dm1 = dimension - 1.0
    b = dm1 / (2.0 * kappa + tl.sqrt_rn(4.0 * kappa * kappa + dm1 * dm1))
    one_minus_x0 = 2.0 * b / (1.0 + b)
    x0 = 1.0 - one_minus_x0
    log_term = special.log(one_minus_x0) + special.log1p(x0)
    chi_columns = valid & (columns < end - 1)
    one_minus_w = tl.full(norm.shape, 1.0, tl.float32)
    pending = row_valid
    attempt = tl.zeros((), tl.int32)
    while (attempt < VMF_MAX_ATTEMPTS) & (tl.sum(pending.to(tl.int32)) > 0):
        stream = STREAM_VMF_FIRST + 3 * attempt
        normals_a = philox.normals(seed_low, seed_high, step_index, row_low, row_high, stream, first_column, BLOCK)
        normals_b = philox.normals(seed_low, seed_high, step_index, row_low, row_high, stream + 1, first_column, BLOCK)
        uniforms = philox.uniforms(seed_low, seed_high, step_index, row_low, row_high, stream + 2, first_column, BLOCK)
        chi_a = tl.sum(tl.where(chi_columns, normals_a * normals_a, 0.0), axis=1)[:, None]
        chi_b = tl.sum(tl.where(chi_columns, normals_b * normals_b, 0.0), axis=1)[:, None]
        uniform = tl.sum(tl.where(columns == start, uniforms, 0.0), axis=1)[:, None]
        beta_draw = chi_a / (chi_a + chi_b)
        candidate = 2.0 * b * beta_draw / (1.0 - (1.0 - b) * beta_draw)  # 1 - W
        w = 1.0 - candidate
        log_ratio = special.log(candidate + w * one_minus_x0) - log_term
        accept = kappa * (one_minus_x0 - candidate) + dm1 * log_ratio >= special.log(uniform)
        one_minus_w = tl.where(accept & pending, candidate, one_minus_w)
        pending = pending & (~accept)
        attempt += 1
    w = 1.0 - one_minus_w
    xi = philox.normals(seed_low, seed_high, step_index, row_low, row_high, STREAM_SPHERE_DIRECTION, first_column, BLOCK)
    xi = tl.where(valid, xi, 0.0)
    along = tl.sum(xi * direction, axis=1)[:, None]
    tangent = xi - along * direction
    tangent_norm = tl.sqrt_rn(tl.sum(tangent * tangent, axis=1))[:, None]
    spread = tl.sqrt_rn(tl.maximum(one_minus_w * (1.0 + w), 0.0))
    sample = w * direction + spread * (tangent / tl.maximum(tangent_norm, special.TINY))
    sample = tl.where(valid, sample, 0.0)
    return sample / tl.sqrt_rn(tl.sum(sample * sample, axis=1))[:, None]


@triton.jit
def _categorical_draw(mean, s, columns, start, valid, u_group):
    """One-hot of the first class whose running probability reaches u * total."""
    top = tl.max(tl.where(valid, mean, float("-inf")), axis=1)[:, None]
    weights = tl.where(valid, tl.exp((mean - top) / s), 0.0)
    threshold = u_group * tl.sum(weights, axis=1)[:, None]
    below = (tl.cumsum(weights, axis=1) < threshold) & valid
    index = tl.sum(below.to(tl.int32), axis=1)[:, None]
    index = tl.minimum(index, tl.sum(valid.to(tl.int32), axis=1)[:, None] - 1)
    return tl.where(columns - start == index, 1.0, 0.0)


@triton.jit
def _tile_item(kind, start, end, first_row, rows_total, z_ptr, z_stride, drift_ptr, drift_stride, out_ptr, out_stride,
               parameters_ptr, parameters_stride, lattice_ptr, lattice_stride, remaining,
               seed_low, seed_high, step_index, offset_low, offset_high,
               HAS_DRIFT: tl.constexpr, KINDS: tl.constexpr, IS_GROUP: tl.constexpr, BLOCK: tl.constexpr,
               ROWS_PER_PROGRAM: tl.constexpr, TILE: tl.constexpr):
    SUB_ROWS: tl.constexpr = 1 if TILE < BLOCK else (TILE // BLOCK if TILE // BLOCK < ROWS_PER_PROGRAM else ROWS_PER_PROGRAM)
    first_column = start - start % 4
    columns = first_column + tl.arange(0, BLOCK)[None, :]
    column_mask = (columns >= start) & (columns < end)
    low = tl.load(parameters_ptr + columns, mask=column_mask, other=0.0)
    high = tl.load(parameters_ptr + parameters_stride + columns, mask=column_mask, other=1.0)
    last = tl.load(parameters_ptr + 4 * parameters_stride + columns, mask=column_mask, other=0.0)
    low64 = tl.load(lattice_ptr + columns, mask=column_mask, other=0.0)
    step64 = tl.load(lattice_ptr + lattice_stride + columns, mask=column_mask, other=1.0)
    s = remaining
    sigma = tl.sqrt_rn(remaining + tl.zeros((1, 1), tl.float32))
    last_row = tl.minimum(first_row + ROWS_PER_PROGRAM, rows_total)
    for row0 in range(first_row, last_row, SUB_ROWS):
        rows = row0 + tl.arange(0, SUB_ROWS)[:, None]
        rows64 = rows.to(tl.int64)
        row_mask = rows < last_row
        mask = row_mask & column_mask
        row_low, row_high = philox.global_rows(rows, offset_low, offset_high)
        mean = _endpoint_mean(z_ptr, z_stride, drift_ptr, drift_stride, rows64, columns, mask, s, HAS_DRIFT)
        u = philox.uniforms(seed_low, seed_high, step_index, row_low, row_high, STREAM_FINAL_UNIFORM, first_column, BLOCK)
        if IS_GROUP:
            x = mean
            if (KINDS >> posterior.CATEGORICAL.value) & 1:
                if kind == posterior.CATEGORICAL:
                    u_group = tl.sum(tl.where(columns == start, u, 0.0), axis=1)[:, None]
                    x = _categorical_draw(mean, s, columns, start, mask, u_group)
            if (KINDS >> posterior.SPHERE.value) & 1:
                if kind == posterior.SPHERE:
                    x = _von_mises_fisher(mean, s, columns, start, end, mask, row_mask, row_low, row_high, seed_low,
                                          seed_high, step_index, first_column, BLOCK)
        else:
            xi = philox.normals(seed_low, seed_high, step_index, row_low, row_high, STREAM_STEP, first_column, BLOCK)
            x = _elementwise_draw(kind, mean, sigma, s, low, high, last, low64, step64, mask, u, xi, KINDS)
        tl.store(out_ptr + rows64 * out_stride + columns, x, mask=mask)


@triton.jit
def _wide_categorical_item(start, end, first_row, rows_total, z_ptr, z_stride, drift_ptr, drift_stride, out_ptr,
                           out_stride, remaining, seed_low, seed_high, step_index, offset_low, offset_high,
                           HAS_DRIFT: tl.constexpr, BLOCK: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr,
                           TILE: tl.constexpr):
    """A categorical group wider than the widest tile: online softmax, then a chunked running sum, then the one-hot."""
    SUB_ROWS: tl.constexpr = 1 if TILE < BLOCK else (TILE // BLOCK if TILE // BLOCK < ROWS_PER_PROGRAM else ROWS_PER_PROGRAM)
    first_column = start - start % 4
    s = remaining
    last_row = tl.minimum(first_row + ROWS_PER_PROGRAM, rows_total)
    for row0 in range(first_row, last_row, SUB_ROWS):
        rows = row0 + tl.arange(0, SUB_ROWS)[:, None]
        rows64 = rows.to(tl.int64)
        row_mask = rows < last_row
        row_low, row_high = philox.global_rows(rows, offset_low, offset_high)
        u = philox.uniforms(seed_low, seed_high, step_index, row_low, row_high, STREAM_FINAL_UNIFORM, first_column, BLOCK)
        columns = first_column + tl.arange(0, BLOCK)[None, :]
        u_group = tl.sum(tl.where(columns == start, u, 0.0), axis=1)[:, None]
        top = tl.full((SUB_ROWS, 1), NEGATIVE_HUGE, tl.float32)
        total = tl.zeros((SUB_ROWS, 1), tl.float32)
        for chunk in range(first_column, end, BLOCK):
            columns = chunk + tl.arange(0, BLOCK)[None, :]
            mask = row_mask & (columns >= start) & (columns < end)
            mean = _endpoint_mean(z_ptr, z_stride, drift_ptr, drift_stride, rows64, columns, mask, s, HAS_DRIFT)
            new_top = tl.maximum(top, tl.max(tl.where(mask, mean, NEGATIVE_HUGE), axis=1)[:, None])
            total = total * tl.exp((top - new_top) / s) + tl.sum(tl.where(mask, tl.exp((mean - new_top) / s), 0.0), axis=1)[:, None]
            top = new_top
        threshold = u_group * total
        carried = tl.zeros((SUB_ROWS, 1), tl.float32)
        index = tl.zeros((SUB_ROWS, 1), tl.int32)
        for chunk in range(first_column, end, BLOCK):
            columns = chunk + tl.arange(0, BLOCK)[None, :]
            mask = row_mask & (columns >= start) & (columns < end)
            mean = _endpoint_mean(z_ptr, z_stride, drift_ptr, drift_stride, rows64, columns, mask, s, HAS_DRIFT)
            weights = tl.where(mask, tl.exp((mean - top) / s), 0.0)
            below = ((carried + tl.cumsum(weights, axis=1)) < threshold) & mask
            index += tl.sum(below.to(tl.int32), axis=1)[:, None]
            carried += tl.sum(weights, axis=1)[:, None]
        index = tl.minimum(index, end - start - 1)
        for chunk in range(first_column, end, BLOCK):
            columns = chunk + tl.arange(0, BLOCK)[None, :]
            mask = row_mask & (columns >= start) & (columns < end)
            tl.store(out_ptr + rows64 * out_stride + columns, tl.where(columns - start == index, 1.0, 0.0), mask=mask)


@triton.jit(do_not_specialize=["rows_total", "item_count", "seed_low", "seed_high", "step_index", "offset_low", "offset_high"])
def final_step_kernel(z_ptr, z_stride, drift_ptr, drift_stride, out_ptr, out_stride, items_ptr, parameters_ptr,
                      parameters_stride, lattice_ptr, lattice_stride, rows_total, item_count, remaining,
                      seed_low, seed_high, step_index, offset_low, offset_high,
                      HAS_DRIFT: tl.constexpr, KINDS: tl.constexpr, CLASSES: tl.constexpr,
                      ROWS_PER_PROGRAM: tl.constexpr, TILE: tl.constexpr):
    """The exact last step of every factor; CLASSES and KINDS mask the branches compiled in."""
    kind, start, end, item_class, first_row = program_item(items_ptr, item_count, ROWS_PER_PROGRAM)
    # One branch per tile class of kernels/plan.py present in the layout, then the chunked wide groups.
    for index in tl.static_range(WIDE_CLASS):
        if (CLASSES >> index) & 1:
            if item_class == index:
                _tile_item(kind, start, end, first_row, rows_total, z_ptr, z_stride, drift_ptr, drift_stride, out_ptr,
                           out_stride, parameters_ptr, parameters_stride, lattice_ptr, lattice_stride, remaining,
                           seed_low, seed_high, step_index, offset_low, offset_high, HAS_DRIFT, KINDS, index >= FIRST_GROUP_CLASS.value,
                           4 if TILE_WIDTHS[index] < 4 else TILE_WIDTHS[index], ROWS_PER_PROGRAM, TILE)  # a lone column: its block of 4
    if (CLASSES >> FIRST_SMALL_GROUP_CLASS.value) != 0:
        # The step's small categorical groups (one class per width and first column % 4): one tile for all here.
        if item_class >= FIRST_SMALL_GROUP_CLASS and item_class < FIRST_SMALL_GROUP_CLASS + SMALL_GROUP_CLASSES:
            _tile_item(kind, start, end, first_row, rows_total, z_ptr, z_stride, drift_ptr, drift_stride, out_ptr,
                       out_stride, parameters_ptr, parameters_stride, lattice_ptr, lattice_stride, remaining,
                       seed_low, seed_high, step_index, offset_low, offset_high, HAS_DRIFT, KINDS, True,
                       SMALL_GROUP_FINAL_TILE, ROWS_PER_PROGRAM, TILE)
    if (CLASSES >> WIDE_CLASS.value) & 1:
        if item_class == WIDE_CLASS:
            _wide_categorical_item(start, end, first_row, rows_total, z_ptr, z_stride, drift_ptr, drift_stride,
                                   out_ptr, out_stride, remaining, seed_low, seed_high, step_index, offset_low,
                                   offset_high, HAS_DRIFT, WIDE_TILE, ROWS_PER_PROGRAM, TILE)


def launch(plan: Plan, z, drift, out, remaining: float, address: NoiseAddress) -> None:
    """Launch ``final_step_kernel`` over every row of ``z`` (columns contiguous, any row stride)."""
    rows = z.shape[0]
    if rows == 0 or plan.width == 0:
        return
    grid, settings = launch_grid(plan, rows, z.device)
    drift_tensor = drift if drift is not None else z
    final_step_kernel[grid](
        z, z.stride(0), drift_tensor, drift_tensor.stride(0), out, out.stride(0), plan.items, plan.parameters,
        plan.parameters.stride(0), plan.lattice, plan.lattice.stride(0), rows, plan.items.shape[0], float(remaining),
        *address_words(address),
        HAS_DRIFT=drift is not None, KINDS=plan.kinds, CLASSES=plan.classes, **settings,
    )
