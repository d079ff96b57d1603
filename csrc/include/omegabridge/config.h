// Portability macros shared by the omegabridge C++ / CUDA sources.
#pragma once

#include <cstdint>
#include <cstring>

// Functions marked OB_HOST_DEVICE compile for the host with any C++17 compiler and,
// under nvcc, for both host and device.
#if defined(__CUDACC__)
#define OB_HOST_DEVICE __host__ __device__
#else
#define OB_HOST_DEVICE
#endif

// OB_INLINE: the per-element math. Forced inline on the host so that every helper is
// compiled into (and vectorised with) the ISA clone of the kernel that calls it, and no
// out-of-line copy built for one ISA can be picked by the linker for another.
#if defined(__CUDACC__)
#define OB_INLINE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define OB_INLINE inline __attribute__((always_inline))
#else
#define OB_INLINE inline
#endif

namespace omegabridge {

// Bit casts that vectorise on the host (memcpy is folded away) and are intrinsics on CUDA.
OB_INLINE std::uint32_t bits_of(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
#endif
}

OB_INLINE float float_of_bits(std::uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
#endif
}

// bfloat16 is the top half of a float32: widening is a shift.
OB_INLINE float float_of_bfloat16(std::uint16_t bits) {
  return float_of_bits(static_cast<std::uint32_t>(bits) << 16);
}

}  // namespace omegabridge
