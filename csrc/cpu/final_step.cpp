// The exact last step on CPU: per row, a draw from N(z + s f, s I) restricted to every factor
// of the layout (bridge-math.md section 3), with the uniforms and normals of the noise
// contract (docs/noise.md) at step `address.step`; every output lies in the domain exactly
// (canonical lattice points, exact one-hot vectors, values clamped into [low, high]).
//
// Vectorised over rows. Work is cut into tiles of rows (a multiple of kLanes); per tile:
//   1. the means z + s f, column-major ("planar": column c of the tile's rows is contiguous);
//   2. the Philox words of stream 1 (uniforms) and of stream 0 (normals, Real columns only) for
//      the column blocks that need them, by the AVX2 Philox where the CPU has it, ordered so that
//      each column's uniforms are planar too;
//   3. per run of the layout, its kind's draw over chunks of kLanes rows of one column at a time,
//      branch-free (both sides of a branch computed, one selected), in loops the compiler
//      vectorises; categorical groups run their inverse CDF per lane over the group's columns;
//   4. the results written back row-major.
// Lattice elements that take the Euler-Maclaurin draw (many points carry weight) and sphere
// groups run the scalar formulas of posterior.h per element or row, and so do whole layouts
// wider than kWidestTiled columns (a tile's buffers would be too large).
//
// The draws are those of the scalar per-row code (final_step_scalar, kept below as their
// definition) bit for bit: each branch-free formula performs the float operations of the side
// that the scalar one takes, in the same order. For that the file is compiled without
// floating-point contraction (the pragmas below): a fused multiply-add rounds once where the
// scalar baseline code rounds twice, and with it the vector lanes, the scalar remainders and the
// ISA clones would not all agree. So nothing depends on the instruction set, the thread count or
// how rows fall into tiles and calls.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"
#include "omegabridge/philox.h"
#include "omegabridge/posterior.h"
#include "tile.h"

