// Host entry points of the CUDA kernels (csrc/cuda/kernels.cu). Plain C++ with no CUDA or
// pybind11 header, so the bindings (pybridge/cuda_module.cpp) compile with the host compiler
// and the .cu file never sees pybind11. Every function enqueues one kernel on `stream` (a
// cudaStream_t passed as void*; nullptr is the legacy default stream), does not synchronise,
// and returns the status of the CUDA calls it made: on failure the call that failed and
// cudaGetErrorString of its error.
#pragma once

#include <cstdint>
#include <string>

#include "device_layout.h"

namespace omegabridge {
namespace cuda {

struct Status {
  std::string call;     // empty when every CUDA call succeeded
  std::string message;
  bool ok() const { return call.empty(); }
};

// Element type of an input the caller may give in reduced precision (drift f, data x).
enum class Storage : std::int32_t { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };

// Per-step scalars of the Euler step, rounded to float from the double schedule exactly as the
// CPU kernels round them: s, 1/s, sqrt(s), db, sqrt(db).
struct StepScalars {
  float remaining, inverse_remaining, sigma, increment, sqrt_increment;
};
constexpr int kStepScalarCount = 5;
static_assert(sizeof(StepScalars) == kStepScalarCount * sizeof(float), "StepScalars is 5 floats");

// Where a call's noise comes from (docs/noise.md).
struct NoiseAddress {
  std::uint64_t seed;
  std::uint32_t step;
  std::uint64_t row_offset;
};

// cudaGetDeviceCount.
Status device_count(int* count);

// m(z, s) with s per row (remaining[rows], device float32).
Status posterior_mean(const DeviceLayout& layout, const float* z, const float* remaining, float* out,
                      std::int64_t rows, void* stream);

// out = z + db [(m(z, s) - z)/s + f] + sqrt(db) xi; out may alias z; drift may be null.
// With schedule == nullptr the step is (scalars, address.step); otherwise the kernel reads the
// step index k from the device (*counter) and its scalars from schedule[k] (device memory), so
// one captured launch replays every step of a CUDA graph. The schedule has schedule_steps rows: a
// counter outside [0, schedule_steps) makes every output NaN, as an invalid s does, rather than
// reading past the schedule.
Status step(const DeviceLayout& layout, const float* z, const void* drift, Storage drift_storage,
            float* out, std::int64_t rows, const StepScalars& scalars, const StepScalars* schedule,
            std::int64_t schedule_steps, const std::int64_t* counter, const NoiseAddress& address, void* stream);

// The bridge solver's step (omegabridge/solvers.py): prediction = m(z, s) + s f and
// out = z + fraction (prediction + weight (prediction - previous) - z) + spread[c] xi (stream 0,
// as the step's); scalars as the step's (increment unused). out may alias z; drift and previous
// (null: no multistep term) may be null; prediction aliases no input; spread has width floats.
Status bridge_step(const DeviceLayout& layout, const float* z, const void* drift, Storage drift_storage,
                   const float* previous, float* out, float* prediction, std::int64_t rows, const StepScalars& scalars,
                   float fraction, float weight, const float* spread, const NoiseAddress& address, void* stream);

// z_t = c x + sigma eps (stream 0x8000), target = (x - m(z_t, s))/s, c, sigma, s per row.
Status bridge_target(const DeviceLayout& layout, const void* x, Storage x_storage,
                     const float* mean_scale, const float* noise_scale, const float* remaining,
                     float* z_t, float* target, std::int64_t rows, const NoiseAddress& address,
                     void* stream);

// The exact last step: a draw from N(z + s f, s I) restricted to the domain (out != z).
Status final_step(const DeviceLayout& layout, const float* z, const void* drift, Storage drift_storage,
                  float* out, std::int64_t rows, double remaining, const NoiseAddress& address,
                  void* stream);

// The contract's uniforms or normals of a (rows, width) block of stream `noise_stream`.
Status noise(float* out, bool normal, std::int64_t rows, std::int64_t width, const NoiseAddress& address,
             std::uint32_t noise_stream, void* stream);

}  // namespace cuda
}  // namespace omegabridge
