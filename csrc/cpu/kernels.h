// The fused CPU kernels: one call runs an op over every row and every segment of a layout.
//
// Memory: z (or x) and the drift are read once and the outputs written once; the noise is
// generated in a small per-thread tile that stays in L1. Threads (OpenMP) split the rows;
// every value depends only on its own row's inputs and its noise address, so the result is
// the same for any thread count and any split of the rows into calls (row_offset).
#pragma once

#include <cstdint>

#include "layout.h"

namespace omegabridge {
namespace cpu {

// Element type of an input the caller may give in reduced precision (drift f, data x).
enum class Storage : std::int32_t { kFloat32 = 0, kBFloat16 = 1 };

// Where a call's noise comes from (docs/noise.md): key seed, counter (step, global row).
struct NoiseAddress {
  std::uint64_t seed;
  std::uint32_t step;
  std::uint64_t row_offset;  // global index of the call's first row
};

// m(z, s) with s per row (remaining[rows]).
void posterior_mean(const Layout& layout, const float* z, const float* remaining, float* out,
                    std::int64_t rows, int threads);

// out = z + db [(m(z, s) - z)/s + f] + sqrt(db) xi (xi from stream 0); out may alias z;
// drift may be null (f = 0).
void step(const Layout& layout, const float* z, const void* drift, Storage drift_storage,
          float* out, std::int64_t rows, double remaining, double increment,
          const NoiseAddress& address, int threads);

// The bridge solver's step (omegabridge/solvers.py): prediction = m(z, s) + s f and
// out = z + fraction (prediction + weight (prediction - previous) - z) + spread[c] xi (xi from
// stream 0, as the step's). out may alias z; previous (null: no multistep term) and drift may
// be null; prediction aliases no input.
void bridge_step(const Layout& layout, const float* z, const void* drift, Storage drift_storage,
                 const float* previous, float* out, float* prediction, std::int64_t rows, double remaining,
                 double fraction, double weight, const float* spread, const NoiseAddress& address, int threads);

// z_t = c x + sigma eps (eps from stream 0x8000) and target = (x - m(z_t, s))/s, with c,
// sigma, s per row.
void bridge_target(const Layout& layout, const void* x, Storage x_storage,
                   const float* mean_scale, const float* noise_scale, const float* remaining,
                   float* z_t, float* target, std::int64_t rows, const NoiseAddress& address,
                   int threads);

// The exact last step: a draw from N(z + s f, s I) restricted to the domain.
void final_step(const Layout& layout, const float* z, const void* drift, Storage drift_storage,
                float* out, std::int64_t rows, double remaining, const NoiseAddress& address,
                int threads);

// The same draws row by row with the scalar formulas of posterior.h: the definition final_step
// is tested against bit for bit (tests/test_cpu_kernels.py), many times slower.
void final_step_scalar(const Layout& layout, const float* z, const void* drift, Storage drift_storage,
                       float* out, std::int64_t rows, double remaining, const NoiseAddress& address,
                       int threads);

// Which instruction set the vectorised kernels run with on this CPU ("avx512", "avx2",
// "baseline").
const char* simd_level();

}  // namespace cpu
}  // namespace omegabridge