namespace omegabridge {
namespace cpu {

namespace {

namespace pm = omegabridge::posterior;

using philox::kStreamFinalUniform;
using philox::kStreamStep;
using philox::RowNoise;

// ---------------------------------------------------------------------------------------
// The scalar formulas, row by row
// ---------------------------------------------------------------------------------------

// First index whose running sum reaches u * total (u in (0, 1]), as the reference.
std::int64_t inverse_cdf_index(const float* weights, std::int64_t count, float u) {
  float total = 0.0f;
  for (std::int64_t k = 0; k < count; ++k) total += weights[k];
  const float threshold = u * total;
  float running = 0.0f;
  for (std::int64_t k = 0; k < count; ++k) {
    running += weights[k];
    if (running >= threshold) return k;
  }
  return count - 1;
}

void categorical_draw(const float* mean, float* out, std::int64_t width, float inverse_s,
                      float u, std::vector<float>& weights) {
  float top = mean[0];
  for (std::int64_t c = 1; c < width; ++c) top = std::max(top, mean[c]);
  weights.resize(static_cast<std::size_t>(width));
  for (std::int64_t c = 0; c < width; ++c) weights[static_cast<std::size_t>(c)] = fastmath::exp((mean[c] - top) * inverse_s);
  const std::int64_t index = inverse_cdf_index(weights.data(), width, u);
  for (std::int64_t c = 0; c < width; ++c) out[c] = c == index ? 1.0f : 0.0f;
}

// vMF(mean/|mean|, |mean|/s) by pm::von_mises_fisher_draw, the unit mean kept in `direction`.
void sphere_draw(const float* mean, float* out, std::int64_t offset, std::int64_t d, float s,
                 const RowNoise& noise, std::vector<float>& direction) {
  direction.resize(static_cast<std::size_t>(d));
  float squared = 0.0f;
  for (std::int64_t c = 0; c < d; ++c) squared += mean[c] * mean[c];
  const float norm = std::sqrt(squared);
  for (std::int64_t c = 0; c < d; ++c) {
    direction[static_cast<std::size_t>(c)] = norm > 0.0f ? mean[c] / norm : (c == 0 ? 1.0f : 0.0f);
  }
  const float* unit = direction.data();
  pm::von_mises_fisher_draw([unit](std::int64_t c) { return unit[c]; }, norm, s, offset, d, noise, out);
}

// The mean z + s f of the draw; f = 0 without drift (z + s 0, not z: -0 becomes +0, as always).
template <typename Drift>
OB_INLINE float draw_mean(const float* z, const Drift* drift, std::int64_t i, float s) {
  return z[i] + s * (drift != nullptr ? load(drift, i) : 0.0f);
}

template <typename Drift>
void scalar_rows(const Layout& layout, const float* z, const Drift* drift, float* out,
                 std::int64_t rows, double remaining, const NoiseAddress& address, int threads) {
  const std::int64_t width = layout.width;
  const float s = static_cast<float>(remaining);
  const float sigma = static_cast<float>(std::sqrt(remaining));
  const float inverse_s = static_cast<float>(1.0 / remaining);
#ifdef _OPENMP
#pragma omp parallel num_threads(std::max(1, threads))
#endif
  {
    std::vector<float> mean(static_cast<std::size_t>(width)), buffer;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (std::int64_t i = 0; i < rows; ++i) {
      const RowNoise noise{address.seed, address.step, address.row_offset + static_cast<std::uint64_t>(i)};
      float* out_row = out + i * width;
      for (std::int64_t c = 0; c < width; ++c) mean[static_cast<std::size_t>(c)] = draw_mean(z, drift, i * width + c, s);
      for (const Run& run : layout.runs) {
        for (std::int64_t c = run.begin; c < run.end; ++c) {
          const float m = mean[static_cast<std::size_t>(c)];
          switch (run.kind) {
            case pm::kReal:
              out_row[c] = m + sigma * noise.normal(c, kStreamStep);
              break;
            case pm::kInterval:
              out_row[c] = pm::truncated_normal(m, sigma, layout.low[c], layout.high[c], noise.uniform(c, kStreamFinalUniform));
              break;
            case pm::kHalfLineLower:
              out_row[c] = pm::truncated_normal(m, sigma, layout.low[c], INFINITY, noise.uniform(c, kStreamFinalUniform));
              break;
            case pm::kHalfLineUpper:
              out_row[c] = pm::truncated_normal(m, sigma, -INFINITY, layout.high[c], noise.uniform(c, kStreamFinalUniform));
              break;
            case pm::kBinary:
              out_row[c] = noise.uniform(c, kStreamFinalUniform) <= pm::binary_mean(m, inverse_s) ? 1.0f : 0.0f;
              break;
            case pm::kLattice:
              out_row[c] = pm::lattice_draw(m, sigma, inverse_s, layout.lattice_low[c], layout.lattice_step[c],
                                            layout.lattice_points[c], noise.uniform(c, kStreamFinalUniform));
              break;
            default:
              break;  // groups below
          }
        }
        for (std::int64_t g = run.first_group; g >= 0 && g < run.end_group; ++g) {
          const Group group = layout.groups[static_cast<std::size_t>(g)];
          const float* group_mean = mean.data() + group.offset;
          if (run.kind == pm::kCategorical) {
            categorical_draw(group_mean, out_row + group.offset, group.width, inverse_s,
                             noise.uniform(group.offset, kStreamFinalUniform), buffer);
          } else {
            sphere_draw(group_mean, out_row + group.offset, group.offset, group.width, s, noise, buffer);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// The same formulas branch-free, for loops over the lanes of a chunk of rows
// ---------------------------------------------------------------------------------------

constexpr std::int64_t kLanes = 16;  // rows per chunk: whole vectors for every ISA, no remainder loop
constexpr std::int64_t kTileFloats = 4096;  // a planar buffer of a tile: 16 KiB
// Layouts wider than this take the scalar rows: a tile of kLanes rows would hold four planar
// buffers of kLanes x width floats per thread (16 MiB at this width).
constexpr std::int64_t kWidestTiled = 65536;
constexpr std::int64_t kLatticeWindowPoints = 2 * static_cast<std::int64_t>(pm::kLatticeWindowLimit) + 1;

// Calls body(i) for the kLanes lanes of a chunk, in a loop the compiler vectorises.
template <typename Body>
OB_INLINE void for_lanes(Body body) {
  OB_SIMD
  for (std::int64_t i = 0; i < kLanes; ++i) body(i);
}

// special::upper_tail(x) from ratio = special::mills_ratio(|x|), which the caller keeps (it is also
// the tail's R(start)), with +0 (1 for x < 0) where |x| > kSubnormalTail: there the scalar formula's
// Q(|x|) is below the smallest normal float (Q(13) = 6.1e-39 < 1.18e-38), and the three places that
// use it (the mass, the point below the median, the point above it) either add it to a term of at
// least 2^-34 or clamp it up to kTiny, so +0 gives the same bits, without a subnormal whose every
// operation costs a microcode assist on x86 (a third of the half-line last step's time at s = 0.001).
constexpr float kSubnormalTail = 13.0f;
OB_INLINE float upper_tail_lanes(float x, float ratio) {
  const float t = x < 0.0f ? -x : x;
  const bool far = t > kSubnormalTail;
  const float near = far ? 0.0f : t;  // the density at 0, not at t, where it is dropped: no subnormal
  const float q = (far ? 0.0f : 1.0f) * (special::normal_pdf(near) * ratio);
  return x < 0.0f ? 1.0f - q : q;
}

// pm::truncated_normal branch-free, in stages over a whole column of the tile: the tail side
// (special::truncated_tail_quantile) and the inside side each prepare the argument of one
// special::tail_offset, whose Halley steps then run one stage per step, and both sides finish from
// its result. Stages, not one loop body: an element's draw is one long chain of dependent
// operations (special::kTailOffsetSteps Halley steps of a Mills' ratio and a log each); with the
// whole chain in one body the CPU's out-of-order window holds a fraction of one vector's chain and
// overlaps no two vectors, while a stage's body is short enough that several are in flight
// (measured on the 16 half-lines of bench/layouts.py: 49 ns per element in one body, 20 in stages).
// Half-lines (one end infinite) drop the tail's finite-end ratio, which is 0 for every input there
// (the width beta - alpha is +inf or NaN, taken as inf).
struct TruncatedStages {
  std::vector<float> alpha, beta, r_alpha, r_beta, q_alpha, q_beta, start, bounded, t, log_r_start, width, tail, right, lower;
  void reserve(std::size_t lanes) {
    for (auto* b : {&alpha, &beta, &r_alpha, &r_beta, &q_alpha, &q_beta, &start, &bounded, &t, &log_r_start, &width, &tail,
                    &right, &lower}) {
      b->resize(lanes);
    }
  }
};

// Calls body(r) for every row r < lanes (a multiple of kLanes), a vectorised chunk at a time.
template <typename Body>
OB_INLINE void for_rows(std::int64_t lanes, Body body) {
  for (std::int64_t r = 0; r < lanes; r += kLanes) {
    OB_SIMD
    for (std::int64_t i = 0; i < kLanes; ++i) body(r + i);
  }
}

template <std::int32_t Kind>
OB_INLINE void truncated_normal_column(const float* __restrict m, const float* __restrict u, float* __restrict x,
                                       std::int64_t lanes, float sigma, float low, float high, TruncatedStages& stage) {
  float* __restrict alpha = stage.alpha.data();
  float* __restrict beta = stage.beta.data();
  float* __restrict r_alpha = stage.r_alpha.data();
  float* __restrict r_beta = stage.r_beta.data();
  float* __restrict q_alpha = stage.q_alpha.data();
  float* __restrict q_beta = stage.q_beta.data();
  float* __restrict start = stage.start.data();
  float* __restrict bounded = stage.bounded.data();
  float* __restrict t = stage.t.data();
  float* __restrict log_r_start = stage.log_r_start.data();
  float* __restrict width = stage.width.data();
  float* __restrict tail = stage.tail.data();
  float* __restrict right = stage.right.data();
  float* __restrict lower = stage.lower.data();
  constexpr bool FiniteInterval = Kind == pm::kInterval;
  // The ends in sigmas and the upper tails at them (normal_mass(alpha, beta) is built from these).
  // At a half-line's infinite end the tail is upper_tail(+inf) = +0 exactly: skipped for a chunk
  // whose lanes all have it (a mean of +-inf or NaN makes that end NaN, and there it is computed).
  for (std::int64_t r0 = 0; r0 < lanes; r0 += kLanes) {
    float infinite_ends = 0.0f;
#if defined(_OPENMP)
#pragma omp simd reduction(+ : infinite_ends)
#endif
    for (std::int64_t r = r0; r < r0 + kLanes; ++r) {
      alpha[r] = (low - m[r]) / sigma;
      beta[r] = (high - m[r]) / sigma;
      infinite_ends += (Kind == pm::kHalfLineLower ? beta[r] : -alpha[r]) == INFINITY ? 1.0f : 0.0f;
    }
    const bool skip = Kind != pm::kInterval && infinite_ends == static_cast<float>(kLanes);
    // R(|alpha|) and R(|beta|): for the tails and, on a tail lane, R(start) too.
    if (Kind == pm::kHalfLineUpper && skip) {
      for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE { q_alpha[r0 + i] = 0.0f, r_alpha[r0 + i] = 1.0f; });
    } else {
      for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE {
        const float ratio = special::mills_ratio(alpha[r0 + i] < 0.0f ? -alpha[r0 + i] : alpha[r0 + i]);
        r_alpha[r0 + i] = ratio;
        q_alpha[r0 + i] = upper_tail_lanes(-alpha[r0 + i], ratio);
      });
    }
    if (Kind == pm::kHalfLineLower && skip) {
      for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE { q_beta[r0 + i] = 0.0f, r_beta[r0 + i] = 1.0f; });
    } else {
      for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE {
        const float ratio = special::mills_ratio(beta[r0 + i] < 0.0f ? -beta[r0 + i] : beta[r0 + i]);
        r_beta[r0 + i] = ratio;
        q_beta[r0 + i] = upper_tail_lanes(beta[r0 + i], ratio);
      });
    }
  }
  // Tail: the offset from the nearer end, from `start` in the upper tail.
  for_rows(lanes, [&](std::int64_t r) OB_LAMBDA_INLINE {
    const bool is_right = alpha[r] >= 0.0f;
    right[r] = is_right ? 1.0f : 0.0f;
    tail[r] = is_right || beta[r] <= 0.0f ? 1.0f : 0.0f;
    const float w = beta[r] - alpha[r];
    width[r] = w != w ? INFINITY : w;
    const float s = is_right ? alpha[r] : -beta[r];
    start[r] = s > 0.0f ? s : 0.0f;
  });
  if (FiniteInterval) {
    for_rows(lanes, [&](std::int64_t r) OB_LAMBDA_INLINE {
      const float end = start[r] + width[r];
      const float ratio = fastmath::exp(-0.5f * width[r] * (start[r] + end)) * special::mills_ratio(end) /
                          special::mills_ratio(start[r]);
      t[r] = end - end == 0.0f ? ratio : 0.0f;  // the ratio, in t until the Halley steps
    });
  }
  // R(0), the inside side's R(start), with the scalar formula's operations.
  const float mills_ratio_zero = special::mills_ratio(0.0f);
  for_rows(lanes, [&](std::int64_t r) OB_LAMBDA_INLINE {
    const float ratio = FiniteInterval ? t[r] : 0.0f;
    // log1p(-u (1 - ratio)) as special::log1p, its log taken below with the inside side's.
    const float tail_x = -u[r] * (1.0f - ratio);
    const float tail_y = 1.0f + tail_x;
    const float tail_correction = (tail_y - 1.0f) == 0.0f ? 0.0f : ((tail_y - 1.0f) - tail_x) / tail_y;
    // Inside: Phi inverted on whichever side of the median the draw falls.
    const float mass = (0.5f - q_beta[r]) + (0.5f - q_alpha[r]);
    float below_median = q_alpha[r] + u[r] * mass;
    const bool lower_side = below_median <= 0.5f;
    lower[r] = lower_side ? 1.0f : 0.0f;
    below_median = below_median < special::kTiny ? special::kTiny : below_median;
    float upper = q_beta[r] + (1.0f - u[r]) * mass;
    upper = upper < special::kTiny ? special::kTiny : (upper > 0.5f ? 0.5f : upper);
    // special::tail_offset(tail ? start : 0, log_p): one log for the side the lane takes.
    const bool is_tail = tail[r] != 0.0f;
    const float logarithm = fastmath::log(is_tail ? tail_y : 2.0f * (lower_side ? below_median : upper));
    const float tail_log_p = tail_y > 0.0f ? ((tail_y - 1.0f) == 0.0f ? tail_x : logarithm - tail_correction) : special::kLogTiny;
    const float log_p = is_tail ? tail_log_p : logarithm;
    // R(start): on a tail lane start is |alpha| (right) or |beta| (left), whose ratios are kept.
    // (Both loaded before the select: a conditional load would keep the loop from vectorising.)
    const float ratio_alpha = r_alpha[r], ratio_beta = r_beta[r];
    const float ratio_start = is_tail ? (right[r] != 0.0f ? ratio_alpha : ratio_beta) : mills_ratio_zero;
    start[r] = is_tail ? start[r] : 0.0f;
    bounded[r] = log_p < special::kLogTiny ? special::kLogTiny : log_p;
    log_r_start[r] = fastmath::log(ratio_start);
  });
  for_rows(lanes, [&](std::int64_t r) OB_LAMBDA_INLINE { t[r] = special::tail_offset_start(start[r], bounded[r]); });
  for (int step = 0; step < special::kTailOffsetSteps; ++step) {
    for_rows(lanes, [&](std::int64_t r) OB_LAMBDA_INLINE {
      t[r] = special::tail_offset_step(start[r], t[r], log_r_start[r], bounded[r]);
    });
  }
  for_rows(lanes, [&](std::int64_t r) OB_LAMBDA_INLINE {
    float offset = t[r] - t[r] == 0.0f ? t[r] : 0.0f;
    offset = offset < width[r] ? offset : width[r];
    const float from_tail = right[r] != 0.0f ? low + sigma * offset : high - sigma * offset;
    float y = lower[r] != 0.0f ? -t[r] : t[r];
    y = y < alpha[r] ? alpha[r] : (y > beta[r] ? beta[r] : y);
    const float value = tail[r] != 0.0f ? from_tail : m[r] + sigma * y;
    x[r] = value < low ? low : (value > high ? high : value);
  });
}

// round(x) half to even as rint for |x| < 2^51 (adding and removing 1.5 * 2^52); larger |x| is kept.
OB_INLINE double round_half_even(double x) {
  const double magic = 6755399441055744.0;
  const double rounded = (x + magic) - magic;
  return std::fabs(x) < 2251799813685248.0 ? rounded : x;
}

// ---------------------------------------------------------------------------------------
// Tiles
// ---------------------------------------------------------------------------------------

// Everything a tile needs, fixed for one call.
struct Call {
  const Layout* layout = nullptr;
  std::int64_t rows = 0;
  std::int64_t tile_rows = 0;  // a multiple of kLanes
  const float* z = nullptr;
  const void* drift = nullptr;
  float* out = nullptr;
  NoiseAddress address{};
  float s = 0, sigma = 0, inverse_s = 0;
  // The column blocks (4 columns each) whose stream 1 (uniform) and stream 0 (normal) words a tile
  // needs, and the (row, column block) of each of their Philox blocks in a full tile, column
  // block-major: block k * tile_rows + r is row r of the k-th listed column block.
  std::vector<std::uint32_t> uniform_blocks, normal_blocks;
  std::vector<std::uint32_t> uniform_block_row, uniform_block_column, normal_block_row, normal_block_column;
  std::int64_t widest_group = 1;
};

// Per-thread buffers, grown once per call.
struct Scratch {
  std::vector<float> mean, result, uniform, normal, weights, row_mean, row_out, buffer;
  std::vector<std::uint32_t> words;
  TruncatedStages truncated;
  void reserve(const Call& call) {
    truncated.reserve(static_cast<std::size_t>(call.tile_rows));
    const std::size_t planar = static_cast<std::size_t>(call.layout->width * call.tile_rows);
    for (auto* buffer_ : {&mean, &result}) buffer_->resize(planar);
    if (!call.uniform_blocks.empty()) uniform.resize(planar);
    if (!call.normal_blocks.empty()) normal.resize(planar);
    const std::size_t blocks = std::max(call.uniform_blocks.size(), call.normal_blocks.size());
    words.resize(4 * blocks * static_cast<std::size_t>(call.tile_rows));
    weights.resize(static_cast<std::size_t>(std::max(kLatticeWindowPoints, call.widest_group) * kLanes));
    row_mean.resize(static_cast<std::size_t>(call.widest_group));
    row_out.resize(static_cast<std::size_t>(call.widest_group));
  }
};

// The four planar word arrays of `count` Philox blocks: the AVX2 Philox for whole groups of 8
// where the CPU has it, the portable one for the rest (integer math: the same words either way).
OB_INLINE void fill_words(std::uint32_t* __restrict words, const std::uint32_t* __restrict block_row,
                          const std::uint32_t* __restrict block_column, std::int64_t count, std::uint64_t first_row,
                          const philox::Key key, std::uint32_t step, std::uint32_t stream) {
  philox_tile_words(words, words + count, words + 2 * count, words + 3 * count, block_row, block_column, count,
                    first_row, key, step, stream);
}

// Lattice column c over one chunk of rows (planar m, u, out at the chunk's first row): the
// inverse CDF over the window of 2 radius + 1 points around the nearest point, points outside
// the lattice weighing 0 (adding +0 to a positive sum changes no bit, so the sums are those of
// the scalar loop over [first, last]); lanes that take the Euler-Maclaurin draw are redone by
// the scalar formula.
OB_INLINE void lattice_chunk(const Layout& layout, std::int64_t c, const Call& call, const float* __restrict m,
                             const float* __restrict u, float* __restrict out, std::int64_t live, float* __restrict weights) {
  const double low = layout.lattice_low[static_cast<std::size_t>(c)];
  const double step = layout.lattice_step[static_cast<std::size_t>(c)];
  const std::int64_t points = layout.lattice_points[static_cast<std::size_t>(c)];
  const float sigma = call.sigma;
  const float sigma_points = static_cast<float>(sigma / step);
  const float last_point = static_cast<float>(points - 1);
  const double last_index = static_cast<double>(points - 1);
  const std::int64_t window = pm::lattice_radius(sigma, step, points);
  const std::int64_t limit = static_cast<std::int64_t>(pm::kLatticeWindowLimit);
  const std::int64_t radius = window < limit ? window : limit;
  const float inverse_two_s = 0.5f * call.inverse_s;
  alignas(64) float y[kLanes], formula[kLanes], x_near[kLanes], delta_near[kLanes], total[kLanes];
  alignas(64) double nearest[kLanes];
  float formula_lanes = 0.0f;
  double lowest = last_index, highest = 0.0;  // of the lanes' nearest points
#if defined(_OPENMP)
#pragma omp simd reduction(+ : formula_lanes) reduction(min : lowest) reduction(max : highest)
#endif
  for (std::int64_t i = 0; i < kLanes; ++i) {
    const double position = (static_cast<double>(m[i]) - low) / step;
    y[i] = static_cast<float>(position);
    formula[i] = pm::lattice_uses_euler_maclaurin(y[i], last_point, sigma_points);
    formula_lanes += formula[i];
    // pm::lattice_nearest
    double index = position - position == 0.0 ? round_half_even(position) : 0.0;
    index = index < 0.0 ? 0.0 : index;
    index = index > last_index ? last_index : index;
    nearest[i] = index;
    lowest = index < lowest ? index : lowest;
    highest = index > highest ? index : highest;
    x_near[i] = static_cast<float>(low + index * step);
    delta_near[i] = x_near[i] - m[i];
    total[i] = 0.0f;
  }
  // Offsets at which every lane's point lies outside the lattice add +0 to every sum: skipped.
  const std::int64_t first_offset = std::max(-radius, -static_cast<std::int64_t>(highest));
  const std::int64_t last_offset = std::min(radius, static_cast<std::int64_t>(last_index - lowest));
  for (std::int64_t j = first_offset; j <= last_offset; ++j) {
    float* __restrict w = weights + (j + radius) * kLanes;
    const double offset = static_cast<double>(j);
    for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE {
      const double k = nearest[i] + offset;
      const float point = static_cast<float>(low + k * step);
      const float weight = fastmath::exp(pm::lattice_logit(point - x_near[i], delta_near[i], inverse_two_s));
      w[i] = k >= 0.0 && k <= last_index ? weight : 0.0f;
      total[i] += w[i];
    });
  }
  alignas(64) float threshold[kLanes], running[kLanes], found[kLanes];
  alignas(64) double chosen[kLanes];
  for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE {
    threshold[i] = u[i] * total[i];
    running[i] = 0.0f;
    found[i] = 0.0f;
    const double last = nearest[i] + static_cast<double>(radius);
    chosen[i] = last < last_index ? last : last_index;
  });
  for (std::int64_t j = first_offset; j <= last_offset; ++j) {
    const float* __restrict w = weights + (j + radius) * kLanes;
    const double offset = static_cast<double>(j);
    for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE {
      const double k = nearest[i] + offset;
      running[i] += w[i];
      const bool take = found[i] == 0.0f && k >= 0.0 && k <= last_index && running[i] >= threshold[i];
      chosen[i] = take ? k : chosen[i];
      found[i] = take ? 1.0f : found[i];
    });
  }
  for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE { out[i] = static_cast<float>(low + chosen[i] * step); });
  if (formula_lanes > 0.0f) {
    for (std::int64_t i = 0; i < live; ++i) {
      if (formula[i] != 0.0f) {
        const float k = pm::lattice_euler_maclaurin_draw(y[i], sigma_points, last_point, u[i]);
        out[i] = pm::lattice_point(low, step, static_cast<std::int64_t>(k));
      }
    }
  }
}

// Categorical group over one chunk of rows (planar columns `stride` apart, at the chunk's first
// row): each lane's inverse CDF over the group's softmax weights, as categorical_draw.
OB_INLINE void categorical_chunk(const Group& group, std::int64_t stride, const float* __restrict m,
                                 const float* __restrict u, float* __restrict out, float inverse_s,
                                 float* __restrict weights) {
  const std::int64_t width = group.width;
  alignas(64) float top[kLanes], total[kLanes], threshold[kLanes], running[kLanes], index[kLanes], found[kLanes];
  for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE { top[i] = m[i]; total[i] = 0.0f; });
  for (std::int64_t c = 1; c < width; ++c) {
    const float* __restrict column = m + c * stride;
    for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE { top[i] = top[i] < column[i] ? column[i] : top[i]; });  // std::max
  }
  for (std::int64_t c = 0; c < width; ++c) {
    const float* __restrict column = m + c * stride;
    float* __restrict w = weights + c * kLanes;
    for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE {
      w[i] = fastmath::exp((column[i] - top[i]) * inverse_s);
      total[i] += w[i];
    });
  }
  const float last = static_cast<float>(width - 1);
  for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE {
    threshold[i] = u[i] * total[i];
    running[i] = 0.0f;
    index[i] = last;
    found[i] = 0.0f;
  });
  for (std::int64_t c = 0; c < width; ++c) {
    const float* __restrict w = weights + c * kLanes;
    const float k = static_cast<float>(c);
    for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE {
      running[i] += w[i];
      const bool take = found[i] == 0.0f && running[i] >= threshold[i];
      index[i] = take ? k : index[i];
      found[i] = take ? 1.0f : found[i];
    });
  }
  for (std::int64_t c = 0; c < width; ++c) {
    float* __restrict column = out + c * stride;
    const float k = static_cast<float>(c);
    for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE { column[i] = index[i] == k ? 1.0f : 0.0f; });
  }
}

