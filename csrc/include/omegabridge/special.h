// Special functions of the standard normal in float32, shared by the CPU and CUDA kernels
// (OB_INLINE: host and device). The torch reference is omegabridge/core/special.py; the formulas
// are bridge-math.md section 2 written so that nothing underflows, overflows or cancels.
//
// Everything is built on one function, the mean excess G(x) = 1/R(x) - x = E[Y - x | Y >= x]
// (Y ~ N(0, 1), x >= 0), where R(x) = Q(x)/phi(x) is Mills' ratio and Q the upper tail:
// G(x) (x + 2) is smooth on [0, inf] and is a degree-14 polynomial in q = (x - 2)/(x + 2)
// in [-1, 1] (least-squares fit at Chebyshev nodes against mpmath; relative error 1.4e-7 in
// float32 over all x >= 0, including x = inf), the mapping of Shepherd and Laframboise
// (Math. Comp. 36, 1981) for erfcx. So R = 1/(G + x) and Q = phi R need no erfc from libm.
#pragma once

#include <cmath>
#include <cstdint>

#include "omegabridge/config.h"
#include "omegabridge/fastmath.h"

namespace omegabridge {
namespace special {

constexpr float kInvSqrtTwoPi = 0.398942280401432678f;
constexpr float kTiny = 1.17549435e-38f;  // smallest normal float
constexpr float kLogTiny = -87.3365447f;  // log(kTiny)

// Coefficients of G(x) (x + 2) in powers of q = (x - 2)/(x + 2), constant term first.
constexpr int kMeanExcessDegree = 14;
OB_INLINE float mean_excess_polynomial(float q) {
  constexpr float c[kMeanExcessDegree + 1] = {
    1.492862130e+00f, -3.356032015e-01f, -2.646813346e-01f,
    2.361245472e-02f, 8.885710150e-02f, 2.945365305e-02f,
    -1.828800665e-02f, -2.156662451e-02f, -4.984542712e-03f,
    7.054211829e-03f, 6.082931555e-03f, -6.953506127e-04f,
    -2.319665598e-03f, -1.397188685e-04f, 3.559471232e-04f};
#if defined(__CUDA_ARCH__)
  // Horner's scheme on a GPU: 14 multiply-adds, where Estrin's takes 17 instructions (other
  // warps hide the latency of the longer chain).
  float p = c[kMeanExcessDegree];
  for (int k = kMeanExcessDegree - 1; k >= 0; --k) p = p * q + c[k];
  return p;
#else
  // Estrin's scheme, not Horner's: a chain of 5 dependent multiply-adds instead of 14, so the
  // vectorised loops that call it (twice per lattice element) wait less on latency.
  const float q2 = q * q;
  const float q4 = q2 * q2;
  const float q8 = q4 * q4;
  float pair[8];
  for (int k = 0; k < 7; ++k) pair[k] = c[2 * k] + c[2 * k + 1] * q;
  pair[7] = c[14];
  const float quad0 = pair[0] + pair[1] * q2, quad1 = pair[2] + pair[3] * q2;
  const float quad2 = pair[4] + pair[5] * q2, quad3 = pair[6] + pair[7] * q2;
  return (quad0 + quad1 * q4) + (quad2 + quad3 * q4) * q8;
#endif
}

// G(x) = 1/R(x) - x for x >= 0 (negative x is treated as 0; NaN propagates). G(inf) = 0.
OB_INLINE float mean_excess(float x) {
  const float y = x < 0.0f ? 0.0f : x;
  const float r = fastmath::divide(1.0f, y + 2.0f);  // one division for both uses
  const float q = 1.0f - 4.0f * r;    // (y - 2)/(y + 2), and 1 at y = inf
  return mean_excess_polynomial(q) * r;
}

// Mills' ratio R(x) = Q(x)/phi(x) for x >= 0 (a sum of positives: no cancellation).
OB_INLINE float mills_ratio(float x) { return fastmath::divide(1.0f, mean_excess(x) + x); }

// phi(x).
OB_INLINE float normal_pdf(float x) { return kInvSqrtTwoPi * fastmath::exp(-0.5f * x * x); }

// Q(x) = P(Y >= x) for any x (relative accuracy in the upper tail).
OB_INLINE float upper_tail(float x) {
  const float t = x < 0.0f ? -x : x;
  const float q = normal_pdf(t) * mills_ratio(t);
  return x < 0.0f ? 1.0f - q : q;
}

// Phi(high) - Phi(low) for low < 0 < high, as two positive halves (0.5 - Q).
OB_INLINE float normal_mass(float low, float high) {
  return (0.5f - upper_tail(high)) + (0.5f - upper_tail(-low));
}

// log(1 + x) for x > -1 (x = -1 gives log of the smallest normal float).
OB_INLINE float log1p(float x) {
  const float y = 1.0f + x;
  if (!(y > 0.0f)) return kLogTiny;
  const float correction = (y - 1.0f) == 0.0f ? 0.0f : ((y - 1.0f) - x) / y;
  return (y - 1.0f) == 0.0f ? x : fastmath::log(y) - correction;
}

// Gauss-Legendre nodes and weights of 24 points on [0, 1].
constexpr int kQuadraturePoints = 24;

// E[T] for the density proportional to exp(-(start t + t^2/2)) on [0, width]: the mean offset
// of a standard normal truncated to [start, start + width] from its lower end. Used for
// width <= 1 and start * width <= 40, where the closed form cancels; the integrand is then
// entire with a small rate, so the 24-point rule is exact to float rounding.
OB_INLINE float short_tail_mean(float start, float width) {
  constexpr float node[kQuadraturePoints] = {
    2.406390001e-03f, 1.263572201e-02f, 3.086272400e-02f,
    5.679223650e-02f, 8.999900701e-02f, 1.299379042e-01f,
    1.759531740e-01f, 2.272892643e-01f, 2.831032462e-01f,
    3.424786602e-01f, 4.044405663e-01f, 4.679715536e-01f,
    5.320284464e-01f, 5.955594337e-01f, 6.575213398e-01f,
    7.168967538e-01f, 7.727107357e-01f, 8.240468260e-01f,
    8.700620958e-01f, 9.100009930e-01f, 9.432077635e-01f,
    9.691372760e-01f, 9.873642780e-01f, 9.975936100e-01f};
  constexpr float weight[kQuadraturePoints] = {
    6.170614900e-03f, 1.426569431e-02f, 2.213871941e-02f,
    2.964929246e-02f, 3.667324071e-02f, 4.309508077e-02f,
    4.880932605e-02f, 5.372213506e-02f, 5.775283403e-02f,
    6.083523646e-02f, 6.291872817e-02f, 6.396909767e-02f,
    6.396909767e-02f, 6.291872817e-02f, 6.083523646e-02f,
    5.775283403e-02f, 5.372213506e-02f, 4.880932605e-02f,
    4.309508077e-02f, 3.667324071e-02f, 2.964929246e-02f,
    2.213871941e-02f, 1.426569431e-02f, 6.170614900e-03f};
  const float rate = start * width;
  const float curvature = 0.5f * width * width;
  float total = 0.0f, first_moment = 0.0f;
  for (int k = 0; k < kQuadraturePoints; ++k) {
    const float density = weight[k] * fastmath::exp(-(rate * node[k] + curvature * node[k] * node[k]));
    total += density;
    first_moment += density * node[k];
  }
  return width * first_moment / total;
}

// T(kappa) with kappa / T = A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa): Perron's continued
// fraction, 40 terms (as omegabridge/core/special.py), finite at kappa = 0 (T = d).
constexpr int kBesselRatioTerms = 40;
OB_INLINE float bessel_ratio_denominator(float kappa, float dimension) {
  const float two_nu = dimension;  // 2 nu = d
  const float two_kappa = 2.0f * kappa;
  float t = two_nu + kBesselRatioTerms + two_kappa;
  for (int k = kBesselRatioTerms - 1; k > 0; --k) {
    t = two_nu + k + two_kappa - (two_nu + 2 * k + 1) * kappa / t;
  }
  return two_nu + kappa - (two_nu + 1.0f) * kappa / t;
}

// Offset t >= 0 with log Q(start + t) - log Q(start) = log_p (log_p <= 0, start >= 0):
// Halley's method on f(t) = log Q(start + t) - log Q(start) - log_p, whose derivatives come from
// the one polynomial G = mean_excess: f' = -h and f'' = -h G with h = 1/R = G + x. From the upper
// bound that ignores the decrease of log R, two steps reach float32 rounding (over start in
// [0, 60] and log_p in [-87, -1e-8], as close to the exact root as eight Newton steps came); the
// float64 torch reference takes a third (bench/results/final-step-cpu.md).
constexpr int kTailOffsetSteps = 2;

// The start of tail_offset's iteration: the root of start t + t^2/2 = -bounded.
OB_INLINE float tail_offset_start(float start, float bounded) {
  const float excess = -bounded;
  return 2.0f * excess / (start + sqrtf(start * start + 2.0f * excess));
}

// One Halley step of tail_offset at t (log_r_start = log R(start)).
OB_INLINE float tail_offset_step(float start, float t, float log_r_start, float bounded) {
  const float x = start + t;
  const float g = mean_excess(x);
  const float h = g + x;
  const float value = -(start * t + 0.5f * t * t) - fastmath::log(h) - log_r_start - bounded;
  const float next = t + fastmath::divide(2.0f * value, 2.0f * h + value * g);
  return next > 0.0f ? next : 0.0f;
}

OB_INLINE float tail_offset(float start, float log_p) {
  const float bounded = log_p < kLogTiny ? kLogTiny : log_p;
  float t = tail_offset_start(start, bounded);
  const float log_r_start = fastmath::log(mills_ratio(start));
  for (int i = 0; i < kTailOffsetSteps; ++i) t = tail_offset_step(start, t, log_r_start, bounded);
  return t;
}

// Inverse-CDF draw of a standard normal truncated to [start, start + width] (start >= 0,
// width may be inf), returned as the offset from start; u in (0, 1].
OB_INLINE float truncated_tail_quantile(float start, float width, float u) {
  start = start > 0.0f ? start : 0.0f;
  const float end = start + width;
  const bool finite_end = end - end == 0.0f;
  float ratio = 0.0f;
  if (finite_end) {
    ratio = fastmath::exp(-0.5f * width * (start + end)) * mills_ratio(end) / mills_ratio(start);
  }
  float t = tail_offset(start, log1p(-u * (1.0f - ratio)));
  if (!(t - t == 0.0f)) t = 0.0f;
  return t < width ? t : width;
}

}  // namespace special
}  // namespace omegabridge
