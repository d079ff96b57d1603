// Philox4x32-10 counter-based noise: the C++ / CUDA side of the contract in docs/noise.md.
//
// The torch reference is omegabridge/core/noise.py. Given the same (seed, step, row, column,
// stream), the functions here produce the same 32-bit words and the same uniforms bit for
// bit. Normals use the branch-free float log and sincos of fastmath.h (so loops over them
// vectorise) and agree with the torch reference up to float rounding (a few ulp).
//
// Header-only, C++17; every function is OB_INLINE (host and device, forced inline), so it compiles with g++ /
// clang++ and, unchanged, in CUDA device code under nvcc.
#pragma once

#include <cmath>
#include <cstdint>

#include "omegabridge/config.h"
#include "omegabridge/fastmath.h"

namespace omegabridge {
namespace philox {

constexpr std::uint32_t kM0 = 0xD2511F53u;  // multiplier of counter word 0
constexpr std::uint32_t kM1 = 0xCD9E8D57u;  // multiplier of counter word 2
constexpr std::uint32_t kW0 = 0x9E3779B9u;  // Weyl increment of key word 0
constexpr std::uint32_t kW1 = 0xBB67AE85u;  // Weyl increment of key word 1
constexpr int kRounds = 10;

// Four 32-bit words: a Philox counter, or the output block of one Philox call.
struct Counter {
  std::uint32_t w[4];
};

// Two 32-bit key words: (seed mod 2^32, seed >> 32).
struct Key {
  std::uint32_t k[2];
};

// High and low halves of the 64-bit product a * b (one IMAD.WIDE on a GPU, where __umulhi and a
// separate a * b are two instructions).
OB_INLINE void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t* hi,
                                   std::uint32_t* lo) {
  const std::uint64_t product = static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b);
  *hi = static_cast<std::uint32_t>(product >> 32);
  *lo = static_cast<std::uint32_t>(product);
}

// One Philox round: (c0, c1, c2, c3) -> (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0).
OB_INLINE void philox_round(std::uint32_t& c0, std::uint32_t& c1, std::uint32_t& c2, std::uint32_t& c3,
                            std::uint32_t k0, std::uint32_t k1) {
  std::uint32_t hi0, lo0, hi1, lo1;
  mulhilo(kM0, c0, &hi0, &lo0);
  mulhilo(kM1, c2, &hi1, &lo1);
  c0 = hi1 ^ c1 ^ k0;
  c1 = lo1;
  c2 = hi0 ^ c3 ^ k1;
  c3 = lo0;
}

// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, SC'11) on plain words: ten rounds, the key bumped
// by the Weyl constants between rounds. Plain scalars (no arrays) so that a loop over blocks
// calling it vectorises; the rounds are fully unrolled for the same reason.
OB_INLINE void philox4x32_10_words(std::uint32_t& c0, std::uint32_t& c1, std::uint32_t& c2,
                                   std::uint32_t& c3, std::uint32_t k0, std::uint32_t k1) {
#if defined(__CUDACC__)
#pragma unroll
#elif defined(__GNUC__)
#pragma GCC unroll 16
#endif
  for (int i = 0; i < kRounds; ++i) {
    philox_round(c0, c1, c2, c3, k0, k1);
    k0 += kW0;
    k1 += kW1;
  }
}

// The key of every round, computed once per launch: a GPU kernel reads them from its parameters
// (constant memory, an operand of the XOR itself) instead of adding the Weyl constants in every
// thread, which cost as many instructions as the rounds' multiplies.
struct RoundKeys {
  std::uint32_t k0[kRounds], k1[kRounds];
};

OB_INLINE RoundKeys round_keys(std::uint64_t seed) {
  RoundKeys keys;
  std::uint32_t k0 = static_cast<std::uint32_t>(seed & 0xFFFFFFFFull), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int i = 0; i < kRounds; ++i) {
    keys.k0[i] = k0;
    keys.k1[i] = k1;
    k0 += kW0;
    k1 += kW1;
  }
  return keys;
}

// philox4x32_10_words with the round keys given.
OB_INLINE void philox4x32_10_words(std::uint32_t& c0, std::uint32_t& c1, std::uint32_t& c2,
                                   std::uint32_t& c3, const RoundKeys& keys) {
#if defined(__CUDACC__)
#pragma unroll
#elif defined(__GNUC__)
#pragma GCC unroll 16
#endif
  for (int i = 0; i < kRounds; ++i) philox_round(c0, c1, c2, c3, keys.k0[i], keys.k1[i]);
}

// The same on a Counter and a Key; returns the four output words.
OB_INLINE Counter philox4x32_10(Counter counter, Key key) {
  philox4x32_10_words(counter.w[0], counter.w[1], counter.w[2], counter.w[3], key.k[0], key.k[1]);
  return counter;
}

// Key of a 64-bit seed: (seed mod 2^32, seed >> 32).
OB_INLINE Key make_key(std::uint64_t seed) {
  Key key;
  key.k[0] = static_cast<std::uint32_t>(seed & 0xFFFFFFFFull);
  key.k[1] = static_cast<std::uint32_t>(seed >> 32);
  return key;
}

