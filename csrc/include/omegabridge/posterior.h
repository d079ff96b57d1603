// Per-domain formulas of bridge-math.md sections 2 and 3 in float32, shared by the CPU and
// CUDA kernels: the posterior mean m(z, s) of N(z, s I) restricted to a factor, and the
// draws of the exact last step. The torch reference is omegabridge/reference/; the
// kernels in csrc/cpu loop over the layout and call these per element or per group.
#pragma once

#include <cmath>
#include <cstdint>

#include "omegabridge/config.h"
#include "omegabridge/fastmath.h"
#include "omegabridge/philox.h"
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
// The most points a window sums on either side of the nearest: where 9 sigma' + 2 exceeds it
// (sigma' = sqrt(s)/step), lattice_euler_maclaurin_mean serves every element except those far
// outside, whose weights fall by at least exp(-kLatticeOutsideRate) per point from the end.
// As reference.LATTICE_WINDOW_LIMIT and LATTICE_OUTSIDE_RATE (the reasons are written there).
constexpr float kLatticeWindowLimit = 34.0f;
constexpr float kLatticeOutsideRate = 0.75f;
// B_2p / (2p)!, p = 1..4: the Euler-Maclaurin end corrections.
constexpr int kEulerMaclaurinTerms = 4;
// Term p of the corrections is about |B_2p/(2p)!| He_(2p-1) / sigma'^(2p) relative to the mean's
// scale sqrt(s), so where every column of a row has a wide sigma' the C++ kernel sums fewer terms:
// two from sigma' >= 8, one from sigma' >= 32 (the first omitted term is then below 1e-7 relative;
// measured against the exact sum over sigma' from 3.55 to 3K, K = 36 to 4096: at most 1.1e-6
// (|m| + sqrt(s)), a tenth of the float32 contract).
OB_INLINE int lattice_euler_maclaurin_terms(float sigma_points) {
  return sigma_points >= 32.0f ? 1 : (sigma_points >= 8.0f ? 2 : kEulerMaclaurinTerms);
}
OB_INLINE float euler_maclaurin_coefficient(int p) {
  return p == 1 ? 1.0f / 12.0f : (p == 2 ? -1.0f / 720.0f : (p == 3 ? 1.0f / 30240.0f : -1.0f / 1209600.0f));
}

// [low, inf): with u = (z - low)/sigma, inside (u >= 0) z + sigma phi(u)/Phi(u), written as
// phi (G + u)/(G + u - phi) (Phi = 1 - phi/(G + u)); outside low + sigma G(-u).
// Branch-free, so a loop over it vectorises.
OB_INLINE float lower_halfline_mean(float z, float low, float sigma, float inverse_sigma) {
  const float u = (z - low) * inverse_sigma;
  const float t = u < 0.0f ? -u : u;
  const float g = special::mean_excess(t);
  const float phi = special::kInvSqrtTwoPi * fastmath::exp_or_zero(-0.5f * t * t);  // deep inside: m = z
  const float inside = z + sigma * fastmath::divide(phi * (g + t), g + t - phi);  // g + t - phi >= 0.39
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
      offset = fastmath::divide(numerator, r_a - ratio_tail * r_b);
    }
    offset = offset < 0.0f ? 0.0f : (offset > width ? width : offset);
    return near + sign * sigma * offset;
  }
  const float difference_pdf =
      special::normal_pdf(alpha) * -fastmath::expm1(-0.5f * width * (beta + alpha));
  return z + sign * sigma * fastmath::divide(difference_pdf, special::normal_mass(alpha, beta));
}

// {0, 1}: logistic((z - 1/2)/s).
OB_INLINE float binary_mean(float z, float inverse_s) {
  return fastmath::divide(1.0f, 1.0f + fastmath::exp(-(z - 0.5f) * inverse_s));
}

// Logit of lattice point x_n + offset relative to the nearest point x_n, given
// delta_near = x_n - z: -(offset)(offset + 2 delta_near)/(2 s) (exact where logits are close).
OB_INLINE float lattice_logit(float offset, float delta_near, float inverse_two_s) {
  return -offset * (offset + 2.0f * delta_near) * inverse_two_s;
}

