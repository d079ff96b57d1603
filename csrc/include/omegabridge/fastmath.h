// Branch-free float32 exp, expm1, log and sincos(2 pi u) built from +, *, / and bit
// operations only, so that a loop calling them vectorises (no libm call in the loop), the
// Triton interpreter and CUDA can use the same formulas, and results do not depend on
// which libm is installed. Accuracy: a few ulp (checked in tests/test_kernel_contract.py
// through the quantities that use them).
#pragma once

#include <cmath>
#include <cstdint>

#include "omegabridge/config.h"

namespace omegabridge {
namespace fastmath {

constexpr float kLn2High = 0.693145751953125f;         // ln 2 with 16 trailing zero bits
constexpr float kLn2Low = 1.428606765330187045e-06f;   // ln 2 - kLn2High
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kRoundMagic = 12582912.0f;             // 1.5 * 2^23: x + magic - magic rounds x

// Selects written as arithmetic on masks vectorise where a ternary on floats may not.
OB_INLINE float select(bool condition, float if_true, float if_false) {
  return condition ? if_true : if_false;
}

// 2^k for integer k in [-150, 128] as the product of two normal powers (so 2^-149 and
// 2^128 = inf both come out right without a branch).
OB_INLINE float power_of_two(std::int32_t k) {
  const std::int32_t first = k >> 1;
  const std::int32_t second = k - first;
  return float_of_bits(static_cast<std::uint32_t>(first + 127) << 23) *
         float_of_bits(static_cast<std::uint32_t>(second + 127) << 23);
}

// exp(x): k = round(x / ln 2), r = x - k ln 2 in [-ln2/2, ln2/2], degree-7 Taylor of
// exp(r) (relative error < 6e-9 before rounding). NaN propagates; exp(-inf) = 0,
// exp(+inf) = inf.
// exp(r) for r in [-ln2/2, ln2/2]: the Taylor polynomial shared by exp and exp_or_zero.
OB_INLINE float exp_reduced(float r) {
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p;
}

OB_INLINE float exp(float x) {
#if defined(__CUDA_ARCH__)
  // On a GPU, ex2.approx of x log2(e) (relative error ~2^-22 plus the rounding of the product, as
  // Triton's tl.exp): one multiply and one instruction where the polynomial takes about twenty.
  return exp2f(x * kLog2e);
#else
  const float clamped = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);  // NaN stays NaN
  const float k = (clamped * kLog2e + kRoundMagic) - kRoundMagic;
  const float r = (clamped - k * kLn2High) - k * kLn2Low;
  const std::int32_t ki = static_cast<std::int32_t>(k == k ? k : 0.0f);
  return exp_reduced(r) * power_of_two(ki);
#endif
}

// exp(x), or 0 where x < kNegligibleExponent (exp below 1e-30): for weights that are added to
// terms of order one, where a subnormal value changes nothing but costs a microcode assist in
// every operation that touches it (measured: a third of a lattice step's time at sigma' = 16).
constexpr float kNegligibleExponent = -69.0f;
OB_INLINE float exp_or_zero(float x) {
#if defined(__CUDA_ARCH__)
  return exp(x);  // GPUs work on subnormals at full speed: nothing to avoid, and no registers spent
#else
  // A product with exp of the clamped argument, not a select: with -fno-trapping-math the
  // compiler may run exp on the raw argument under a select (its lanes are discarded), and
  // exp of a smaller argument forms a subnormal on the way. In [-69, 88] one normal power of
  // two scales the polynomial. NaN propagates.
  const float kept = x < kNegligibleExponent ? 0.0f : 1.0f;
  const float clamped = x < kNegligibleExponent ? kNegligibleExponent : (x > 88.0f ? 88.0f : x);
  const float k = (clamped * kLog2e + kRoundMagic) - kRoundMagic;
  const float r = (clamped - k * kLn2High) - k * kLn2Low;
  const std::int32_t ki = static_cast<std::int32_t>(k == k ? k : 0.0f);
  return kept * (exp_reduced(r) * float_of_bits(static_cast<std::uint32_t>(ki + 127) << 23));
#endif
}

// a / b for b normal, infinite or NaN (the means' denominators, bounded away from 0 and 2^126).
// On a GPU a times rcp.approx.ftz of b (1 ulp each, two instructions), where an IEEE division
// takes about ten and a slow path.
OB_INLINE float divide(float a, float b) {
#if defined(__CUDA_ARCH__)
  float reciprocal;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(reciprocal) : "f"(b));
  return a * reciprocal;
#else
  return a / b;
#endif
}

// exp(x) - 1 without cancellation near 0: Taylor to x^9/9! for |x| < 1/2.
OB_INLINE float expm1(float x) {
  float p = 1.0f / 362880.0f;
  p = p * x + 1.0f / 40320.0f;
  p = p * x + 1.0f / 5040.0f;
  p = p * x + 1.0f / 720.0f;
  p = p * x + 1.0f / 120.0f;
  p = p * x + 1.0f / 24.0f;
  p = p * x + 1.0f / 6.0f;
  p = p * x + 0.5f;
  p = p * x + 1.0f;
  const float small = p * x;
  return select((x > -0.5f) & (x < 0.5f), small, exp(x) - 1.0f);
}

