// The fused CPU kernels for the step, the training target and the posterior mean, and their
// launcher. Work is cut into tiles of rows; per tile:
//   1. the normals of the whole tile, vectorised over Philox blocks (4 columns each), into a
//      per-thread buffer of tile_rows x 4 ceil(width / 4) floats that stays in L1;
//   2. per row, the posterior mean of every run of the layout into a row buffer, each run a
//      loop over its columns with contiguous per-column parameters (vectorised by the
//      compiler: the math of omegabridge/posterior.h is branch-free where it matters);
//   3. per row, the op's output in one more vectorised pass over the row.
// The tile function is compiled for AVX-512, AVX2+FMA and baseline x86-64 (target_clones);
// the loader picks the best the CPU supports, so no illegal instruction on older CPUs.
#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "omegabridge/philox.h"
#include "omegabridge/posterior.h"
#include "tile.h"

namespace omegabridge {
namespace cpu {

namespace {

namespace pm = omegabridge::posterior;

constexpr std::int64_t kTileFloats = 4096;  // noise buffer per thread: 16 KiB

enum class Op { kMean, kStep, kBridgeStep, kTarget };

// Everything a tile needs, fixed for one call.
struct Call {
  const Layout* layout = nullptr;
  std::int64_t rows = 0;
  std::int64_t tile_rows = 0;
  std::int64_t blocks_per_row = 0;
  std::int64_t padded_width = 0;  // 4 * blocks_per_row: row stride of the noise buffer
  std::vector<std::uint32_t> block_row, block_column;  // of the tile's blocks, row-major
  NoiseAddress address{};
  std::uint32_t stream = 0;
  // Inputs and outputs (row-major contiguous, `width` columns).
  const float* z = nullptr;  // state (mean, step)
  const void* input = nullptr;  // drift f (step) or data x (target)
  float* out = nullptr;  // mean, new state, or z_t
  float* target = nullptr;  // target only; the data prediction x_hat (bridge step)
  const float* previous = nullptr;  // bridge step: the last step's x_hat (null: no multistep term)
  const float* spread = nullptr;  // bridge step: the noise's standard deviation per column
  const float* remaining_rows = nullptr;  // per-row s (mean, target)
  const float* mean_scale = nullptr;
  const float* noise_scale = nullptr;
  // Step scalars.
  float remaining = 0, inverse_remaining = 0, sigma = 0, increment = 0, sqrt_increment = 0;
  float fraction = 0, weight = 0;  // bridge step: delta / s and the multistep weight
};

// Blocks are processed in batches of this many, every batch by the same vectorised code: a
// scalar remainder loop (or a peeled prologue) would compute some blocks with other
// instructions (another FMA contraction), and which blocks fall there depends on how the rows
// are split into tiles and calls, so a sample would depend on the batch size at the last ulp.
constexpr std::int64_t kBlockBatch = 16;

OB_INLINE std::int64_t padded_blocks(std::int64_t count) {
  return (count + kBlockBatch - 1) / kBlockBatch * kBlockBatch;
}

// Per-thread buffers; grown once, never inside the tile loop.
struct Scratch {
  std::vector<float> noise, value, mean, first, second, third, fourth;
  std::vector<float> fifth, sixth, seventh, eighth, value_aux, formula, careful;
  std::vector<std::uint32_t> words;  // the tile's Philox words, four planar arrays
  void reserve(const Call& call) {
    const std::size_t width = static_cast<std::size_t>(call.layout->width);
    const std::int64_t blocks = padded_blocks(call.tile_rows * call.blocks_per_row);
    noise.resize(static_cast<std::size_t>(4 * blocks));
    words.resize(static_cast<std::size_t>(4 * blocks));
    for (auto* row : {&value, &mean, &first, &second, &third, &fourth, &fifth, &sixth, &seventh, &eighth, &value_aux, &formula, &careful}) {
      row->resize(width);
    }
  }
};

// Calls body(c) for every column c in [begin, end): batches of 16 and then 8 columns with a
// trip count known at compile time, so the compiler vectorises them without runtime alias or
// profitability checks (which otherwise send short rows to the scalar loop), then the rest.
template <typename Body>
OB_INLINE void for_columns(std::int64_t begin, std::int64_t end, Body body) {
  std::int64_t c = begin;
  for (; c + 16 <= end; c += 16) {
    OB_SIMD
    for (std::int64_t i = 0; i < 16; ++i) body(c + i);
  }
  if (c + 8 <= end) {
    OB_SIMD
    for (std::int64_t i = 0; i < 8; ++i) body(c + i);
    c += 8;
  }
  for (; c < end; ++c) body(c);
}

// Box-Muller on the four words of each block (planar arrays of `padded` entries), four floats
// per block; the padding blocks produce finite values that nobody reads.
OB_INLINE void normals_from_words(float* __restrict noise, const std::uint32_t* __restrict w0,
                                  const std::uint32_t* __restrict w1, const std::uint32_t* __restrict w2,
                                  const std::uint32_t* __restrict w3, std::int64_t padded) {
  for (std::int64_t start = 0; start < padded; start += kBlockBatch) {
    OB_SIMD
    for (std::int64_t i = 0; i < kBlockBatch; ++i) {
      const std::int64_t b = start + i;
      float n0, n1, n2, n3;
      philox::box_muller(philox::uniform_from_word(w0[b]), philox::uniform_from_word(w1[b]), &n0, &n1);
      philox::box_muller(philox::uniform_from_word(w2[b]), philox::uniform_from_word(w3[b]), &n2, &n3);
      noise[4 * b] = n0;
      noise[4 * b + 1] = n1;
      noise[4 * b + 2] = n2;
      noise[4 * b + 3] = n3;
    }
  }
}

// Step 1: normals of `count` Philox blocks, four floats per block (words from philox_tile_words).
OB_INLINE void fill_normals(float* __restrict noise, std::uint32_t* __restrict words,
                            const std::uint32_t* __restrict block_row,
                            const std::uint32_t* __restrict block_column, std::int64_t count,
                            std::uint64_t first_row, const philox::Key key, std::uint32_t step,
                            std::uint32_t stream) {
  const std::int64_t padded = padded_blocks(count);
  std::uint32_t* __restrict w0 = words;
  std::uint32_t* __restrict w1 = words + padded;
  std::uint32_t* __restrict w2 = words + 2 * padded;
  std::uint32_t* __restrict w3 = words + 3 * padded;
  philox_tile_words(w0, w1, w2, w3, block_row, block_column, count, first_row, key, step, stream);
  normals_from_words(noise, w0, w1, w2, w3, padded);
}

// Lattice run [begin, end). Where many points carry weight (9 sigma' + 2 > kLatticeWindowLimit,
// K - 1 beyond it too, z not far outside), the Euler-Maclaurin form: one vectorised pass, the
// few elements its fast form does not cover redone by the careful form. Elsewhere
// m = x_n + sum_j w_j (j d) over the window of points j = -R..R around the nearest point x_n,
// R <= kLatticeWindowLimit. The weights relative to x_n follow
// w_{j+1} = w_j a b^j with a = exp(-d (d + 2 delta)/(2 s)), b = exp(-d^2 / s) (delta = x_n - z),
// so a row costs three exponentials per column however wide the window (the rounding of the
// products grows like j ulp, far inside the 1e-5 accuracy contract). Columns are the inner,
// vectorised loop, so every lane runs the same trip count.
OB_INLINE void lattice_mean(const Layout& layout, const Run& run, const float* __restrict v,
                            float* __restrict m, float sigma, float inverse_s, Scratch& scratch) {
  const std::int64_t begin = run.begin, end = run.end;
  float* __restrict nearest = scratch.first.data();
  float* __restrict delta_near = scratch.second.data();
  float* __restrict weight_sum = scratch.third.data();
  float* __restrict moment = scratch.fourth.data();
  float* __restrict up = scratch.fifth.data();
  float* __restrict up_ratio = scratch.sixth.data();
  float* __restrict down = scratch.seventh.data();
  float* __restrict down_ratio = scratch.eighth.data();
  float* __restrict decay = scratch.value_aux.data();
  const float* __restrict low = layout.low.data();
  const float* __restrict step = layout.lattice_step_float.data();
  const float* __restrict inverse_step = layout.lattice_inverse_step.data();
  const float* __restrict last = layout.lattice_last.data();
  const float inverse_two_s = 0.5f * inverse_s;
  // The widest window of the run's columns, at most K - 1 and kLatticeWindowLimit points on either
  // side: beyond the limit, Euler-Maclaurin serves the columns.
  const std::int64_t window = pm::lattice_radius(sigma, run.smallest_step, run.most_points);
  const std::int64_t radius = std::min<std::int64_t>(
      run.most_points - 1, std::min<std::int64_t>(window, static_cast<std::int64_t>(pm::kLatticeWindowLimit)));
  const bool may_use_formula = run.most_points - 1 > static_cast<std::int64_t>(pm::kLatticeWindowLimit) &&
                               pm::kLatticeWindowSigmas * sigma / run.smallest_step + 2.0f > pm::kLatticeWindowLimit;
  // formula[c]: 1 where the column takes Euler-Maclaurin; careful[c]: 1 where its fast form must be redone.
  float* __restrict formula = scratch.formula.data();
  float* __restrict careful = scratch.careful.data();
  float window_columns = may_use_formula ? 0.0f : 1.0f;  // sums, not maxima: a simd reduction of
  float careful_columns = 0.0f;                          // std::max does not vectorise without fast-math
  if (may_use_formula) {
    const float inverse_sigma = 1.0f / sigma;
    auto formula_pass = [&](auto terms) OB_LAMBDA_INLINE {
      float windows = 0.0f, carefuls = 0.0f;
#if defined(_OPENMP)
#pragma omp simd reduction(+ : windows, carefuls)
#endif
      for (std::int64_t c = begin; c < end; ++c) {
        const float sigma_points = sigma * inverse_step[c];
        const float y = (v[c] - low[c]) * inverse_step[c];
        const float uses = pm::lattice_uses_euler_maclaurin(y, last[c], sigma_points);
        m[c] = pm::lattice_euler_maclaurin_fast<decltype(terms)::value>(v[c], low[c], step[c], inverse_step[c], last[c],
                                                                        sigma_points, step[c] * inverse_sigma);
        const float redo = uses * (1.0f - pm::lattice_euler_maclaurin_fast_holds(y, last[c], sigma_points));
        formula[c] = uses;
        careful[c] = redo;
        windows += 1.0f - uses;
        carefuls += redo;
      }
      window_columns = windows;
      careful_columns = carefuls;
    };
    // The narrowest sigma' of the run's columns sets the number of terms for all of them.
    switch (pm::lattice_euler_maclaurin_terms(sigma / run.largest_step)) {
      case 1:
        formula_pass(std::integral_constant<int, 1>{});
        break;
      case 2:
        formula_pass(std::integral_constant<int, 2>{});
        break;
      default:
        formula_pass(std::integral_constant<int, pm::kEulerMaclaurinTerms>{});
        break;
    }
  }
  if (window_columns > 0.0f) {
    for_columns(begin, end, [&](std::int64_t c) OB_LAMBDA_INLINE {
      float position = (v[c] - low[c]) * inverse_step[c];
      position = (position + fastmath::kRoundMagic) - fastmath::kRoundMagic;
      position = position < 0.0f ? 0.0f : (position > last[c] ? last[c] : position);
      nearest[c] = position;
      const float d = step[c];
      const float delta = (low[c] + position * d) - v[c];
      delta_near[c] = delta;
      weight_sum[c] = 1.0f;
      moment[c] = 0.0f;
      up[c] = 1.0f;
      down[c] = 1.0f;
      up_ratio[c] = fastmath::exp(pm::lattice_logit(d, delta, inverse_two_s));
      down_ratio[c] = fastmath::exp(pm::lattice_logit(-d, delta, inverse_two_s));
      decay[c] = fastmath::exp(-d * d * inverse_s);
    });
    for (std::int64_t j = 1; j <= radius; ++j) {
      const float jf = static_cast<float>(j);
      for_columns(begin, end, [&](std::int64_t c) OB_LAMBDA_INLINE {
        up[c] *= up_ratio[c];
        up_ratio[c] *= decay[c];
        down[c] *= down_ratio[c];
        down_ratio[c] *= decay[c];
        const float w_up = nearest[c] + jf <= last[c] ? up[c] : 0.0f;
        const float w_down = nearest[c] - jf >= 0.0f ? down[c] : 0.0f;
        weight_sum[c] += w_up + w_down;
        moment[c] += (jf * step[c]) * (w_up - w_down);
      });
    }
    // x_n from the lattice, not v + delta_n: that sum rounds at large |z|.
    for_columns(begin, end, [&](std::int64_t c) OB_LAMBDA_INLINE {
      const float windowed = (low[c] + nearest[c] * step[c]) + moment[c] / weight_sum[c];
      m[c] = may_use_formula && formula[c] != 0.0f ? m[c] : windowed;
    });
  }
  if (careful_columns > 0.0f) {
    for (std::int64_t c = begin; c < end; ++c) {
      if (careful[c] != 0.0f) m[c] = pm::lattice_euler_maclaurin_mean(v[c], low[c], step[c], last[c], sigma);
    }
  }
}

// Categorical run: softmax(v / s) per group, the exponentials vectorised over the whole run.
OB_INLINE void categorical_mean(const Layout& layout, const Run& run, const float* __restrict v,
                                float* __restrict m, float inverse_s, Scratch& scratch) {
  float* __restrict group_max = scratch.first.data();
  float* __restrict exponential = scratch.second.data();
  float* __restrict group_scale = scratch.third.data();
  for (std::int64_t g = run.first_group; g < run.end_group; ++g) {
    const Group group = layout.groups[static_cast<std::size_t>(g)];
    // Four running maxima, not one: a chain of dependent max operations would set the pace.
    float top[4] = {v[group.offset], v[group.offset], v[group.offset], v[group.offset]};
    std::int64_t c = group.offset + 1;
    for (; c + 4 <= group.offset + group.width; c += 4) {
      for (int k = 0; k < 4; ++k) top[k] = v[c + k] > top[k] ? v[c + k] : top[k];
    }
    for (; c < group.offset + group.width; ++c) top[0] = v[c] > top[0] ? v[c] : top[0];
    const float most = std::max(std::max(top[0], top[1]), std::max(top[2], top[3]));
    for (c = group.offset; c < group.offset + group.width; ++c) group_max[c] = most;
  }
  for_columns(run.begin, run.end, [&](std::int64_t c) OB_LAMBDA_INLINE {
    exponential[c] = fastmath::exp_or_zero((v[c] - group_max[c]) * inverse_s);
  });
  for (std::int64_t g = run.first_group; g < run.end_group; ++g) {
    const Group group = layout.groups[static_cast<std::size_t>(g)];
    // Four partial sums (a fixed order, so still deterministic) instead of one dependent chain.
    float partial[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    std::int64_t c = group.offset;
    for (; c + 4 <= group.offset + group.width; c += 4) {
      for (int k = 0; k < 4; ++k) partial[k] += exponential[c + k];
    }
    for (; c < group.offset + group.width; ++c) partial[0] += exponential[c];
    const float scale = 1.0f / ((partial[0] + partial[1]) + (partial[2] + partial[3]));
    for (std::int64_t c = group.offset; c < group.offset + group.width; ++c) group_scale[c] = scale;
  }
  for_columns(run.begin, run.end, [&](std::int64_t c) OB_LAMBDA_INLINE { m[c] = exponential[c] * group_scale[c]; });
}

// Sphere group: A_d(kappa) z/|z| = z / (s T(kappa)), kappa = |z|/s.
OB_INLINE void sphere_mean(const Group& group, const float* __restrict v, float* __restrict m,
                           float s) {
  float squared = 0.0f;
  for (std::int64_t c = group.offset; c < group.offset + group.width; ++c) squared += v[c] * v[c];
  const float kappa = sqrtf(squared) / s;
  const float scale = 1.0f / (s * special::bessel_ratio_denominator(kappa, static_cast<float>(group.width)));
  for (std::int64_t c = group.offset; c < group.offset + group.width; ++c) m[c] = v[c] * scale;
}

// Step 2: m(v, s) for one row.
OB_INLINE void mean_row(const Layout& layout, const float* __restrict v, float* __restrict m,
                        float s, float sigma, float inverse_s, Scratch& scratch) {
  const float* __restrict low = layout.low.data();
  const float* __restrict high = layout.high.data();
  const float inverse_sigma = 1.0f / sigma;
  for (const Run& run : layout.runs) {
    const std::int64_t begin = run.begin, end = run.end;
    switch (run.kind) {
      case pm::kReal:
        for_columns(begin, end, [&](std::int64_t c) OB_LAMBDA_INLINE { m[c] = v[c]; });
        break;
      case pm::kHalfLineLower:
        for_columns(begin, end, [&](std::int64_t c) OB_LAMBDA_INLINE { m[c] = pm::lower_halfline_mean(v[c], low[c], sigma, inverse_sigma); });
        break;
      case pm::kHalfLineUpper:
        for_columns(begin, end, [&](std::int64_t c) OB_LAMBDA_INLINE { m[c] = pm::upper_halfline_mean(v[c], high[c], sigma, inverse_sigma); });
        break;
      case pm::kInterval:
        for (std::int64_t c = begin; c < end; ++c) m[c] = pm::interval_mean(v[c], low[c], high[c], sigma);
        break;
      case pm::kBinary:
        for_columns(begin, end, [&](std::int64_t c) OB_LAMBDA_INLINE { m[c] = pm::binary_mean(v[c], inverse_s); });
        break;
      case pm::kLattice:
        lattice_mean(layout, run, v, m, sigma, inverse_s, scratch);
        break;
      case pm::kCategorical:
        categorical_mean(layout, run, v, m, inverse_s, scratch);
        break;
      case pm::kSphere:
        sphere_mean(layout.groups[static_cast<std::size_t>(run.first_group)], v, m, s);
        break;
      default:
        break;
    }
  }
}

// One tile of rows [first, first + count) of a call.
template <Op op, typename Input>
OB_INLINE void run_tile(const Call& call, std::int64_t first, std::int64_t count, Scratch& scratch) {
  const Layout& layout = *call.layout;
  const std::int64_t width = layout.width;
  if (op != Op::kMean) {
    fill_normals(scratch.noise.data(), scratch.words.data(), call.block_row.data(), call.block_column.data(),
                 count * call.blocks_per_row, call.address.row_offset + static_cast<std::uint64_t>(first),
                 philox::make_key(call.address.seed), call.address.step, call.stream);
  }
  const auto* input = static_cast<const Input*>(call.input);
  for (std::int64_t r = 0; r < count; ++r) {
    const std::int64_t row = first + r;
    const float* __restrict noise = scratch.noise.data() + r * call.padded_width;
    float* __restrict m = scratch.mean.data();
    float* __restrict out = call.out + row * width;
    if (op == Op::kStep) {
      const float* __restrict z = call.z + row * width;
      mean_row(layout, z, m, call.remaining, call.sigma, call.inverse_remaining, scratch);
      const float db = call.increment, root = call.sqrt_increment, inverse_s = call.inverse_remaining;
      if (input != nullptr) {
        const Input* __restrict f = input + row * width;
        for_columns(0, width, [&](std::int64_t c) OB_LAMBDA_INLINE {
          out[c] = z[c] + db * ((m[c] - z[c]) * inverse_s + load(f, c)) + root * noise[c];
        });
      } else {
        for_columns(0, width, [&](std::int64_t c) OB_LAMBDA_INLINE {
          out[c] = z[c] + db * ((m[c] - z[c]) * inverse_s) + root * noise[c];
        });
      }
    } else if (op == Op::kBridgeStep) {
      // x_hat = m + s f, x_hat' = x_hat + w (x_hat - previous), out = z + fraction (x_hat' - z) + spread xi
      const float* __restrict z = call.z + row * width;
      mean_row(layout, z, m, call.remaining, call.sigma, call.inverse_remaining, scratch);
      const float s = call.remaining, fraction = call.fraction, weight = call.weight;
      const float* __restrict spread = call.spread;
      float* __restrict prediction = call.target + row * width;
      const Input* __restrict f = input != nullptr ? input + row * width : nullptr;
      const float* __restrict previous = call.previous != nullptr ? call.previous + row * width : nullptr;
      // One pass per (drift, previous) case: each element's prediction is used as it is written, not read back.
      const auto finish = [&](std::int64_t c, float predicted, float moved) OB_LAMBDA_INLINE {
        prediction[c] = predicted;
        out[c] = z[c] + fraction * (moved - z[c]) + spread[c] * noise[c];
      };
      if (f != nullptr && previous != nullptr) {
        for_columns(0, width, [&](std::int64_t c) OB_LAMBDA_INLINE {
          const float predicted = m[c] + s * load(f, c);
          finish(c, predicted, predicted + weight * (predicted - previous[c]));
        });
      } else if (f != nullptr) {
        for_columns(0, width, [&](std::int64_t c) OB_LAMBDA_INLINE {
          const float predicted = m[c] + s * load(f, c);
          finish(c, predicted, predicted);
        });
      } else if (previous != nullptr) {
        for_columns(0, width, [&](std::int64_t c) OB_LAMBDA_INLINE {
          finish(c, m[c], m[c] + weight * (m[c] - previous[c]));
        });
      } else {
        for_columns(0, width, [&](std::int64_t c) OB_LAMBDA_INLINE { finish(c, m[c], m[c]); });
      }
    } else if (op == Op::kTarget) {
      const float s = call.remaining_rows[row];
      const float scale = call.mean_scale[row], spread = call.noise_scale[row];
      const Input* __restrict x = input + row * width;
      float* __restrict v = scratch.value.data();
      for_columns(0, width, [&](std::int64_t c) OB_LAMBDA_INLINE {
        v[c] = scale * load(x, c) + spread * noise[c];
        out[c] = v[c];
      });
      const float inverse_s = 1.0f / s;
      mean_row(layout, v, m, s, sqrtf(s), inverse_s, scratch);
      float* __restrict target = call.target + row * width;
      for_columns(0, width, [&](std::int64_t c) OB_LAMBDA_INLINE { target[c] = (load(x, c) - m[c]) * inverse_s; });
    } else {
      const float s = call.remaining_rows[row];
      mean_row(layout, call.z + row * width, out, s, sqrtf(s), 1.0f / s, scratch);
    }
  }
}

// The ISA clones: one non-template function per (op, input type).
OB_ISA_CLONES void mean_tile(const Call& call, std::int64_t first, std::int64_t count, Scratch& scratch) {
  run_tile<Op::kMean, float>(call, first, count, scratch);
}
OB_ISA_CLONES void step_tile_float(const Call& call, std::int64_t first, std::int64_t count, Scratch& scratch) {
  run_tile<Op::kStep, float>(call, first, count, scratch);
}
OB_ISA_CLONES void step_tile_bfloat16(const Call& call, std::int64_t first, std::int64_t count, Scratch& scratch) {
  run_tile<Op::kStep, std::uint16_t>(call, first, count, scratch);
}
OB_ISA_CLONES void bridge_step_tile_float(const Call& call, std::int64_t first, std::int64_t count, Scratch& scratch) {
  run_tile<Op::kBridgeStep, float>(call, first, count, scratch);
}
OB_ISA_CLONES void bridge_step_tile_bfloat16(const Call& call, std::int64_t first, std::int64_t count, Scratch& scratch) {
  run_tile<Op::kBridgeStep, std::uint16_t>(call, first, count, scratch);
}
OB_ISA_CLONES void target_tile_float(const Call& call, std::int64_t first, std::int64_t count, Scratch& scratch) {
  run_tile<Op::kTarget, float>(call, first, count, scratch);
}
OB_ISA_CLONES void target_tile_bfloat16(const Call& call, std::int64_t first, std::int64_t count, Scratch& scratch) {
  run_tile<Op::kTarget, std::uint16_t>(call, first, count, scratch);
}

using TileFunction = void (*)(const Call&, std::int64_t, std::int64_t, Scratch&);

// Tile shape and the (row, column block) of every Philox block of a full tile.
void plan_tiles(Call& call) {
  const std::int64_t width = call.layout->width;
  call.blocks_per_row = (width + 3) / 4;
  call.padded_width = 4 * call.blocks_per_row;
  call.tile_rows = std::max<std::int64_t>(1, kTileFloats / std::max<std::int64_t>(call.padded_width, 1));
  call.tile_rows = std::min(call.tile_rows, std::max<std::int64_t>(call.rows, 1));
  const std::int64_t blocks = call.tile_rows * call.blocks_per_row;
  call.block_row.resize(static_cast<std::size_t>(blocks));
  call.block_column.resize(static_cast<std::size_t>(blocks));
  for (std::int64_t b = 0; b < blocks; ++b) {
    call.block_row[static_cast<std::size_t>(b)] = static_cast<std::uint32_t>(b / call.blocks_per_row);
    call.block_column[static_cast<std::size_t>(b)] = static_cast<std::uint32_t>(b % call.blocks_per_row);
  }
}

void launch(Call& call, TileFunction tile, int threads) {
  if (call.rows <= 0 || call.layout->width <= 0) return;
  plan_tiles(call);
  for_tiles<Scratch>(call, call.rows, call.tile_rows, threads, tile);
}

// What the Euler step and the bridge step share: the state, drift and output, the step's noise,
// and the scalars of s rounded from double once, the same way for both.
Call step_call(const Layout& layout, const float* z, const void* drift, float* out, std::int64_t rows,
               double remaining, const NoiseAddress& address) {
  Call call;
  call.layout = &layout;
  call.rows = rows;
  call.z = z;
  call.input = drift;
  call.out = out;
  call.address = address;
  call.stream = philox::kStreamStep;
  call.remaining = static_cast<float>(remaining);
  call.inverse_remaining = static_cast<float>(1.0 / remaining);
  call.sigma = static_cast<float>(std::sqrt(remaining));
  return call;
}

}  // namespace

void posterior_mean(const Layout& layout, const float* z, const float* remaining, float* out,
                    std::int64_t rows, int threads) {
  Call call;
  call.layout = &layout;
  call.rows = rows;
  call.z = z;
  call.out = out;
  call.remaining_rows = remaining;
  launch(call, mean_tile, threads);
}

void step(const Layout& layout, const float* z, const void* drift, Storage drift_storage,
          float* out, std::int64_t rows, double remaining, double increment,
          const NoiseAddress& address, int threads) {
  Call call = step_call(layout, z, drift, out, rows, remaining, address);
  call.increment = static_cast<float>(increment);
  call.sqrt_increment = static_cast<float>(std::sqrt(increment));
  launch(call, drift_storage == Storage::kBFloat16 ? step_tile_bfloat16 : step_tile_float, threads);
}

void bridge_step(const Layout& layout, const float* z, const void* drift, Storage drift_storage,
                 const float* previous, float* out, float* prediction, std::int64_t rows, double remaining,
                 double fraction, double weight, const float* spread, const NoiseAddress& address, int threads) {
  Call call = step_call(layout, z, drift, out, rows, remaining, address);
  call.target = prediction;
  call.previous = previous;
  call.spread = spread;
  call.fraction = static_cast<float>(fraction);
  call.weight = static_cast<float>(weight);
  launch(call, drift_storage == Storage::kBFloat16 ? bridge_step_tile_bfloat16 : bridge_step_tile_float, threads);
}

void bridge_target(const Layout& layout, const void* x, Storage x_storage,
                   const float* mean_scale, const float* noise_scale, const float* remaining,
                   float* z_t, float* target, std::int64_t rows, const NoiseAddress& address,
                   int threads) {
  Call call;
  call.layout = &layout;
  call.rows = rows;
  call.input = x;
  call.out = z_t;
  call.target = target;
  call.remaining_rows = remaining;
  call.mean_scale = mean_scale;
  call.noise_scale = noise_scale;
  call.address = address;
  call.stream = philox::kStreamTrain;
  launch(call, x_storage == Storage::kBFloat16 ? target_tile_bfloat16 : target_tile_float, threads);
}

const char* simd_level() {
#if OB_HAVE_ISA_CLONES
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return "avx512";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
#endif
  return "baseline";
}

}  // namespace cpu
}  // namespace omegabridge