// Tiles are transposed between row-major and planar in 8 x 8 blocks held in registers (GCC vector
// extensions: unpack, shuffle and 128-bit lane moves on AVX, emulated on the baseline clone),
// where element-wise copies with a stride cost a store or a load per element (measured: an eighth
// of the half-line last step's time). Moves only: the same bits either way.
#if defined(__GNUC__)
#define OB_BLOCK_TRANSPOSE 1
// The helpers are inlined into each ISA clone; GCC's note on passing 32-byte vectors without AVX
// is about an ABI no call here uses.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float Eight __attribute__((vector_size(32)));
typedef int EightIndex __attribute__((vector_size(32)));

OB_INLINE Eight load_eight(const float* p) {
  Eight v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
OB_INLINE void store_eight(float* p, const Eight& v) { __builtin_memcpy(p, &v, sizeof v); }

// v[i] holds row i of a block; afterwards v[j] holds its column j.
OB_INLINE void transpose_eight(Eight v[8]) {
  const EightIndex unpack_low = {0, 8, 1, 9, 4, 12, 5, 13}, unpack_high = {2, 10, 3, 11, 6, 14, 7, 15};
  const EightIndex pairs_low = {0, 1, 8, 9, 4, 5, 12, 13}, pairs_high = {2, 3, 10, 11, 6, 7, 14, 15};
  const EightIndex halves_low = {0, 1, 2, 3, 8, 9, 10, 11}, halves_high = {4, 5, 6, 7, 12, 13, 14, 15};
  Eight t[8], u[8];
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = __builtin_shuffle(v[2 * k], v[2 * k + 1], unpack_low);
    t[2 * k + 1] = __builtin_shuffle(v[2 * k], v[2 * k + 1], unpack_high);
  }
  for (int k = 0; k < 2; ++k) {
    u[4 * k] = __builtin_shuffle(t[4 * k], t[4 * k + 2], pairs_low);
    u[4 * k + 1] = __builtin_shuffle(t[4 * k], t[4 * k + 2], pairs_high);
    u[4 * k + 2] = __builtin_shuffle(t[4 * k + 1], t[4 * k + 3], pairs_low);
    u[4 * k + 3] = __builtin_shuffle(t[4 * k + 1], t[4 * k + 3], pairs_high);
  }
  for (int k = 0; k < 4; ++k) {
    v[k] = __builtin_shuffle(u[k], u[k + 4], halves_low);
    v[k + 4] = __builtin_shuffle(u[k], u[k + 4], halves_high);
  }
}
#else
#define OB_BLOCK_TRANSPOSE 0
#endif

