// The fused CUDA kernels: the Euler step, the training target, the posterior mean and the exact
// last step over every row and every segment of a layout, one launch per call.
//
// Work: a thread takes one work item (device_layout.h) of one row. A block item covers the
// elementwise columns of one Philox block (4 columns): one Philox call gives its four normals,
// z and f come in as one 16-byte load (8 bytes for bfloat16/float16 f) where the row is
// aligned, else four scalar loads; all loads are issued before the math, so several are in
// flight per thread. A group item (categorical group, sphere) is one thread looping over the
// group's K columns (a max pass, a sum pass and a write pass for the softmax): fine for the
// K of tabular data; a group of thousands of classes is serial work for one thread (see
// docs/cuda.md). The per-element math is the shared __host__ __device__ code of
// csrc/include/omegabridge (unchanged), so the CPU and CUDA kernels compute the same formulas.
//
// Semantics follow csrc/cpu/kernels.cpp and csrc/cpu/final_step.cpp (noise addresses, sums in
// the same order). State is float32; f and x may be float32, bfloat16 or float16.
#if defined(OB_CUDA_HOST_EMULATION)
#include "host_emulation.h"  // tests only: these kernels compiled for the CPU (see that file)
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#include <cmath>
#include <cstdint>

#include "launch.h"
#include "omegabridge/philox.h"
#include "omegabridge/posterior.h"