// 1 where the element's mean comes from Euler-Maclaurin (many points carry weight and z is not
// far outside), else 0: y = (z - low)/step, sigma_points = sqrt(s)/step, last = K - 1. A float
// indicator, not a bool: GCC does not vectorise the loops over it with bool conditions.
OB_INLINE float lattice_uses_euler_maclaurin(float y, float last, float sigma_points) {
  const float outside = -y > y - last ? -y : y - last;
  return (last > kLatticeWindowLimit ? 1.0f : 0.0f) *
         (kLatticeWindowSigmas * sigma_points + 2.0f > kLatticeWindowLimit ? 1.0f : 0.0f) *
         (outside < kLatticeOutsideRate * sigma_points * sigma_points ? 1.0f : 0.0f);
}

// m on a lattice {low + k step, k = 0..last} when many points carry weight: the mean of the
// Gaussian truncated to [low, low + last step] plus Euler-Maclaurin end corrections, as
// reference.lattice_euler_maclaurin_mean (the derivation is written there). The end weights
// are scaled by the nearer end's when z lies outside, so nothing underflows.
OB_INLINE float lattice_euler_maclaurin_mean(float z, float low, float step, float last, float sigma) {
  const float sigma_points = sigma / step;
  const float y = (z - low) / step;
  const float u_low = -y / sigma_points;
  const float u_high = (last - y) / sigma_points;
  float outside = u_low > -u_high ? u_low : -u_high;
  outside = outside > 0.0f ? outside : 0.0f;
  const float weight_low = fastmath::exp(-0.5f * (u_low - outside) * (u_low + outside));
  const float weight_high = fastmath::exp(-0.5f * (u_high - outside) * (u_high + outside));
  float mass;
  if (u_low >= 0.0f) {
    mass = special::mills_ratio(u_low) - weight_high * special::mills_ratio(u_high);
  } else if (u_high <= 0.0f) {
    mass = special::mills_ratio(-u_high) - weight_low * special::mills_ratio(-u_low);
  } else {
    mass = 2.5066282746310002f * special::normal_mass(u_low, u_high);
  }
  const float centre_value = interval_mean(z, low, low + last * step, sigma);
  const float centre = (centre_value - low) / step;
  // He_k(u)/sigma'^k by the three-term recurrence in v = u/sigma' (clamped: beyond, the end's
  // weight is 0 and the product must stay finite).
  const float inverse_variance = 1.0f / (sigma_points * sigma_points);
  float v_low = u_low / sigma_points, v_high = u_high / sigma_points;
  v_low = v_low < -1e3f ? -1e3f : (v_low > 1e3f ? 1e3f : v_low);
  v_high = v_high < -1e3f ? -1e3f : (v_high > 1e3f ? 1e3f : v_high);
  float low_previous = 1.0f, low_current = v_low, high_previous = 1.0f, high_current = v_high;
  float ends = 0.5f * (weight_low + weight_high);
  float ends_centred = 0.5f * ((last - centre) * weight_high - centre * weight_low);
  for (int p = 1; p <= kEulerMaclaurinTerms; ++p) {
    const int k = 2 * p - 1;  // low_current = He_k / sigma'^k, low_previous = He_(k-1) / sigma'^(k-1)
    const float coefficient = euler_maclaurin_coefficient(p);
    ends += coefficient * (low_current * weight_low - high_current * weight_high);
    const float high_term = (-(last - centre) * high_current + k * high_previous) * weight_high;
    const float low_term = (centre * low_current + k * low_previous) * weight_low;
    ends_centred += coefficient * (high_term - low_term);
    // two recurrence steps: k -> k + 1 -> k + 2
    for (int j = k; j <= k + 1; ++j) {
      const float low_next = v_low * low_current - static_cast<float>(j) * inverse_variance * low_previous;
      const float high_next = v_high * high_current - static_cast<float>(j) * inverse_variance * high_previous;
      low_previous = low_current;
      low_current = low_next;
      high_previous = high_current;
      high_current = high_next;
    }
  }
  return centre_value + step * ends_centred / (sigma_points * mass + ends);
}