// One tile of rows [first, first + count) of a call.
template <typename Drift>
OB_INLINE void run_tile(const Call& call, std::int64_t first, std::int64_t count, Scratch& scratch) {
  const Layout& layout = *call.layout;
  const std::int64_t width = layout.width;
  const std::int64_t stride = call.tile_rows;  // between planar columns
  const std::int64_t chunks = (count + kLanes - 1) / kLanes;
  const std::int64_t lanes = chunks * kLanes;  // rows computed: the live ones and padding up to a chunk
  const float s = call.s, sigma = call.sigma, inverse_s = call.inverse_s;
  float* __restrict mean = scratch.mean.data();
  float* __restrict result = scratch.result.data();
  float* __restrict uniform = scratch.uniform.data();
  float* __restrict normal = scratch.normal.data();
  // 1. means, planar (padding rows 0)
  const float* z = call.z + first * width;
  const Drift* drift = call.drift != nullptr ? static_cast<const Drift*>(call.drift) + first * width : nullptr;
  std::int64_t blocked_rows = 0, blocked_columns = 0;  // the part done in 8 x 8 blocks
#if OB_BLOCK_TRANSPOSE
  blocked_rows = count - count % 8;
  blocked_columns = width - width % 8;
  for (std::int64_t r = 0; r < blocked_rows; r += 8) {
    for (std::int64_t c = 0; c < blocked_columns; c += 8) {
      Eight block[8];
      for (int i = 0; i < 8; ++i) {
        const std::int64_t at = (r + i) * width + c;
        Eight step_part = {0, 0, 0, 0, 0, 0, 0, 0};
        if constexpr (std::is_same<Drift, float>::value) {
          if (drift != nullptr) step_part = load_eight(drift + at);
        } else if (drift != nullptr) {
          alignas(32) float widened[8];
          for (int j = 0; j < 8; ++j) widened[j] = load(drift, at + j);
          step_part = load_eight(widened);
        }
        block[i] = load_eight(z + at) + s * step_part;  // draw_mean's operations, 8 columns at a time
      }
      transpose_eight(block);
      for (int j = 0; j < 8; ++j) store_eight(mean + (c + j) * stride + r, block[j]);
    }
  }
#endif
  for (std::int64_t r = 0; r < count; ++r) {
    const std::int64_t from = r < blocked_rows ? blocked_columns : 0;
    for (std::int64_t c = from; c < width; ++c) mean[c * stride + r] = draw_mean(z, drift, r * width + c, s);
  }
  for (std::int64_t r = count; r < lanes; ++r) {
    for (std::int64_t c = 0; c < width; ++c) mean[c * stride + r] = 0.0f;
  }
  // 2. uniforms and normals, planar
  const philox::Key key = philox::make_key(call.address.seed);
  const std::uint64_t first_row = call.address.row_offset + static_cast<std::uint64_t>(first);
  std::uint32_t* __restrict words = scratch.words.data();
  if (!call.uniform_blocks.empty()) {
    const std::int64_t count_blocks = static_cast<std::int64_t>(call.uniform_blocks.size()) * stride;
    fill_words(words, call.uniform_block_row.data(), call.uniform_block_column.data(), count_blocks, first_row, key,
               call.address.step, kStreamFinalUniform);
    for (std::size_t k = 0; k < call.uniform_blocks.size(); ++k) {
      const std::int64_t block = call.uniform_blocks[k];
      for (std::int64_t j = 0; j < 4 && 4 * block + j < width; ++j) {
        const std::uint32_t* __restrict w = words + j * count_blocks + static_cast<std::int64_t>(k) * stride;
        float* __restrict column = uniform + (4 * block + j) * stride;
        for (std::int64_t r = 0; r < lanes; r += kLanes) {
          for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE { column[r + i] = philox::uniform_from_word(w[r + i]); });
        }
      }
    }
  }
  if (!call.normal_blocks.empty()) {
    const std::int64_t count_blocks = static_cast<std::int64_t>(call.normal_blocks.size()) * stride;
    fill_words(words, call.normal_block_row.data(), call.normal_block_column.data(), count_blocks, first_row, key,
               call.address.step, kStreamStep);
    for (std::size_t k = 0; k < call.normal_blocks.size(); ++k) {
      const std::int64_t block = call.normal_blocks[k];
      for (std::int64_t pair = 0; pair < 4 && 4 * block + pair < width; pair += 2) {
        // Columns 2j and 2j + 1 from words 2j and 2j + 1 of the block (an odd width's last column
        // pairs with the word of the virtual column `width`).
        const std::uint32_t* __restrict w_a = words + pair * count_blocks + static_cast<std::int64_t>(k) * stride;
        const std::uint32_t* __restrict w_b = w_a + count_blocks;
        const bool has_odd = 4 * block + pair + 1 < width;
        float* __restrict even = normal + (4 * block + pair) * stride;
        float* __restrict odd = even + stride;  // written only when has_odd
        for (std::int64_t r = 0; r < lanes; r += kLanes) {
          alignas(64) float cosine[kLanes], sine[kLanes];
          for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE {
            philox::box_muller(philox::uniform_from_word(w_a[r + i]), philox::uniform_from_word(w_b[r + i]), &cosine[i], &sine[i]);
          });
          for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE { even[r + i] = cosine[i]; });
          if (has_odd) {
            for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE { odd[r + i] = sine[i]; });
          }
        }
      }
    }
  }
  // 3. the draws, run by run
  const float* __restrict low = layout.low.data();
  const float* __restrict high = layout.high.data();
  for (const Run& run : layout.runs) {
    switch (run.kind) {
      case pm::kReal:
        for (std::int64_t c = run.begin; c < run.end; ++c) {
          const float* __restrict m = mean + c * stride;
          const float* __restrict n = normal + c * stride;
          float* __restrict x = result + c * stride;
          for (std::int64_t r = 0; r < lanes; r += kLanes) {
            for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE { x[r + i] = m[r + i] + sigma * n[r + i]; });
          }
        }
        break;
      case pm::kInterval:
      case pm::kHalfLineLower:
      case pm::kHalfLineUpper:
        for (std::int64_t c = run.begin; c < run.end; ++c) {
          const float* __restrict m = mean + c * stride;
          const float* __restrict v = uniform + c * stride;
          float* __restrict x = result + c * stride;
          const float a = run.kind == pm::kHalfLineUpper ? -INFINITY : low[c];
          const float b = run.kind == pm::kHalfLineLower ? INFINITY : high[c];
          if (run.kind == pm::kInterval) {
            truncated_normal_column<pm::kInterval>(m, v, x, lanes, sigma, a, b, scratch.truncated);
          } else if (run.kind == pm::kHalfLineLower) {
            truncated_normal_column<pm::kHalfLineLower>(m, v, x, lanes, sigma, a, b, scratch.truncated);
          } else {
            truncated_normal_column<pm::kHalfLineUpper>(m, v, x, lanes, sigma, a, b, scratch.truncated);
          }
        }
        break;
      case pm::kBinary:
        for (std::int64_t c = run.begin; c < run.end; ++c) {
          const float* __restrict m = mean + c * stride;
          const float* __restrict v = uniform + c * stride;
          float* __restrict x = result + c * stride;
          for (std::int64_t r = 0; r < lanes; r += kLanes) {
            for_lanes([&](std::int64_t i) OB_LAMBDA_INLINE {
              x[r + i] = v[r + i] <= pm::binary_mean(m[r + i], inverse_s) ? 1.0f : 0.0f;
            });
          }
        }
        break;
      case pm::kLattice:
        for (std::int64_t c = run.begin; c < run.end; ++c) {
          for (std::int64_t r = 0; r < lanes; r += kLanes) {
            lattice_chunk(layout, c, call, mean + c * stride + r, uniform + c * stride + r, result + c * stride + r,
                          std::min(kLanes, count - r), scratch.weights.data());
          }
        }
        break;
      case pm::kCategorical:
        for (std::int64_t g = run.first_group; g < run.end_group; ++g) {
          const Group group = layout.groups[static_cast<std::size_t>(g)];
          for (std::int64_t r = 0; r < lanes; r += kLanes) {
            categorical_chunk(group, stride, mean + group.offset * stride + r, uniform + group.offset * stride + r,
                              result + group.offset * stride + r, inverse_s, scratch.weights.data());
          }
        }
        break;
      case pm::kSphere: {
        const Group group = layout.groups[static_cast<std::size_t>(run.first_group)];
        float* __restrict row_mean = scratch.row_mean.data();
        float* __restrict row_out = scratch.row_out.data();
        for (std::int64_t r = 0; r < count; ++r) {
          const RowNoise noise{call.address.seed, call.address.step, first_row + static_cast<std::uint64_t>(r)};
          for (std::int64_t c = 0; c < group.width; ++c) row_mean[c] = mean[(group.offset + c) * stride + r];
          sphere_draw(row_mean, row_out, group.offset, group.width, s, noise, scratch.buffer);
          for (std::int64_t c = 0; c < group.width; ++c) result[(group.offset + c) * stride + r] = row_out[c];
        }
        break;
      }
      default:
        break;
    }
  }
  // 4. row-major out
  float* out = call.out + first * width;