namespace omegabridge {
namespace cuda {

namespace {

namespace pm = omegabridge::posterior;

using philox::kStreamFinalUniform;
using philox::kStreamStep;
using philox::kStreamTrain;
constexpr int kThreads = 256;

enum class Op { kMean, kStep, kBridgeStep, kTarget };

// Everything one launch needs (passed by value: a few hundred bytes of kernel parameters).
struct Args {
  DeviceLayout layout;
  const float* z;          // state (mean, step, final)
  const void* input;       // drift f (step, final; may be null) or data x (target)
  float* out;              // mean, new state, z_t or the final draw
  float* target;           // target only; the data prediction x_hat (bridge step)
  const float* previous;   // bridge step: the last step's x_hat (null: no multistep term)
  const float* spread;     // bridge step: the noise's standard deviation per column
  float fraction, weight;  // bridge step: delta / s and the multistep weight
  const float* remaining_rows;  // per-row s (mean, target)
  const float* mean_scale;
  const float* noise_scale;
  StepScalars scalars;               // the step's scalars when schedule is null
  const StepScalars* schedule;       // device schedule, read at *counter (CUDA graphs)
  std::int64_t schedule_steps;       // its rows
  const std::int64_t* counter;
  NoiseAddress address;
  philox::RoundKeys keys;  // of address.seed, set by the launchers
  std::int64_t rows;
  bool aligned;  // rows start 16-byte aligned (width % 4 == 0, aligned bases): vector loads
};

// ---------------------------------------------------------------------------------------
// Loads and stores
// ---------------------------------------------------------------------------------------
template <int kStorage>
__device__ __forceinline__ float load_one(const void* data, std::int64_t i) {
  if constexpr (kStorage == 0) {
    return __ldg(static_cast<const float*>(data) + i);
  } else if constexpr (kStorage == 1) {
    return float_of_bfloat16(__ldg(static_cast<const unsigned short*>(data) + i));
  } else {
    return __half2float(__ushort_as_half(__ldg(static_cast<const unsigned short*>(data) + i)));
  }
}

__device__ __forceinline__ float widen(unsigned short bits, int storage) {
  return storage == 1 ? float_of_bfloat16(bits) : __half2float(__ushort_as_half(bits));
}

// Columns i .. i + 3 (those in `mask`) of a buffer: one 16-byte (float) or 8-byte (16-bit) load
// when the whole block is there and aligned.
template <int kStorage>
__device__ __forceinline__ void load_four(const void* data, std::int64_t i, int mask, bool vector, float v[4]) {
  if (vector && mask == 0xF) {
    if constexpr (kStorage == 0) {
      const float4 q = __ldg(reinterpret_cast<const float4*>(static_cast<const float*>(data) + i));
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
      const uint2 q = __ldg(reinterpret_cast<const uint2*>(static_cast<const unsigned short*>(data) + i));
      v[0] = widen(static_cast<unsigned short>(q.x & 0xFFFFu), kStorage);
      v[1] = widen(static_cast<unsigned short>(q.x >> 16), kStorage);
      v[2] = widen(static_cast<unsigned short>(q.y & 0xFFFFu), kStorage);
      v[3] = widen(static_cast<unsigned short>(q.y >> 16), kStorage);
    }
    return;
  }
#pragma unroll
  for (int k = 0; k < 4; ++k) v[k] = (mask >> k) & 1 ? load_one<kStorage>(data, i + k) : 0.0f;  // rare path (unaligned rows)
}

// z may be the output of the same call (in place), so it is read without the read-only cache.
__device__ __forceinline__ void load_state(const float* z, std::int64_t i, int mask, bool vector, float v[4]) {
  if (vector && mask == 0xF) {
    const float4 q = *reinterpret_cast<const float4*>(z + i);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    return;
  }
#pragma unroll
  for (int k = 0; k < 4; ++k) v[k] = (mask >> k) & 1 ? z[i + k] : 0.0f;  // rare path (unaligned rows)
}

__device__ __forceinline__ void store_four(float* out, std::int64_t i, int mask, bool vector, const float v[4]) {
  if (vector && mask == 0xF) {
    *reinterpret_cast<float4*>(out + i) = make_float4(v[0], v[1], v[2], v[3]);
    return;
  }
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if ((mask >> k) & 1) out[i + k] = v[k];  // rare path (unaligned rows)
  }
}

// ---------------------------------------------------------------------------------------
// Noise
// ---------------------------------------------------------------------------------------
// The four normals of the Philox block holding column `column` (Box-Muller on pairs (0, 1), (2, 3)).
__device__ __forceinline__ void block_normals(const philox::RoundKeys& keys, const NoiseAddress& a, std::uint64_t row,
                                              std::int64_t column, std::uint32_t stream, float n[4]) {
  philox::Counter block = philox::make_counter(a.step, row, static_cast<std::uint64_t>(column), stream);
  philox::philox4x32_10_words(block.w[0], block.w[1], block.w[2], block.w[3], keys);
  philox::box_muller(philox::uniform_from_word(block.w[0]), philox::uniform_from_word(block.w[1]), &n[0], &n[1]);
  philox::box_muller(philox::uniform_from_word(block.w[2]), philox::uniform_from_word(block.w[3]), &n[2], &n[3]);
}

// Entry i (0..3) of a four-float array without dynamic indexing (which would put it in local memory).
__device__ __forceinline__ float pick(const float n[4], unsigned i) {
  const float low = (i & 1u) ? n[1] : n[0];
  const float high = (i & 1u) ? n[3] : n[2];
  return (i & 2u) ? high : low;
}

// ---------------------------------------------------------------------------------------
// Posterior mean of one element
// ---------------------------------------------------------------------------------------
struct Scale {
  float s, sigma, inverse_sigma, inverse_s;
};

__device__ __forceinline__ Scale scale_of(float s) {  // s > 0 finite, or NaN
  const float sigma = fastmath::square_root(s);
  return Scale{s, sigma, fastmath::divide(1.0f, sigma), fastmath::divide(1.0f, s)};
}

// m on a lattice for one element: THE one place that chooses between the lattice helpers of
// posterior.h (as csrc/cpu/kernels.cpp's lattice_mean does per run): Euler-Maclaurin where
// lattice_uses_euler_maclaurin says so (its fast branch-free form where
// lattice_euler_maclaurin_fast_holds, else the careful form), otherwise the window of at most
// kLatticeWindowLimit points on either side of the nearest point, with the weight recurrence
// w_{j+1} = w_j a b^j of the CPU kernel (three exponentials per element).
// (Parameters by value: a reference to the caller's ColumnParams would put it in local memory.)
__device__ __noinline__ float lattice_mean(ColumnParams p, double step, std::int64_t points, float v, float sigma,
                                           float inverse_s) {
  const float sigma_points = sigma * p.inverse_step;
  const float y = (v - p.low) * p.inverse_step;
  if (pm::lattice_uses_euler_maclaurin(y, p.last, sigma_points) != 0.0f) {
    if (pm::lattice_euler_maclaurin_fast_holds(y, p.last, sigma_points) != 0.0f) {
      // All four terms (the CPU kernel sums fewer where a whole run is wide; here a branch per thread would diverge).
      return pm::lattice_euler_maclaurin_fast<>(v, p.low, p.step, p.inverse_step, p.last, sigma_points,
                                                p.step / sigma);
    }
    return pm::lattice_euler_maclaurin_mean(v, p.low, p.step, p.last, sigma);
  }
  const std::int64_t window = pm::lattice_radius(sigma, step, points);
  const std::int64_t limit = static_cast<std::int64_t>(pm::kLatticeWindowLimit);
  const int radius = static_cast<int>(min(points - 1, min(window, limit)));
  float position = (v - p.low) * p.inverse_step;
  position = (position + fastmath::kRoundMagic) - fastmath::kRoundMagic;
  position = position < 0.0f ? 0.0f : (position > p.last ? p.last : position);
  const float d = p.step;
  const float delta = (p.low + position * d) - v;
  const float inverse_two_s = 0.5f * inverse_s;
  float up = 1.0f, down = 1.0f, weight_sum = 1.0f, moment = 0.0f;
  float up_ratio = fastmath::exp(pm::lattice_logit(d, delta, inverse_two_s));
  float down_ratio = fastmath::exp(pm::lattice_logit(-d, delta, inverse_two_s));
  const float decay = fastmath::exp(-d * d * inverse_s);
  for (int j = 1; j <= radius; ++j) {
    const float jf = static_cast<float>(j);
    up *= up_ratio;
    up_ratio *= decay;
    down *= down_ratio;
    down_ratio *= decay;
    const float w_up = position + jf <= p.last ? up : 0.0f;
    const float w_down = position - jf >= 0.0f ? down : 0.0f;
    weight_sum += w_up + w_down;
    moment += (jf * d) * (w_up - w_down);
  }
  return (p.low + position * d) + moment / weight_sum;  // x_n from the lattice, as the CPU kernel
}

// The kernels are compiled for every kind set (kAllKinds) and, for layouts of one kind (an
// element-wise kind or categorical groups), for that kind alone (kKinds = its bit): then the kind
// is a compile-time constant, the switch below and the kernel's group code (or, for groups, its
// block-item code and the sphere's pass) vanish, and a real column reads no parameters.
constexpr unsigned kAllKinds = 0xFFu;
constexpr unsigned kGroupKinds = (1u << pm::kCategorical) | (1u << pm::kSphere);

// Whether a work item is a block item: a compile-time constant for a kernel of group kinds only
// (a layout of categorical groups alone has no element-wise column, so no block item).
template <unsigned kKinds>
__device__ __forceinline__ bool is_block_item(const WorkItem& item) {
  if constexpr ((kKinds & ~kGroupKinds) == 0) {
    return false;
  } else {
    return item.kind == kBlockItem;
  }
}

// Whether a group is categorical (else a sphere): a compile-time constant where the kernel's kind
// set holds one group kind, so that the other's pass is not compiled in.
template <unsigned kKinds>
__device__ __forceinline__ bool is_categorical(std::int32_t kind) {
  if constexpr ((kKinds & kGroupKinds) == (1u << pm::kCategorical)) {
    return true;
  } else if constexpr ((kKinds & kGroupKinds) == (1u << pm::kSphere)) {
    return false;
  } else {
    return kind == pm::kCategorical;
  }
}

template <unsigned kKinds>
__host__ __device__ constexpr int single_kind() {
  for (int kind = 0; kind < 8; ++kind) {
    if (kKinds == (1u << kind)) return kind;
  }
  return -1;
}

template <unsigned kKinds = kAllKinds>
__device__ __forceinline__ float element_mean(const DeviceLayout& layout, std::int64_t c, float v, const Scale& k) {
  if constexpr (kKinds == (1u << pm::kReal)) {
    return v;
  }
  const ColumnParams p = layout.column[c];
  constexpr int kOnly = single_kind<kKinds>();
  const int kind = kOnly >= 0 ? kOnly : p.kind;
  if (!(k.s == k.s)) return kind == pm::kReal ? v : NAN;  // an invalid per-row s (checked_remaining)
  switch (kind) {
    case pm::kInterval:
      return pm::interval_mean(v, p.low, p.high, k.sigma);
    case pm::kHalfLineLower:
      return pm::lower_halfline_mean(v, p.low, k.sigma, k.inverse_sigma);
    case pm::kHalfLineUpper:
      return pm::upper_halfline_mean(v, p.high, k.sigma, k.inverse_sigma);
    case pm::kBinary:
      return pm::binary_mean(v, k.inverse_s);
    case pm::kLattice:
      return lattice_mean(p, layout.lattice_step[c], layout.lattice_points[c], v, k.sigma, k.inverse_s);
    default:
      return v;  // kReal
  }
}

// ---------------------------------------------------------------------------------------
// Groups: softmax(v / s) of a categorical group, A_d(kappa) v/|v| of a sphere
// ---------------------------------------------------------------------------------------
// m_c = factor_a * exp((v_c - shift) * inverse_s) for a categorical group, v_c * factor_a for a
// sphere; the factors from one or two passes over the group's values `values[offset + c]`.
struct GroupMean {
  bool categorical;
  float shift, factor, inverse_s;
  __device__ __forceinline__ float operator()(float v) const {
    return categorical ? fastmath::exp((v - shift) * inverse_s) * factor : v * factor;
  }
};

// `values` may be the call's own output (the target's z_t), so it is read with plain loads.
template <unsigned kKinds>
__device__ __noinline__ GroupMean group_mean(const float* values, std::int64_t offset, std::int64_t width,
                                             std::int32_t kind, float s, float inverse_s) {
  const std::int64_t end = offset + width;
  if (!is_categorical<kKinds>(kind)) {
    float squared = 0.0f;
    for (std::int64_t c = offset; c < end; ++c) squared += values[c] * values[c];
    const float kappa = sqrtf(squared) / s;
    const float factor = 1.0f / (s * special::bessel_ratio_denominator(kappa, static_cast<float>(width)));
    return GroupMean{false, 0.0f, factor, inverse_s};
  }
  float top = values[offset];
  for (std::int64_t c = offset + 1; c < end; ++c) top = fmaxf(top, values[c]);
  // Four partial sums in the CPU kernel's order (columns offset + 4i + k into partial k, the rest into 0).
  float partial[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  std::int64_t c = offset;
  for (; c + 4 <= end; c += 4) {
#pragma unroll
    for (int k = 0; k < 4; ++k) partial[k] += fastmath::exp((values[c + k] - top) * inverse_s);
  }
  for (; c < end; ++c) partial[0] += fastmath::exp((values[c] - top) * inverse_s);
  const float factor = 1.0f / ((partial[0] + partial[1]) + (partial[2] + partial[3]));
  return GroupMean{true, top, factor, inverse_s};
}

// A per-row s that is not a positive normal float (0 < s < inf, and not subnormal: no schedule
// leaves 1e-38 of time, and the approximate reciprocal flushes it to 0) gives NaN wherever m
// depends on s, as the Triton kernels do: on a GPU dispatch does not check s on the host (that
// would synchronise every call). One unsigned compare on the bits.
__device__ __forceinline__ float checked_remaining(float s) {
  return bits_of(s) - 0x00800000u < 0x7F000000u ? s : NAN;
}

// ---------------------------------------------------------------------------------------
// Step, target and mean: one kernel per (op, input storage)
// ---------------------------------------------------------------------------------------
// The bridge solver's step on one block of four columns: x_hat = m + s f, x_hat' = x_hat + w (x_hat -
// previous), out = z + fraction (x_hat' - z) + spread xi. The means come first and the drift, the
// previous prediction and the noise are loaded after them: live across the means they would spill.
template <int kStorage, unsigned kKinds>
__device__ __forceinline__ void bridge_block_item(const Args& a, const WorkItem& item, std::int64_t row, const Scale& k,
                                                  std::uint32_t step) {
  const std::int64_t base = row * a.layout.width + item.offset;
  const int mask = item.width;
  float v[4], m[4], f[4], n[4];
  load_state(a.z, base, mask, a.aligned, v);
#pragma unroll
  for (int j = 0; j < 4; ++j) m[j] = (mask >> j) & 1 ? element_mean<kKinds>(a.layout, item.offset + j, v[j], k) : 0.0f;
  if (a.input != nullptr) {
    load_four<kStorage>(a.input, base, mask, a.aligned, f);
#pragma unroll
    for (int j = 0; j < 4; ++j) m[j] += k.s * f[j];
  }
  store_four(a.target, base, mask, a.aligned, m);  // x_hat
  if (a.previous != nullptr) {
    load_four<0>(a.previous, base, mask, a.aligned, f);
#pragma unroll
    for (int j = 0; j < 4; ++j) m[j] += a.weight * (m[j] - f[j]);
  }
  NoiseAddress address = a.address;
  address.step = step;
  block_normals(a.keys, address, a.address.row_offset + static_cast<std::uint64_t>(row), item.offset, kStreamStep, n);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float spread = (mask >> j) & 1 ? __ldg(a.spread + item.offset + j) : 0.0f;
    v[j] = v[j] + a.fraction * (m[j] - v[j]) + spread * n[j];
  }
  store_four(a.out, base, mask, a.aligned, v);
}

template <Op op, int kStorage, unsigned kKinds>
__device__ __forceinline__ void block_item(const Args& a, const WorkItem& item, std::int64_t row,
                                           const Scale& k, std::uint32_t step, const StepScalars& scalars) {
  const std::int64_t width = a.layout.width;
  const std::int64_t base = row * width + item.offset;
  const int mask = item.width;
  const std::uint64_t global_row = a.address.row_offset + static_cast<std::uint64_t>(row);
  float v[4], f[4], n[4], out[4];
  if (op == Op::kTarget) {
    load_four<kStorage>(a.input, base, mask, a.aligned, f);  // f holds x here
  } else {
    load_state(a.z, base, mask, a.aligned, v);
    if (op == Op::kStep && a.input != nullptr) load_four<kStorage>(a.input, base, mask, a.aligned, f);
  }
  if (op != Op::kMean) {
    NoiseAddress address = a.address;
    address.step = step;
    block_normals(a.keys, address, global_row, item.offset, op == Op::kTarget ? kStreamTrain : kStreamStep, n);
  }
  if (op == Op::kTarget) {
    const float scale = a.mean_scale[row], spread = a.noise_scale[row];
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = scale * f[j] + spread * n[j];
    store_four(a.out, base, mask, a.aligned, v);
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if (!((mask >> j) & 1)) continue;
    const float m = element_mean<kKinds>(a.layout, item.offset + j, v[j], k);
    if (op == Op::kMean) {
      out[j] = m;
    } else if (op == Op::kStep) {
      const float drift = a.input != nullptr ? f[j] : 0.0f;
      out[j] = v[j] + scalars.increment * ((m - v[j]) * k.inverse_s + drift) + scalars.sqrt_increment * n[j];
    } else {
      out[j] = (f[j] - m) * k.inverse_s;
    }
  }
  store_four(op == Op::kTarget ? a.target : a.out, base, mask, a.aligned, out);
}

template <Op op, int kStorage, unsigned kKinds>
__device__ __forceinline__ void group_item(const Args& a, const WorkItem& item, std::int64_t row,
                                           const Scale& k, std::uint32_t step, const StepScalars& scalars) {
  const std::int64_t width = a.layout.width;
  float* out_row = a.out + row * width;
  const std::int64_t begin = item.offset, end = item.offset + item.width;
  const std::uint64_t global_row = a.address.row_offset + static_cast<std::uint64_t>(row);
  NoiseAddress address = a.address;
  address.step = step;
  const float* values = op == Op::kTarget ? out_row : a.z + row * width;  // the target's mean is taken of z_t
  if (op == Op::kTarget) {  // z_t first
    const float scale = a.mean_scale[row], spread = a.noise_scale[row];
    float n[4];
    for (std::int64_t c = begin; c < end; ++c) {
      if (c == begin || (c & 3) == 0) block_normals(a.keys, address, global_row, c, kStreamTrain, n);
      out_row[c] = scale * load_one<kStorage>(a.input, row * width + c) + spread * pick(n, static_cast<unsigned>(c & 3));
    }
  }
  GroupMean mean = group_mean<kKinds>(values, begin, item.width, item.kind, k.s, k.inverse_s);
  mean.categorical = is_categorical<kKinds>(item.kind);  // the same value, but a constant where the kernel has one group kind
  if (op == Op::kMean) {
    for (std::int64_t c = begin; c < end; ++c) out_row[c] = mean(values[c]);
  } else if (op == Op::kTarget) {
    float* target_row = a.target + row * width;
    for (std::int64_t c = begin; c < end; ++c) {
      target_row[c] = (load_one<kStorage>(a.input, row * width + c) - mean(values[c])) * k.inverse_s;
    }
  } else if (op == Op::kBridgeStep) {
    float n[4];
    float* prediction_row = a.target + row * width;
    for (std::int64_t c = begin; c < end; ++c) {
      if (c == begin || (c & 3) == 0) block_normals(a.keys, address, global_row, c, kStreamStep, n);
      const float z = values[c];
      const float prediction = a.input != nullptr ? mean(z) + k.s * load_one<kStorage>(a.input, row * width + c) : mean(z);
      const float moved = a.previous != nullptr ? prediction + a.weight * (prediction - a.previous[row * width + c]) : prediction;
      prediction_row[c] = prediction;
      out_row[c] = z + a.fraction * (moved - z) + a.spread[c] * pick(n, static_cast<unsigned>(c & 3));
    }
  } else {
    float n[4];
    for (std::int64_t c = begin; c < end; ++c) {
      if (c == begin || (c & 3) == 0) block_normals(a.keys, address, global_row, c, kStreamStep, n);
      const float z = values[c];
      const float drift = a.input != nullptr ? load_one<kStorage>(a.input, row * width + c) : 0.0f;
      out_row[c] = z + scalars.increment * ((mean(z) - z) * k.inverse_s + drift) + scalars.sqrt_increment * pick(n, static_cast<unsigned>(c & 3));
    }
  }
}

template <Op op, int kStorage, unsigned kKinds = kAllKinds>
__global__ void __launch_bounds__(kThreads, 3) bridge_kernel(Args a) {
  // The step's scalars: by value, or (CUDA graphs) read from the device schedule at *counter.
  std::uint32_t step = a.address.step;
  StepScalars scalars = a.scalars;
  if (op == Op::kStep && a.schedule != nullptr) {
    const std::int64_t index = *a.counter;
    step = static_cast<std::uint32_t>(index);
    if (index >= 0 && index < a.schedule_steps) {
      scalars = a.schedule[index];
    } else {  // a counter run past the schedule: NaN outputs, not a read past its end
      scalars = StepScalars{NAN, NAN, NAN, NAN, NAN};
    }
  }
  const std::int64_t items = a.layout.items;
  const std::int64_t total = a.rows * items;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  // (row, item) of the work index, divided out once per thread and then stepped by the stride's
  // quotient and remainder: a division per trip would cost more than a block's arithmetic.
  const std::int64_t row_stride = stride / items, item_stride = stride - row_stride * items;
  std::int64_t row = first / items, item_index = first - row * items;
  for (std::int64_t index = first; index < total; index += stride) {
    const WorkItem item = a.layout.item[item_index];
    Scale k;
    if (op == Op::kStep || op == Op::kBridgeStep) {
      k = Scale{scalars.remaining, scalars.sigma, 1.0f / scalars.sigma, scalars.inverse_remaining};
    } else {
      k = scale_of(checked_remaining(a.remaining_rows[row]));
    }
    if (is_block_item<kKinds>(item)) {
      if constexpr (op == Op::kBridgeStep) {
        bridge_block_item<kStorage, kKinds>(a, item, row, k, step);
      } else {
        block_item<op, kStorage, kKinds>(a, item, row, k, step, scalars);
      }
    } else if constexpr ((kKinds & kGroupKinds) != 0) {
      group_item<op, kStorage, kKinds>(a, item, row, k, step, scalars);
    }
    row += row_stride;
    item_index += item_stride;
    if (item_index >= items) {
      item_index -= items;
      ++row;
    }
  }
}

// ---------------------------------------------------------------------------------------
// The exact last step (csrc/cpu/final_step.cpp, per element or per group)
// ---------------------------------------------------------------------------------------
// The last step runs once per sample, so the drift's storage is a runtime value here (one
// kernel to compile instead of three).
struct FinalScalars {
  float s, sigma, inverse_s;
  int storage;
};

__device__ __forceinline__ float load_any(const void* data, std::int64_t i, int storage) {
  return storage == 0 ? load_one<0>(data, i) : (storage == 1 ? load_one<1>(data, i) : load_one<2>(data, i));
}

__device__ __forceinline__ float final_mean(const Args& a, std::int64_t row, std::int64_t c, const FinalScalars& k) {
  const std::int64_t i = row * a.layout.width + c;
  const float f = a.input != nullptr ? load_any(a.input, i, k.storage) : 0.0f;
  return a.z[i] + k.s * f;
}

__device__ __forceinline__ void categorical_draw(const Args& a, const WorkItem& item, std::int64_t row,
                                              const FinalScalars& k, std::uint64_t global_row) {
  const std::int64_t begin = item.offset, end = item.offset + item.width;
  float top = final_mean(a, row, begin, k);
  for (std::int64_t c = begin + 1; c < end; ++c) top = fmaxf(top, final_mean(a, row, c, k));
  float total = 0.0f;
  for (std::int64_t c = begin; c < end; ++c) total += fastmath::exp((final_mean(a, row, c, k) - top) * k.inverse_s);
  const float u = philox::uniform(a.address.seed, a.address.step, global_row, static_cast<std::uint64_t>(begin),
                                  kStreamFinalUniform);
  const float threshold = u * total;
  float running = 0.0f;
  std::int64_t chosen = end - 1;
  for (std::int64_t c = begin; c < end; ++c) {
    running += fastmath::exp((final_mean(a, row, c, k) - top) * k.inverse_s);
    if (running >= threshold) {
      chosen = c;
      break;
    }
  }
  float* out_row = a.out + row * a.layout.width;
  for (std::int64_t c = begin; c < end; ++c) out_row[c] = c == chosen ? 1.0f : 0.0f;
}

// vMF(mean/|mean|, |mean|/s) by posterior.h's von_mises_fisher_draw, as the CPU's sphere_draw; the
// unit mean is re-read rather than stored, and the output row holds the intermediate vectors.
__device__ __forceinline__ void sphere_draw(const Args& a, const WorkItem& item, std::int64_t row,
                                         const FinalScalars& k, std::uint64_t global_row) {
  const std::int64_t offset = item.offset, d = item.width;
  float squared = 0.0f;
  for (std::int64_t c = 0; c < d; ++c) {
    const float m = final_mean(a, row, offset + c, k);
    squared += m * m;
  }
  const float norm = sqrtf(squared);
  auto direction = [&](std::int64_t c) {  // a division, as the CPU kernel (a reciprocal would round differently)
    return norm > 0.0f ? final_mean(a, row, offset + c, k) / norm : (c == 0 ? 1.0f : 0.0f);
  };
  const philox::RowNoise noise{a.address.seed, a.address.step, global_row};
  pm::von_mises_fisher_draw(direction, norm, k.s, offset, d, noise, a.out + row * a.layout.width + offset);
}

__device__ __forceinline__ void final_block(const Args& a, const WorkItem& item, std::int64_t row,
                                            const FinalScalars& k, std::uint64_t global_row) {
  const std::int64_t base = row * a.layout.width + item.offset;
  const int mask = item.width;
  float z[4], f[4];
  load_state(a.z, base, mask, a.aligned, z);
  if (a.input != nullptr) {
    if (k.storage == 0) {
      load_four<0>(a.input, base, mask, a.aligned, f);
    } else if (k.storage == 1) {
      load_four<1>(a.input, base, mask, a.aligned, f);
    } else {
      load_four<2>(a.input, base, mask, a.aligned, f);
    }
  } else {
#pragma unroll
    for (int j = 0; j < 4; ++j) f[j] = 0.0f;
  }
  int real = 0;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if ((mask >> j) & 1) real |= (a.layout.column[item.offset + j].kind == pm::kReal) << j;
  }
  float normal[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  if (real) block_normals(a.keys, a.address, global_row, item.offset, kStreamStep, normal);
  philox::Counter uniform_block{};
  if (mask & ~real) {
    uniform_block = philox::philox_block(a.address.seed, a.address.step, global_row,
                                         static_cast<std::uint64_t>(item.offset), kStreamFinalUniform);
  }
  // Not unrolled: the inverse CDFs are long, and four inlined copies would spill registers.
#pragma unroll 1
  for (unsigned j = 0; j < 4; ++j) {
    if (!((mask >> j) & 1)) continue;
    const std::int64_t c = item.offset + j;
    const ColumnParams p = a.layout.column[c];
    const float m = pick(z, j) + k.s * pick(f, j);
    const float u = philox::uniform_from_word(philox::block_word(uniform_block, j));
    float draw;
    switch (p.kind) {
      case pm::kInterval:
        draw = pm::truncated_normal(m, k.sigma, p.low, p.high, u);
        break;
      case pm::kHalfLineLower:
        draw = pm::truncated_normal(m, k.sigma, p.low, INFINITY, u);
        break;
      case pm::kHalfLineUpper:
        draw = pm::truncated_normal(m, k.sigma, -INFINITY, p.high, u);
        break;
      case pm::kBinary:
        draw = u <= pm::binary_mean(m, k.inverse_s) ? 1.0f : 0.0f;
        break;
      case pm::kLattice:
        draw = pm::lattice_draw(m, k.sigma, k.inverse_s, a.layout.lattice_low[c], a.layout.lattice_step[c],
                                a.layout.lattice_points[c], u);
        break;
      default:
        draw = m + k.sigma * pick(normal, j);  // kReal
        break;
    }
    a.out[base + j] = draw;  // the last step runs once per sample: scalar stores are fine here
  }
}

__global__ void __launch_bounds__(kThreads, 1) final_kernel(Args a, FinalScalars k) {
  const std::int64_t items = a.layout.items;
  const std::int64_t total = a.rows * items;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < total;
       index += stride) {
    const std::int64_t row = total <= 0xFFFFFFFFll ? static_cast<std::uint32_t>(index) / static_cast<std::uint32_t>(items)
                                                    : index / items;
    const WorkItem item = a.layout.item[index - row * items];
    const std::uint64_t global_row = a.address.row_offset + static_cast<std::uint64_t>(row);
    if (item.kind == kBlockItem) {
      final_block(a, item, row, k, global_row);
    } else if (item.kind == pm::kCategorical) {
      categorical_draw(a, item, row, k, global_row);
    } else {
      sphere_draw(a, item, row, k, global_row);
    }
  }
}

// ---------------------------------------------------------------------------------------
// The noise contract alone (tests: uniforms bit for bit against the CPU backend)
// ---------------------------------------------------------------------------------------
__global__ void __launch_bounds__(kThreads) noise_kernel(float* out, bool normal, std::int64_t rows,
                                                         std::int64_t width, NoiseAddress a, std::uint32_t stream) {
  const std::int64_t total = rows * width;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < total;
       index += stride) {
    const std::int64_t row = index / width, column = index - row * width;
    const std::uint64_t global_row = a.row_offset + static_cast<std::uint64_t>(row);
    const std::uint64_t c = static_cast<std::uint64_t>(column);
    out[index] = normal ? philox::box_muller_normal(a.seed, a.step, global_row, c, stream)
                        : philox::uniform(a.seed, a.step, global_row, c, stream);
  }
}

