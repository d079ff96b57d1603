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
using philox::kStreamStep;
using philox::RowNoise;

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
