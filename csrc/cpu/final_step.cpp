// The exact last step on CPU: per row, a draw from N(z + s f, s I) restricted to every factor
// of the layout (bridge-math.md section 3), with the uniforms and normals of the noise
// contract (docs/noise.md) at step `address.step`. It runs once per sample, so it is plain
// scalar code, parallel over rows; every output lies in the domain exactly (canonical
// lattice points, exact one-hot vectors, values clamped into [low, high]).
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

namespace omegabridge {
namespace cpu {

namespace {

namespace pm = omegabridge::posterior;

using philox::kStreamFinalUniform;
using philox::kStreamSphereDirection;
using philox::kStreamStep;
using philox::kStreamVonMisesFirst;
constexpr int kVonMisesAttempts = 64;

struct RowNoise {
  std::uint64_t seed;
  std::uint32_t step;
  std::uint64_t row;
  float uniform(std::int64_t column, std::uint32_t stream) const {
    return philox::uniform(seed, step, row, static_cast<std::uint64_t>(column), stream);
  }
  float normal(std::int64_t column, std::uint32_t stream) const {
    return philox::box_muller_normal(seed, step, row, static_cast<std::uint64_t>(column), stream);
  }
};

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

// Where many points carry weight, Euler-Maclaurin partial sums (pm::lattice_euler_maclaurin_draw);
// elsewhere the inverse CDF over a window of at most kLatticeWindowLimit points on either side of
// the nearest (all that carry weight, or, far outside, all but < e^-25 of it). Bounded cost whatever K.
float lattice_draw(float mean, float sigma, float inverse_s, double low, double step,
                   std::int64_t points, float u, std::vector<float>& weights) {
  const float y = static_cast<float>((static_cast<double>(mean) - low) / step);
  const float sigma_points = static_cast<float>(sigma / step);
  const float last_point = static_cast<float>(points - 1);
  if (pm::lattice_uses_euler_maclaurin(y, last_point, sigma_points) != 0.0f) {
    const float k = pm::lattice_euler_maclaurin_draw(y, sigma_points, last_point, u);
    return pm::lattice_point(low, step, static_cast<std::int64_t>(k));
  }
  const std::int64_t nearest = pm::lattice_nearest(mean, low, step, points);
  const std::int64_t radius = std::min<std::int64_t>(pm::lattice_radius(sigma, step, points),
                                                     static_cast<std::int64_t>(pm::kLatticeWindowLimit));
  const std::int64_t first = std::max<std::int64_t>(0, nearest - radius);
  const std::int64_t last = std::min<std::int64_t>(points - 1, nearest + radius);
  const float x_near = pm::lattice_point(low, step, nearest);
  const float delta_near = x_near - mean;
  weights.resize(static_cast<std::size_t>(last - first + 1));
  for (std::int64_t k = first; k <= last; ++k) {
    const float offset = pm::lattice_point(low, step, k) - x_near;
    weights[static_cast<std::size_t>(k - first)] =
        fastmath::exp(pm::lattice_logit(offset, delta_near, 0.5f * inverse_s));
  }
  const std::int64_t k = first + inverse_cdf_index(weights.data(), last - first + 1, u);
  return pm::lattice_point(low, step, k);
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

// Wood's (1994) rejection sampler for vMF(mean/|mean|, |mean|/s), as reference._von_mises_fisher:
// Beta((d-1)/2, (d-1)/2) as A/(A+B) with A, B sums of d-1 squared normals.
void sphere_draw(const float* mean, float* out, std::int64_t offset, std::int64_t d, float s,
                 const RowNoise& noise, std::vector<float>& direction) {
  direction.resize(static_cast<std::size_t>(d));
  float squared = 0.0f;
  for (std::int64_t c = 0; c < d; ++c) squared += mean[c] * mean[c];
  const float norm = std::sqrt(squared);
  for (std::int64_t c = 0; c < d; ++c) {
    direction[static_cast<std::size_t>(c)] = norm > 0.0f ? mean[c] / norm : (c == 0 ? 1.0f : 0.0f);
  }
  const float kappa = norm / s;
  const float dm1 = static_cast<float>(d - 1);
  const float b = dm1 / (2.0f * kappa + std::sqrt(4.0f * kappa * kappa + dm1 * dm1));
  const float one_minus_x0 = 2.0f * b / (1.0f + b);
  const float x0 = 1.0f - one_minus_x0;
  const float log_term = fastmath::log(one_minus_x0) + special::log1p(x0);
  float one_minus_w = 1.0f;
  for (int attempt = 0; attempt < kVonMisesAttempts; ++attempt) {
    const std::uint32_t stream = kStreamVonMisesFirst + 3u * static_cast<std::uint32_t>(attempt);
    float chi_a = 0.0f, chi_b = 0.0f;
    for (std::int64_t c = 0; c < d - 1; ++c) {
      const float a = noise.normal(offset + c, stream);
      const float bb = noise.normal(offset + c, stream + 1);
      chi_a += a * a;
      chi_b += bb * bb;
    }
    const float uniform = noise.uniform(offset, stream + 2);
    const float beta_draw = chi_a / (chi_a + chi_b);
    const float candidate = 2.0f * b * beta_draw / (1.0f - (1.0f - b) * beta_draw);  // 1 - W
    const float w = 1.0f - candidate;
    const float log_ratio = fastmath::log(candidate + w * one_minus_x0) - log_term;
    if (kappa * (one_minus_x0 - candidate) + dm1 * log_ratio >= fastmath::log(uniform)) {
      one_minus_w = candidate;
      break;
    }
  }
  const float w = 1.0f - one_minus_w;
  float along = 0.0f;
  for (std::int64_t c = 0; c < d; ++c) {
    out[c] = noise.normal(offset + c, kStreamSphereDirection);
    along += out[c] * direction[static_cast<std::size_t>(c)];
  }
  float tangent_squared = 0.0f;
  for (std::int64_t c = 0; c < d; ++c) {
    out[c] -= along * direction[static_cast<std::size_t>(c)];
    tangent_squared += out[c] * out[c];
  }
  const float tangent_scale = 1.0f / std::max(std::sqrt(tangent_squared), special::kTiny);
  const float spread = std::sqrt(std::max(one_minus_w * (1.0f + w), 0.0f));
  float sample_squared = 0.0f;
  for (std::int64_t c = 0; c < d; ++c) {
    out[c] = w * direction[static_cast<std::size_t>(c)] + spread * tangent_scale * out[c];
    sample_squared += out[c] * out[c];
  }
  const float sample_scale = 1.0f / std::sqrt(sample_squared);
  for (std::int64_t c = 0; c < d; ++c) out[c] *= sample_scale;
}

template <typename Drift>
void final_rows(const Layout& layout, const float* z, const Drift* drift, float* out,
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
      const float* z_row = z + i * width;
      float* out_row = out + i * width;
      for (std::int64_t c = 0; c < width; ++c) {
        float f = 0.0f;
        if (drift != nullptr) {
          if constexpr (std::is_same<Drift, std::uint16_t>::value) {
            f = float_of_bfloat16(drift[i * width + c]);
          } else {
            f = drift[i * width + c];
          }
        }
        mean[static_cast<std::size_t>(c)] = z_row[c] + s * f;
      }
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
              out_row[c] = lattice_draw(m, sigma, inverse_s, layout.lattice_low[c], layout.lattice_step[c],
                                        layout.lattice_points[c], noise.uniform(c, kStreamFinalUniform), buffer);
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

}  // namespace

void final_step(const Layout& layout, const float* z, const void* drift, Storage drift_storage,
                float* out, std::int64_t rows, double remaining, const NoiseAddress& address,
                int threads) {
  if (rows <= 0 || layout.width <= 0) return;
  if (drift_storage == Storage::kBFloat16) {
    final_rows(layout, z, static_cast<const std::uint16_t*>(drift), out, rows, remaining, address, threads);
  } else {
    final_rows(layout, z, static_cast<const float*>(drift), out, rows, remaining, address, threads);
  }
}

}  // namespace cpu
}  // namespace omegabridge