// ---------------------------------------------------------------------------------------
// Launchers
// ---------------------------------------------------------------------------------------
Status failed(const char* call, cudaError_t error) {
  return Status{call, cudaGetErrorString(error)};
}

unsigned grid_for(std::int64_t work) {
  const std::int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 0x7FFFFFFF ? 0x7FFFFFFF : blocks));
}

bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }
bool aligned8(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 7u) == 0; }

// Vector loads need every row to start 16-byte aligned (8 for 16-bit inputs).
bool rows_aligned(const DeviceLayout& layout, const float* z, const void* input, Storage storage,
                  const float* out, const float* target) {
  if (layout.width % 4 != 0) return false;
  if ((z && !aligned16(z)) || (out && !aligned16(out)) || (target && !aligned16(target))) return false;
  if (input == nullptr) return true;
  return storage == Storage::kFloat32 ? aligned16(input) : aligned8(input);
}

// Launch `kernel` and check the launch (errors of the kernel itself surface at the caller's next sync).
template <typename Kernel, typename... Params>
Status launch(Kernel kernel, std::int64_t work, void* stream, Params... params) {
  if (work <= 0) return Status{};
  // Clear an error left by an earlier, unrelated call (torch reports its own where they happen), so
  // that the check below names this launch's error only.
  (void)cudaGetLastError();
#if defined(OB_CUDA_HOST_EMULATION)
  (void)stream;
  kernel(params...);  // gridDim = blockDim = 1: the grid-stride loop visits every index
#else
  kernel<<<grid_for(work), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(params...);
#endif
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? Status{} : failed("cudaLaunchKernel", error);
}