// The Euler-Maclaurin mean, branch-free (so a loop over it vectorises), in the frame reflected
// so that z lies on the near end's side of the midpoint. It writes the truncated-Gaussian mean as
// y + sigma' (g_near - g_far) / M, which is accurate where z is inside the lattice or at most
// kLatticeFastOutsideSigmas outside and the lattice spans at least a quarter sigma
// (lattice_euler_maclaurin_fast_holds);
// lattice_euler_maclaurin_mean (relative to the nearer end, as interval_mean) redoes the others.
// Same derivation as reference.lattice_euler_maclaurin_mean.
// Terms: how many Euler-Maclaurin terms to sum (lattice_euler_maclaurin_terms); inverse_sigma_points =
// step / sqrt(s), so the caller can form it without a division.
template <int Terms = kEulerMaclaurinTerms>
OB_INLINE float lattice_euler_maclaurin_fast(float z, float low, float step, float inverse_step, float last,
                                             float sigma_points, float inverse_sigma_points) {
  const float y = (z - low) * inverse_step;
  const bool above = y > 0.5f * last;
  const float y_near = above ? last - y : y;  // points from the near end (negative: outside)
  const float a = -y_near * inverse_sigma_points;  // u at the near end (>= 0 outside)
  const float b = (last - y_near) * inverse_sigma_points;  // u at the far end (> 0)
  const float d = a > 0.0f ? a : 0.0f;
  const float weight_near = fastmath::exp_or_zero(-0.5f * (a - d) * (a + d));
  const float weight_far = fastmath::exp_or_zero(-0.5f * (b - d) * (b + d));
  // Two divisions, not six (a division costs several multiplications on a CPU's vector unit):
  // Mills' ratio R(x) = (x + 2) / D(x), D = P(q) + x (x + 2) with q = 1 - 4/(x + 2) (special.h),
  // both ends' 1/(x + 2) from one reciprocal, and the mass M = mass_scaled / (D_near D_far).
  const float a_abs = a < 0.0f ? -a : a;
  const float a_shift = a_abs + 2.0f, b_shift = b + 2.0f;
  const float inverse_shifts = 1.0f / (a_shift * b_shift);
  const float near_denominator =
      special::mean_excess_polynomial(1.0f - 4.0f * b_shift * inverse_shifts) + a_abs * a_shift;
  const float far_denominator = special::mean_excess_polynomial(1.0f - 4.0f * a_shift * inverse_shifts) + b * b_shift;
  const float both = near_denominator * far_denominator;
  const float near_part = a_shift * far_denominator;
  const float mass_scaled = (a >= 0.0f ? near_part : 2.5066282746310002f * both - weight_near * near_part) -
                            weight_far * b_shift * near_denominator;
  // He_k(u)/sigma'^k at both ends by the three-term recurrence in v = u/sigma'.
  const float inverse_variance = inverse_sigma_points * inverse_sigma_points;
  float v_near = a * inverse_sigma_points, v_far = b * inverse_sigma_points;
  v_near = v_near > 1e3f ? 1e3f : v_near;
  v_far = v_far > 1e3f ? 1e3f : v_far;
  float near_even[Terms], near_odd[Terms], far_even[Terms], far_odd[Terms];  // He_(2p-2), He_(2p-1)
  float near_previous = 1.0f, near_current = v_near, far_previous = 1.0f, far_current = v_far;
  for (int p = 1; p <= Terms; ++p) {
    const float k = static_cast<float>(2 * p - 1);
    near_even[p - 1] = near_previous;
    near_odd[p - 1] = near_current;
    far_even[p - 1] = far_previous;
    far_odd[p - 1] = far_current;
    const float near_next = v_near * near_current - k * inverse_variance * near_previous;
    const float far_next = v_far * far_current - k * inverse_variance * far_previous;
    near_previous = near_next;
    far_previous = far_next;
    near_current = v_near * near_next - (k + 1.0f) * inverse_variance * near_current;
    far_current = v_far * far_next - (k + 1.0f) * inverse_variance * far_current;
  }
  float ends = 0.5f * (weight_near + weight_far);
  for (int p = 1; p <= Terms; ++p) {
    ends += euler_maclaurin_coefficient(p) * (near_odd[p - 1] * weight_near - far_odd[p - 1] * weight_far);
  }
  // sigma' M + ends = denominator / (D_near D_far); one division serves 1/M and 1/(sigma' M + ends).
  const float denominator = sigma_points * mass_scaled + ends * both;
  const float inverse = 1.0f / (mass_scaled * denominator);
  const float centre = y_near + sigma_points * (weight_near - weight_far) * both * denominator * inverse;
  float ends_centred = 0.5f * ((last - centre) * weight_far - centre * weight_near);
  for (int p = 1; p <= Terms; ++p) {
    const float k = static_cast<float>(2 * p - 1);
    ends_centred += euler_maclaurin_coefficient(p) *
                    ((-(last - centre) * far_odd[p - 1] + k * far_even[p - 1]) * weight_far -
                     (centre * near_odd[p - 1] + k * near_even[p - 1]) * weight_near);
  }
  const float mean_near = centre + ends_centred * both * mass_scaled * inverse;
  return low + step * (above ? last - mean_near : mean_near);
}