#if OB_BLOCK_TRANSPOSE
  for (std::int64_t r = 0; r < blocked_rows; r += 8) {
    for (std::int64_t c = 0; c < blocked_columns; c += 8) {
      Eight block[8];
      for (int j = 0; j < 8; ++j) block[j] = load_eight(result + (c + j) * stride + r);
      transpose_eight(block);
      for (int i = 0; i < 8; ++i) store_eight(out + (r + i) * width + c, block[i]);
    }
  }
#endif
  for (std::int64_t r = 0; r < count; ++r) {
    const std::int64_t from = r < blocked_rows ? blocked_columns : 0;
    for (std::int64_t c = from; c < width; ++c) out[r * width + c] = result[c * stride + r];
  }
}

OB_ISA_CLONES void final_tile_float(const Call& call, std::int64_t first, std::int64_t count, Scratch& scratch) {
  run_tile<float>(call, first, count, scratch);
}
OB_ISA_CLONES void final_tile_bfloat16(const Call& call, std::int64_t first, std::int64_t count, Scratch& scratch) {
  run_tile<std::uint16_t>(call, first, count, scratch);
}

using TileFunction = void (*)(const Call&, std::int64_t, std::int64_t, Scratch&);

// Which column blocks need which stream, and the tile shape.
void plan(Call& call) {
  const Layout& layout = *call.layout;
  const std::int64_t width = layout.width;
  const std::int64_t blocks = (width + 3) / 4;
  std::vector<char> uniform_block(static_cast<std::size_t>(blocks), 0), normal_block(static_cast<std::size_t>(blocks), 0);
  for (const Run& run : layout.runs) {
    if (run.kind == pm::kReal) {
      for (std::int64_t c = run.begin; c < run.end; ++c) normal_block[static_cast<std::size_t>(c / 4)] = 1;
    } else if (run.kind == pm::kCategorical) {
      for (std::int64_t g = run.first_group; g < run.end_group; ++g) {
        const Group group = layout.groups[static_cast<std::size_t>(g)];
        uniform_block[static_cast<std::size_t>(group.offset / 4)] = 1;
        call.widest_group = std::max(call.widest_group, group.width);
      }
    } else if (run.kind == pm::kSphere) {
      call.widest_group = std::max(call.widest_group, run.end - run.begin);  // its own noise, row by row
    } else {
      for (std::int64_t c = run.begin; c < run.end; ++c) uniform_block[static_cast<std::size_t>(c / 4)] = 1;
    }
  }
  for (std::int64_t b = 0; b < blocks; ++b) {
    if (uniform_block[static_cast<std::size_t>(b)]) call.uniform_blocks.push_back(static_cast<std::uint32_t>(b));
    if (normal_block[static_cast<std::size_t>(b)]) call.normal_blocks.push_back(static_cast<std::uint32_t>(b));
  }
  // A multiple of kLanes rows, about kTileFloats floats per planar buffer, no more than the call needs.
  std::int64_t tile = std::max<std::int64_t>(1, kTileFloats / width / kLanes) * kLanes;
  tile = std::min(tile, (call.rows + kLanes - 1) / kLanes * kLanes);
  call.tile_rows = tile;
  auto blocks_of = [tile](const std::vector<std::uint32_t>& list, std::vector<std::uint32_t>& row, std::vector<std::uint32_t>& column) {
    for (const std::uint32_t block : list) {
      for (std::int64_t r = 0; r < tile; ++r) {
        row.push_back(static_cast<std::uint32_t>(r));
        column.push_back(block);
      }
    }
  };
  blocks_of(call.uniform_blocks, call.uniform_block_row, call.uniform_block_column);
  blocks_of(call.normal_blocks, call.normal_block_row, call.normal_block_column);
}

}  // namespace