// The kernel specialised for a layout of one kind (float32 inputs), else the general one. The
// lattice's (four calls of lattice_mean per block item) holds 80 registers without spilling on
// sm_80 and sm_90 under bridge_kernel's launch bounds.
template <Op op>
Status launch_float32(const Args& args, std::int64_t work, void* stream) {
  switch (args.layout.kinds) {
    case 1u << pm::kReal:
      return launch(bridge_kernel<op, 0, 1u << pm::kReal>, work, stream, args);
    case 1u << pm::kInterval:
      return launch(bridge_kernel<op, 0, 1u << pm::kInterval>, work, stream, args);
    case 1u << pm::kHalfLineLower:
      return launch(bridge_kernel<op, 0, 1u << pm::kHalfLineLower>, work, stream, args);
    case 1u << pm::kHalfLineUpper:
      return launch(bridge_kernel<op, 0, 1u << pm::kHalfLineUpper>, work, stream, args);
    case 1u << pm::kBinary:
      return launch(bridge_kernel<op, 0, 1u << pm::kBinary>, work, stream, args);
    case 1u << pm::kCategorical:
      return launch(bridge_kernel<op, 0, 1u << pm::kCategorical>, work, stream, args);
    case 1u << pm::kLattice:
      return launch(bridge_kernel<op, 0, 1u << pm::kLattice>, work, stream, args);
    default:
      return launch(bridge_kernel<op, 0>, work, stream, args);
  }
}