// How far outside, in sigmas, lattice_euler_maclaurin_fast still holds. Outside, its centre is
// y_near + sigma' / R(a) - ..., a difference of terms of size a sigma': the polynomial's relative
// error in R (1.4e-7) becomes an absolute error of about 2e-7 a sigma' (measured against the exact
// sum: 1e-6 (|m| + sqrt(s)) at 4 sigmas, 3e-6 at 16), a tenth of the 1e-5 contract here. A
// sampler's states are almost never farther out, so the scalar careful form almost never runs.
constexpr float kLatticeFastOutsideSigmas = 4.0f;

// 1 where lattice_euler_maclaurin_fast is accurate, else 0: z at most kLatticeFastOutsideSigmas
// sigmas outside, the lattice at least a quarter sigma wide (arguments as lattice_uses_euler_maclaurin).
OB_INLINE float lattice_euler_maclaurin_fast_holds(float y, float last, float sigma_points) {
  const float outside = -y > y - last ? -y : y - last;
  return (outside <= kLatticeFastOutsideSigmas * sigma_points ? 1.0f : 0.0f) *
         (last >= 0.25f * sigma_points ? 1.0f : 0.0f);
}

// ---------------------------------------------------------------------------------------
// The last step's lattice draw where many points carry weight (reference.lattice_euler_maclaurin_draw)
// ---------------------------------------------------------------------------------------

// As reference.LATTICE_DRAW_CORRECTIONS: one-point moves from the continuous quantile.
constexpr int kLatticeDrawCorrections = 3;

// The integral over [t_a, t_b] of exp(-(t^2 - t_c^2)/2) (t_a <= t_b), w the integrand at the ends:
// Mills' ratios in either tail, positive halves across 0 (only when y lies inside, |t_c| small).
OB_INLINE float scaled_gaussian_mass(float t_a, float t_b, float w_a, float w_b, float t_c) {
  if (t_a >= 0.0f) return w_a * special::mills_ratio(t_a) - w_b * special::mills_ratio(t_b);
  if (t_b <= 0.0f) return w_b * special::mills_ratio(-t_b) - w_a * special::mills_ratio(-t_a);
  const float half_square = 0.5f * t_c * t_c;
  return 2.5066282746310002f * fastmath::exp(half_square > 80.0f ? 80.0f : half_square) *
         special::normal_mass(t_a, t_b);
}

// Partial sums S(k) = w_0 + ... + w_k of w_k = exp(-((k - y)^2 - (c - y)^2) / (2 sigma'^2)), c the
// nearest point, by Euler-Maclaurin (the end terms of lattice_euler_maclaurin_mean).
struct LatticePartialSums {
  float y, sigma_points, inverse_sigma_points, t_c, t_0, w_0;
  float hermite_0[2 * kEulerMaclaurinTerms];  // He_j(t_0) / sigma'^j, j = 0..7