// log(x) for normal x > 0: x = m 2^e with m in [sqrt(1/2), sqrt 2), then
// log m = 2 atanh(t), t = (m - 1)/(m + 1), |t| <= 0.172, series to t^11.
// (Zero, negative and subnormal inputs are not supported; callers never pass them.)
OB_INLINE float log(float x) {
  const std::uint32_t bits = bits_of(x);
  std::int32_t e = static_cast<std::int32_t>(bits >> 23) - 127;
  float m = float_of_bits((bits & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
  const std::int32_t high = m > 1.41421356f;
  m = m * float_of_bits(static_cast<std::uint32_t>(127 - high) << 23);  // halve m when high
  e += high;
  const float t = (m - 1.0f) / (m + 1.0f);
  const float t2 = t * t;
  float p = 1.0f / 11.0f;
  p = p * t2 + 1.0f / 9.0f;
  p = p * t2 + 1.0f / 7.0f;
  p = p * t2 + 1.0f / 5.0f;
  p = p * t2 + 1.0f / 3.0f;
  p = p * t2 + 1.0f;
  const float ef = static_cast<float>(e);
  return ef * kLn2High + (ef * kLn2Low + 2.0f * t * p);
}

// sin and cos of 2 pi u for u in [0, 1]: u = q/4 + r exactly (q = round(4u), |r| <= 1/8),
// Taylor polynomials of sin and cos on |2 pi r| <= pi/4, then the quadrant swap.
OB_INLINE void sincos_two_pi(float u, float* sine, float* cosine) {
  const float q = (4.0f * u + kRoundMagic) - kRoundMagic;
  const float r = u - 0.25f * q;
  const float a = 6.28318530717958647692f * r;
  const float a2 = a * a;
  float s = -1.0f / 39916800.0f;
  s = s * a2 + 1.0f / 362880.0f;
  s = s * a2 - 1.0f / 5040.0f;
  s = s * a2 + 1.0f / 120.0f;
  s = s * a2 - 1.0f / 6.0f;
  s = a + a * a2 * s;
  float c = 1.0f / 479001600.0f;
  c = c * a2 - 1.0f / 3628800.0f;
  c = c * a2 + 1.0f / 40320.0f;
  c = c * a2 - 1.0f / 720.0f;
  c = c * a2 + 1.0f / 24.0f;
  c = c * a2 - 0.5f;
  c = 1.0f + a2 * c;
  const std::int32_t quadrant = static_cast<std::int32_t>(q) & 3;
  const bool swap = (quadrant & 1) != 0;
  const float sin_base = select(swap, c, s);
  const float cos_base = select(swap, s, c);
  *sine = select(quadrant >= 2, -sin_base, sin_base);
  *cosine = select((quadrant == 1) | (quadrant == 2), -cos_base, cos_base);
}

// The noise's log and sin/cos (docs/noise.md, "Normals on a GPU"); its square root is square_root below. On a GPU they run
// on the hardware's approximate instructions, one or two each where the polynomials above take
// tens: lg2.approx (absolute error 2^-22 on [1/2, 2], so near u = 1 the log comes from its series
// ln(1 - t) = -(t + t^2/2 + ... + t^5/5), relative error < 2e-7 for t < 1/16), sin.approx and
// cos.approx on an angle reduced to [-pi, pi] (absolute error 2^-20.9). On the host
// (the CPU kernels and the CUDA emulation of the tests) the polynomials stand in for them.
// kernels/special.py writes the same in Triton.
constexpr float kNoiseLogSeriesBelow = 0.0625f;

#if defined(__CUDA_ARCH__)
// sqrt.approx.f32 (CUDA has intrinsics for lg2, sin and cos .approx, none for this one).
__device__ __forceinline__ float ptx_sqrt(float x) {
  float y;
  asm("sqrt.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
#endif

// log u for a uniform u in (0, 1] of the noise.
OB_INLINE float noise_log(float u) {
#if defined(__CUDA_ARCH__)
  const float t = 1.0f - u;  // exact for u >= 1/2
  const float series = t * (1.0f + t * (0.5f + t * (1.0f / 3.0f + t * (0.25f + t * 0.2f))));
  return t < kNoiseLogSeriesBelow ? -series : __log2f(u) * 0.693147180559945309f;  // lg2.approx
#else
  return log(u);
#endif
}

// sin and cos of 2 pi u for u in [0, 1].
OB_INLINE void noise_sincos_two_pi(float u, float* sine, float* cosine) {
#if defined(__CUDA_ARCH__)
  const float angle = 6.28318530717958647692f * (u > 0.5f ? u - 1.0f : u);  // in [-pi, pi]
  *sine = __sinf(angle);  // sin.approx, cos.approx
  *cosine = __cosf(angle);
#else
  sincos_two_pi(u, sine, cosine);
#endif
}

// sqrt x for x >= 0 or NaN: sqrt.approx on a GPU (relative error 2^-23, where the correctly
// rounded one takes ten instructions and a slow path); sqrtf on the host.
OB_INLINE float square_root(float x) {
#if defined(__CUDA_ARCH__)
  return ptx_sqrt(x);
#else
  return sqrtf(x);
#endif
}

}  // namespace fastmath
}  // namespace omegabridge