// The streams of docs/noise.md (as omegabridge/core/noise.py and kernels/philox.py): every kernel
// takes its stream numbers from here.
constexpr std::uint32_t kStreamStep = 0;            // the step's normals (and Real columns at the last step)
constexpr std::uint32_t kStreamFinalUniform = 1;    // the last step's one uniform per column
constexpr std::uint32_t kStreamSphereDirection = 2; // the vMF draw's tangent direction
constexpr std::uint32_t kStreamVonMisesFirst = 3;   // vMF attempt i: 3 + 3i, 4 + 3i, 5 + 3i
constexpr std::uint32_t kStreamTrain = 0x8000;      // the training target's normals

// Counter of the block holding `column` of global row `row` (row < 2^48, stream < 2^16):
// (column / 4, row mod 2^32, (row >> 32) | (stream << 16), step).
OB_INLINE Counter make_counter(std::uint32_t step, std::uint64_t row,
                                           std::uint64_t column, std::uint32_t stream) {
  Counter c;
  c.w[0] = static_cast<std::uint32_t>(column >> 2);
  c.w[1] = static_cast<std::uint32_t>(row & 0xFFFFFFFFull);
  c.w[2] = static_cast<std::uint32_t>(row >> 32) | (stream << 16);
  c.w[3] = step;
  return c;
}

// The whole block of four words holding columns 4g .. 4g + 3 (g = column / 4).
OB_INLINE Counter philox_block(std::uint64_t seed, std::uint32_t step,
                                           std::uint64_t row, std::uint64_t column,
                                           std::uint32_t stream) {
  return philox4x32_10(make_counter(step, row, column, stream), make_key(seed));
}

// Word i (0..3) of a block, without dynamic indexing (keeps CUDA blocks in registers).
OB_INLINE std::uint32_t block_word(const Counter& block, unsigned i) {
  const std::uint32_t low = (i & 1u) ? block.w[1] : block.w[0];
  const std::uint32_t high = (i & 1u) ? block.w[3] : block.w[2];
  return (i & 2u) ? high : low;
}

// The 32-bit word of (seed, step, row, column, stream): word column % 4 of its block.
OB_INLINE std::uint32_t philox_word(std::uint64_t seed, std::uint32_t step,
                                                std::uint64_t row, std::uint64_t column,
                                                std::uint32_t stream) {
  return block_word(philox_block(seed, step, row, column, stream),
                    static_cast<unsigned>(column & 3u));
}

// Uniform in (0, 1]: ((w >> 8) + 1) * 2^-24. Exact in float32 (a 24-bit integer times a
// power of two), so it matches the torch reference bit for bit.
OB_INLINE float uniform_from_word(std::uint32_t w) {
  return static_cast<float>((w >> 8) + 1u) * 5.9604644775390625e-08f;  // 2^-24
}

// Box-Muller on one pair of uniforms (u_a of column 2j, u_b of column 2j + 1):
// r = sqrt(-2 log u_a), theta = 2 pi u_b; *even = r cos(theta) (column 2j),
// *odd = r sin(theta) (column 2j + 1). u_a in (0, 1] keeps log finite.
// Float math: equal to the torch reference up to float rounding on the host, to the error bounds
// of docs/noise.md on a GPU (fastmath.h's noise_log, noise_sincos_two_pi, square_root).
OB_INLINE void box_muller(float u_a, float u_b, float* even, float* odd) {
  const float r = fastmath::square_root(-2.0f * fastmath::noise_log(u_a));
  float s, c;
  fastmath::noise_sincos_two_pi(u_b, &s, &c);
  *even = r * c;
  *odd = r * s;
}

// Normal of one column from its block: the pair (2j, 2j + 1) with j = column / 2 always lies
// in the same block of four words. Even column -> r cos, odd column -> r sin. For an odd
// width the last (even) column pairs with the virtual column `width`, which is just word
// (column + 1) % 4 of the same block, so no special case is needed.
OB_INLINE float normal_from_block(const Counter& block, std::uint64_t column) {
  const unsigned first = static_cast<unsigned>(column & 2u);  // word of column 2j: 0 or 2
  float even, odd;
  box_muller(uniform_from_word(block_word(block, first)),
             uniform_from_word(block_word(block, first + 1u)), &even, &odd);
  return (column & 1u) ? odd : even;
}

// Standard normal of (seed, step, row, column, stream) by Box-Muller (docs/noise.md).
OB_INLINE float box_muller_normal(std::uint64_t seed, std::uint32_t step,
                                              std::uint64_t row, std::uint64_t column,
                                              std::uint32_t stream) {
  return normal_from_block(philox_block(seed, step, row, column, stream), column);
}

// Uniform in (0, 1] of (seed, step, row, column, stream).
OB_INLINE float uniform(std::uint64_t seed, std::uint32_t step, std::uint64_t row,
                                    std::uint64_t column, std::uint32_t stream) {
  return uniform_from_word(philox_word(seed, step, row, column, stream));
}

// The noise of one global row at one step: what the last step's draws read.
struct RowNoise {
  std::uint64_t seed;
  std::uint32_t step;
  std::uint64_t row;
  OB_INLINE float uniform(std::int64_t column, std::uint32_t stream) const {
    return philox::uniform(seed, step, row, static_cast<std::uint64_t>(column), stream);
  }
  OB_INLINE float normal(std::int64_t column, std::uint32_t stream) const {
    return box_muller_normal(seed, step, row, static_cast<std::uint64_t>(column), stream);
  }
};

}  // namespace philox

// Flat aliases so callers can write omegabridge::philox_word(...) as in docs/noise.md.
using philox::box_muller;
using philox::box_muller_normal;
using philox::philox4x32_10;
using philox::philox_word;
using philox::uniform_from_word;

}  // namespace omegabridge