  OB_INLINE LatticePartialSums(float y_, float sigma_points_, float last) : y(y_), sigma_points(sigma_points_) {
    inverse_sigma_points = 1.0f / sigma_points;
    float nearest = rintf(y);
    nearest = nearest < 0.0f ? 0.0f : (nearest > last ? last : nearest);
    t_c = (nearest - y) * inverse_sigma_points;
    t_0 = -y * inverse_sigma_points;
    w_0 = weight_at(t_0);
    scaled_hermite(t_0, hermite_0);
  }
  OB_INLINE float weight_at(float t) const { return fastmath::exp(-0.5f * (t - t_c) * (t + t_c)); }
  OB_INLINE float weight(float k) const { return weight_at((k - y) * inverse_sigma_points); }
  OB_INLINE void scaled_hermite(float t, float* out) const {
    float v = t * inverse_sigma_points;
    v = v < -1e3f ? -1e3f : (v > 1e3f ? 1e3f : v);  // beyond, the end's weight is 0: keep the product finite
    const float inverse_variance = inverse_sigma_points * inverse_sigma_points;
    out[0] = 1.0f;
    out[1] = v;
    for (int j = 1; j + 1 < 2 * kEulerMaclaurinTerms; ++j) {
      out[j + 1] = v * out[j] - static_cast<float>(j) * inverse_variance * out[j - 1];
    }
  }
  OB_INLINE float sum_to(float k) const {
    const float t_k = (k - y) * inverse_sigma_points;
    const float w_k = weight_at(t_k);
    float hermite_k[2 * kEulerMaclaurinTerms];
    scaled_hermite(t_k, hermite_k);
    float total = sigma_points * scaled_gaussian_mass(t_0, t_k, w_0, w_k, t_c) + 0.5f * (w_0 + w_k);
    for (int p = 1; p <= kEulerMaclaurinTerms; ++p) {
      total += euler_maclaurin_coefficient(p) * (hermite_0[2 * p - 1] * w_0 - hermite_k[2 * p - 1] * w_k);
    }
    return total;
  }
};

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

// Index k (as a float) of the inverse-CDF draw over the lattice {0..last} in points (y = (mean -
// low)/step, sigma' = sqrt(s)/step) where many points carry weight: the continuous quantile on
// [-1/2, last + 1/2], then kLatticeDrawCorrections one-point moves by the partial sums. Bounded
// cost whatever K; as reference.lattice_euler_maclaurin_draw.
OB_INLINE float lattice_euler_maclaurin_draw(float y, float sigma_points, float last, float u) {
  const LatticePartialSums sums(y, sigma_points, last);
  const float target = u * sums.sum_to(last);
  // truncated_normal draws from the upper end down when the mean lies above the interval.
  const float upper_end = last + 0.5f;
  const float guess = truncated_normal(y, sigma_points, -0.5f, upper_end, y >= upper_end ? 1.0f - u : u);
  float k = rintf(guess);
  k = k < 0.0f ? 0.0f : (k > last ? last : k);
  float running = sums.sum_to(k);
  for (int move = 0; move < kLatticeDrawCorrections; ++move) {
    if (running < target && k < last) {
      k += 1.0f;
      running += sums.weight(k);
    } else if (k > 0.0f) {
      const float w_k = sums.weight(k);
      if (running - w_k >= target) {
        running -= w_k;
        k -= 1.0f;
      }
    }
  }
  return k;
}