void final_step(const Layout& layout, const float* z, const void* drift, Storage drift_storage,
                float* out, std::int64_t rows, double remaining, const NoiseAddress& address,
                int threads) {
  if (rows <= 0 || layout.width <= 0) return;
  if (layout.width > kWidestTiled) {
    final_step_scalar(layout, z, drift, drift_storage, out, rows, remaining, address, threads);
    return;
  }
  Call call;
  call.layout = &layout;
  call.rows = rows;
  call.z = z;
  call.drift = drift;
  call.out = out;
  call.address = address;
  call.s = static_cast<float>(remaining);
  call.sigma = static_cast<float>(std::sqrt(remaining));
  call.inverse_s = static_cast<float>(1.0 / remaining);
  plan(call);
  const TileFunction tile = drift_storage == Storage::kBFloat16 ? final_tile_bfloat16 : final_tile_float;
  for_tiles<Scratch>(call, rows, call.tile_rows, threads, tile);
}

void final_step_scalar(const Layout& layout, const float* z, const void* drift, Storage drift_storage,
                       float* out, std::int64_t rows, double remaining, const NoiseAddress& address,
                       int threads) {
  if (rows <= 0 || layout.width <= 0) return;
  if (drift_storage == Storage::kBFloat16) {
    scalar_rows(layout, z, static_cast<const std::uint16_t*>(drift), out, rows, remaining, address, threads);
  } else {
    scalar_rows(layout, z, static_cast<const float*>(drift), out, rows, remaining, address, threads);
  }
}

}  // namespace cpu
}  // namespace omegabridge