template <Op op>
Status launch_bridge(const Args& args, Storage storage, void* stream) {
  const std::int64_t work = args.rows * args.layout.items;
  if constexpr (op == Op::kMean) {
    return launch(bridge_kernel<op, 0>, work, stream, args);  // no reduced-precision input
  } else {
    switch (storage) {
      case Storage::kBFloat16:
        return launch(bridge_kernel<op, 1>, work, stream, args);
      case Storage::kFloat16:
        return launch(bridge_kernel<op, 2>, work, stream, args);
      default:
        return launch_float32<op>(args, work, stream);
    }
  }
}

Args base_args(const DeviceLayout& layout, std::int64_t rows) {
  Args args{};
  args.layout = layout;
  args.rows = rows;
  return args;
}

}  // namespace

Status device_count(int* count) {
  const cudaError_t error = cudaGetDeviceCount(count);
  return error == cudaSuccess ? Status{} : failed("cudaGetDeviceCount", error);
}

Status posterior_mean(const DeviceLayout& layout, const float* z, const float* remaining, float* out,
                      std::int64_t rows, void* stream) {
  Args args = base_args(layout, rows);
  args.z = z;
  args.out = out;
  args.remaining_rows = remaining;
  args.aligned = rows_aligned(layout, z, nullptr, Storage::kFloat32, out, nullptr);
  return launch_bridge<Op::kMean>(args, Storage::kFloat32, stream);
}