// The last step's draw on a lattice {low + k step, k = 0..points - 1} from N(mean, sigma^2), u in
// (0, 1]: Euler-Maclaurin partial sums where many points carry weight (lattice_euler_maclaurin_draw),
// elsewhere the inverse CDF over a window of at most kLatticeWindowLimit points on either side of
// the nearest (all that carry weight, or, far outside, all but < e^-25 of it), its weights summed
// twice (total, then running) instead of stored. Bounded cost whatever K; a canonical point.
OB_INLINE float lattice_draw(float mean, float sigma, float inverse_s, double low, double step, std::int64_t points,
                             float u) {
  const float y = static_cast<float>((static_cast<double>(mean) - low) / step);
  const float sigma_points = static_cast<float>(sigma / step);
  const float last_point = static_cast<float>(points - 1);
  if (lattice_uses_euler_maclaurin(y, last_point, sigma_points) != 0.0f) {
    return lattice_point(low, step, static_cast<std::int64_t>(lattice_euler_maclaurin_draw(y, sigma_points, last_point, u)));
  }
  const std::int64_t nearest = lattice_nearest(mean, low, step, points);
  const std::int64_t window = lattice_radius(sigma, step, points);
  const std::int64_t limit = static_cast<std::int64_t>(kLatticeWindowLimit);
  const std::int64_t radius = window < limit ? window : limit;
  const std::int64_t first = nearest - radius > 0 ? nearest - radius : 0;
  const std::int64_t last = nearest + radius < points - 1 ? nearest + radius : points - 1;
  const float x_near = lattice_point(low, step, nearest);
  const float delta_near = x_near - mean;
  const float inverse_two_s = 0.5f * inverse_s;
  float total = 0.0f;
  for (std::int64_t j = first; j <= last; ++j) {
    total += fastmath::exp(lattice_logit(lattice_point(low, step, j) - x_near, delta_near, inverse_two_s));
  }
  const float threshold = u * total;
  float running = 0.0f;
  for (std::int64_t j = first; j <= last; ++j) {
    running += fastmath::exp(lattice_logit(lattice_point(low, step, j) - x_near, delta_near, inverse_two_s));
    if (running >= threshold) return lattice_point(low, step, j);
  }
  return lattice_point(low, step, last);
}

// Attempts of the vMF rejection sampler (as reference._von_mises_fisher), each with its own streams.
constexpr int kVonMisesAttempts = 64;

// Wood's (1994) rejection sampler for vMF(direction, norm / s) on the sphere of the d columns
// starting at `offset`, as reference._von_mises_fisher: Beta((d-1)/2, (d-1)/2) as A/(A+B) with A, B
// sums of d-1 squared normals, attempt i on streams 3 + 3i .. 5 + 3i, the tangent on stream 2.
// direction(c) is the unit mean's entry c; out (d entries) also holds the intermediate vectors.
template <typename Direction>
OB_INLINE void von_mises_fisher_draw(Direction direction, float norm, float s, std::int64_t offset, std::int64_t d,
                                     const philox::RowNoise& noise, float* out) {
  const float kappa = norm / s;
  const float dm1 = static_cast<float>(d - 1);
  const float b = dm1 / (2.0f * kappa + sqrtf(4.0f * kappa * kappa + dm1 * dm1));
  const float one_minus_x0 = 2.0f * b / (1.0f + b);
  const float x0 = 1.0f - one_minus_x0;
  const float log_term = fastmath::log(one_minus_x0) + special::log1p(x0);
  float one_minus_w = 1.0f;
  for (int attempt = 0; attempt < kVonMisesAttempts; ++attempt) {
    const std::uint32_t stream = philox::kStreamVonMisesFirst + 3u * static_cast<std::uint32_t>(attempt);
    float chi_a = 0.0f, chi_b = 0.0f;
    for (std::int64_t c = 0; c < d - 1; ++c) {
      const float first = noise.normal(offset + c, stream);
      const float second = noise.normal(offset + c, stream + 1);
      chi_a += first * first;
      chi_b += second * second;
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
    out[c] = noise.normal(offset + c, philox::kStreamSphereDirection);
    along += out[c] * direction(c);
  }
  float tangent_squared = 0.0f;
  for (std::int64_t c = 0; c < d; ++c) {
    out[c] -= along * direction(c);
    tangent_squared += out[c] * out[c];
  }
  const float tangent_norm = sqrtf(tangent_squared);
  const float tangent_scale = 1.0f / (tangent_norm < special::kTiny ? special::kTiny : tangent_norm);
  const float spread_squared = one_minus_w * (1.0f + w);
  const float spread = sqrtf(spread_squared < 0.0f ? 0.0f : spread_squared);
  float sample_squared = 0.0f;
  for (std::int64_t c = 0; c < d; ++c) {
    out[c] = w * direction(c) + spread * tangent_scale * out[c];
    sample_squared += out[c] * out[c];
  }
  const float sample_scale = 1.0f / sqrtf(sample_squared);
  for (std::int64_t c = 0; c < d; ++c) out[c] *= sample_scale;
}

}  // namespace posterior
}  // namespace omegabridge
