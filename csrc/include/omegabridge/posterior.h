// Per-domain formulas of bridge-math.md sections 2 and 3 in float32, shared by the CPU and
// CUDA kernels: the posterior mean m(z, s) of N(z, s I) restricted to a factor, and the
// draws of the exact last step. The torch reference is omegabridge/reference.py; the
// kernels in csrc/cpu loop over the layout and call these per element or per group.
#pragma once

#include <cmath>
#include <cstdint>

#include "omegabridge/config.h"
#include "omegabridge/fastmath.h"
#include "omegabridge/special.h"

namespace omegabridge {
namespace posterior {

// Segment kinds; the numbers are omegabridge.domains.Kind.
enum Kind : std::int32_t {
  kReal = 0,
  kInterval = 1,
  kHalfLineLower = 2,
  kHalfLineUpper = 3,
  kLattice = 4,
  kBinary = 5,
  kCategorical = 6,
  kSphere = 7,
};

// Lattice points farther than this many sqrt(s) (plus one step) from the nearest point
// have weight below exp(-40) relative to it: nothing in float32.
constexpr float kLatticeWindowSigmas = 9.0f;

// [low, inf): with u = (z - low)/sigma, inside (u >= 0) z + sigma phi(u)/Phi(u), written as
// phi (G + u)/(G + u - phi) (Phi = 1 - phi/(G + u)); outside low + sigma G(-u).
// Branch-free, so a loop over it vectorises.
OB_INLINE float lower_halfline_mean(float z, float low, float sigma, float inverse_sigma) {
  const float u = (z - low) * inverse_sigma;
  const float t = u < 0.0f ? -u : u;
  const float g = special::mean_excess(t);
  const float phi = special::normal_pdf(t);
  const float inside = z + sigma * (phi * (g + t) / (g + t - phi));
  const float outside = low + sigma * g;
  return u >= 0.0f ? inside : outside;
}

// (-inf, high]: the mirror image of the lower half-line.
OB_INLINE float upper_halfline_mean(float z, float high, float sigma, float inverse_sigma) {
  return -lower_halfline_mean(-z, -high, sigma, inverse_sigma);
}

// [low, high], written relative to the nearer end (reference.interval_mean): outside, the
// offset from that end comes from Mills' ratios (or quadrature for short intervals, where
// the closed form cancels); inside, the difference of densities is formed with expm1 and the
// mass as two positive halves.
OB_INLINE float interval_mean(float z, float low, float high, float sigma) {
  const bool above = z > 0.5f * (low + high);
  const float sign = above ? -1.0f : 1.0f;
  const float near = above ? high : low;
  const float far = above ? low : high;
  const float alpha = sign * (near - z) / sigma;  // >= 0: z lies beyond `near`
  const float beta = sign * (far - z) / sigma;
  const float width = (high - low) / sigma;
  if (alpha >= 0.0f) {
    const float a = alpha;
    const float b = a + width;
    float offset;
    if (width <= 1.0f && a * width <= 40.0f) {
      offset = special::short_tail_mean(a, width);
    } else {
      const float ratio_tail = fastmath::exp(-0.5f * width * (a + b));
      const float r_a = special::mills_ratio(a);
      const float r_b = special::mills_ratio(b);
      const float numerator =
          r_a * special::mean_excess(a) - ratio_tail * r_b * (special::mean_excess(b) + width);
      offset = numerator / (r_a - ratio_tail * r_b);
    }
    offset = offset < 0.0f ? 0.0f : (offset > width ? width : offset);
    return near + sign * sigma * offset;
  }
  const float difference_pdf =
      special::normal_pdf(alpha) * -fastmath::expm1(-0.5f * width * (beta + alpha));
  return z + sign * sigma * difference_pdf / special::normal_mass(alpha, beta);
}

// {0, 1}: logistic((z - 1/2)/s).
OB_INLINE float binary_mean(float z, float inverse_s) {
  return 1.0f / (1.0f + fastmath::exp(-(z - 0.5f) * inverse_s));
}

// Logit of lattice point x_n + offset relative to the nearest point x_n, given
// delta_near = x_n - z: -(offset)(offset + 2 delta_near)/(2 s) (exact where logits are close).
OB_INLINE float lattice_logit(float offset, float delta_near, float inverse_two_s) {
  return -offset * (offset + 2.0f * delta_near) * inverse_two_s;
}

// Index of the lattice point nearest to z (clamped to [0, points - 1]), in double and
// rounding half to even, as the reference's torch.round of (z - low)/step in float64.
OB_INLINE std::int64_t lattice_nearest(float z, double low, double step, std::int64_t points) {
  double position = (static_cast<double>(z) - low) / step;
  position = position - position == 0.0 ? ::rint(position) : 0.0;  // NaN or inf -> 0
  if (position < 0.0) position = 0.0;
  if (position > static_cast<double>(points - 1)) position = static_cast<double>(points - 1);
  return static_cast<std::int64_t>(position);
}

// Point k of a lattice, rounded once from double (as the reference's canonical grid).
OB_INLINE float lattice_point(double low, double step, std::int64_t k) {
  return static_cast<float>(low + static_cast<double>(k) * step);
}

// Half-width, in points, of the window of lattice points that carry weight.
OB_INLINE std::int64_t lattice_radius(float sigma, double step, std::int64_t points) {
  const double radius = kLatticeWindowSigmas * static_cast<double>(sigma) / step + 1.0;
  return radius >= static_cast<double>(points) ? points : static_cast<std::int64_t>(radius) + 1;
}

// ---------------------------------------------------------------------------------------
// The exact last step
// ---------------------------------------------------------------------------------------

// Inverse-CDF draw from N(mean, sigma^2) truncated to [low, high] (either end may be
// infinite), with u in (0, 1]: as reference._truncated_normal. Tails are drawn relative to
// the nearer end; a mean inside inverts Phi on whichever side of the median the draw falls.
OB_INLINE float truncated_normal(float mean, float sigma, float low, float high, float u) {
  const float alpha = (low - mean) / sigma;
  const float beta = (high - mean) / sigma;
  float x;
  if (alpha >= 0.0f || beta <= 0.0f) {
    const bool right = alpha >= 0.0f;
    float width = beta - alpha;
    if (width != width) width = 1.0f / 0.0f;
    const float offset = special::truncated_tail_quantile(right ? alpha : -beta, width, u);
    x = right ? low + sigma * offset : high - sigma * offset;
  } else {
    const float mass = special::normal_mass(alpha, beta);
    float below_median = special::upper_tail(-alpha) + u * mass;
    float y;
    if (below_median <= 0.5f) {
      below_median = below_median < special::kTiny ? special::kTiny : below_median;
      y = -special::tail_offset(0.0f, fastmath::log(2.0f * below_median));
    } else {
      float upper = special::upper_tail(beta) + (1.0f - u) * mass;
      upper = upper < special::kTiny ? special::kTiny : (upper > 0.5f ? 0.5f : upper);
      y = special::tail_offset(0.0f, fastmath::log(2.0f * upper));
    }
    y = y < alpha ? alpha : (y > beta ? beta : y);
    x = mean + sigma * y;
  }
  return x < low ? low : (x > high ? high : x);
}

}  // namespace posterior
}  // namespace omegabridge