Status step(const DeviceLayout& layout, const float* z, const void* drift, Storage drift_storage, float* out,
            std::int64_t rows, const StepScalars& scalars, const StepScalars* schedule,
            std::int64_t schedule_steps, const std::int64_t* counter, const NoiseAddress& address, void* stream) {
  Args args = base_args(layout, rows);
  args.z = z;
  args.input = drift;
  args.out = out;
  args.scalars = scalars;
  args.schedule = schedule;
  args.schedule_steps = schedule_steps;
  args.counter = counter;
  args.address = address;
  args.keys = philox::round_keys(address.seed);
  args.aligned = rows_aligned(layout, z, drift, drift_storage, out, nullptr);
  return launch_bridge<Op::kStep>(args, drift_storage, stream);
}

Status bridge_step(const DeviceLayout& layout, const float* z, const void* drift, Storage drift_storage,
                   const float* previous, float* out, float* prediction, std::int64_t rows, const StepScalars& scalars,
                   float fraction, float weight, const float* spread, const NoiseAddress& address, void* stream) {
  Args args = base_args(layout, rows);
  args.z = z;
  args.input = drift;
  args.previous = previous;
  args.out = out;
  args.target = prediction;
  args.spread = spread;
  args.scalars = scalars;
  args.fraction = fraction;
  args.weight = weight;
  args.address = address;
  args.keys = philox::round_keys(address.seed);
  args.aligned = rows_aligned(layout, z, drift, drift_storage, out, prediction) &&
                 (previous == nullptr || aligned16(previous));
  return launch_bridge<Op::kBridgeStep>(args, drift_storage, stream);
}

