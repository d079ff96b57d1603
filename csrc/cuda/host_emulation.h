// Tests only (tests/cuda_emulation.py, backend "cuda-emulated" of tests/test_kernel_contract.py): what kernels.cu needs from CUDA, for compiling it
// with the host compiler (-DOB_CUDA_HOST_EMULATION -x c++). A "launch" then calls the kernel as
// a function with gridDim = blockDim = 1, so its grid-stride loop visits every index in order:
// the kernels' own indexing, masks, loads, noise addresses and per-element math run on the CPU
// and are checked against the torch reference where there is no GPU. Nothing about timing,
// memory coalescing or races is tested this way.
#pragma once

// Standard headers first: the macros below would break attribute spellings inside them.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

using std::max;
using std::min;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)

struct EmulatedIndex {
  unsigned x = 0, y = 0, z = 0;
};
struct EmulatedDimension {
  unsigned x = 1, y = 1, z = 1;
};
static const EmulatedIndex blockIdx{}, threadIdx{};
static const EmulatedDimension blockDim{}, gridDim{};

struct float4 {
  float x, y, z, w;
};
struct uint2 {
  unsigned x, y;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}

// IEEE binary16 bits to float.
struct __half {
  unsigned short bits;
};
inline __half __ushort_as_half(unsigned short bits) { return __half{bits}; }
inline float __half2float(__half h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
  const std::uint32_t exponent = (h.bits >> 10) & 0x1Fu;
  const std::uint32_t mantissa = h.bits & 0x3FFu;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    magnitude = mantissa ? NAN : INFINITY;
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  std::uint32_t bits;
  std::memcpy(&bits, &magnitude, sizeof bits);
  bits |= sign;
  std::memcpy(&magnitude, &bits, sizeof bits);
  return magnitude;
}

using cudaError_t = int;
using cudaStream_t = void*;
constexpr cudaError_t cudaSuccess = 0;
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t) { return "no error (host emulation)"; }
inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 0;
  return cudaSuccess;
}