Status bridge_target(const DeviceLayout& layout, const void* x, Storage x_storage, const float* mean_scale,
                     const float* noise_scale, const float* remaining, float* z_t, float* target,
                     std::int64_t rows, const NoiseAddress& address, void* stream) {
  Args args = base_args(layout, rows);
  args.input = x;
  args.out = z_t;
  args.target = target;
  args.mean_scale = mean_scale;
  args.noise_scale = noise_scale;
  args.remaining_rows = remaining;
  args.address = address;
  args.keys = philox::round_keys(address.seed);
  args.aligned = rows_aligned(layout, nullptr, x, x_storage, z_t, target);
  return launch_bridge<Op::kTarget>(args, x_storage, stream);
}

Status final_step(const DeviceLayout& layout, const float* z, const void* drift, Storage drift_storage,
                  float* out, std::int64_t rows, double remaining, const NoiseAddress& address, void* stream) {
  Args args = base_args(layout, rows);
  args.z = z;
  args.input = drift;
  args.out = out;
  args.address = address;
  args.keys = philox::round_keys(address.seed);
  args.aligned = rows_aligned(layout, z, drift, drift_storage, out, nullptr);
  // Rounded from double as the CPU kernel rounds them.
  const FinalScalars k{static_cast<float>(remaining), static_cast<float>(std::sqrt(remaining)),
                       static_cast<float>(1.0 / remaining), static_cast<int>(drift_storage)};
  return launch(final_kernel, rows * layout.items, stream, args, k);
}

Status noise(float* out, bool normal, std::int64_t rows, std::int64_t width, const NoiseAddress& address,
             std::uint32_t noise_stream, void* stream) {
  return launch(noise_kernel, rows * width, stream, out, normal, rows, width, address, noise_stream);
}

}  // namespace cuda
}  // namespace omegabridge
