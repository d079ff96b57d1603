// Philox4x32-10 of eight counters at once with AVX2 intrinsics, for the CPU kernels' noise tile.
//
// The compiler vectorises philox::philox4x32_10_words on its own, but it widens each 32x32->64
// multiply with cross-lane shuffles (about 600 instructions per 8 blocks); here each multiply
// is two vpmuludq on the even and odd lanes and two blends (about 180). Same words as
// omegabridge/philox.h bit for bit (tests/test_kernel_contract.py compares the step's noise with
// the torch reference's). Compiled with target("avx2") and called only when the CPU has AVX2
// (cpu_has_avx2()), so the rest of the extension stays baseline x86-64.
#pragma once

#include <cstdint>

#include "omegabridge/philox.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(OB_NO_ISA_CLONES)
#define OB_HAVE_PHILOX_AVX2 1
#include <immintrin.h>

namespace omegabridge {
namespace cpu {

// Whether this CPU runs AVX2 (checked once).
inline bool cpu_has_avx2() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
}

__attribute__((target("avx2"), always_inline)) inline void mulhilo8(__m256i a, __m256i multiplier,
                                                                      __m256i* hi, __m256i* lo) {
  const __m256i even = _mm256_mul_epu32(a, multiplier);                          // lanes 0, 2, 4, 6
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), multiplier);    // lanes 1, 3, 5, 7
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

// The four words of the blocks of a tile, in planar arrays, for the largest multiple of 8
// blocks <= count; returns how many it wrote (the caller does the rest). Block b's counter is
// (block_column[b], first_row + block_row[b] (low, high | stream << 16), step).
__attribute__((target("avx2"))) inline std::int64_t philox_tile_words_avx2(
    std::uint32_t* __restrict w0, std::uint32_t* __restrict w1, std::uint32_t* __restrict w2,
    std::uint32_t* __restrict w3, const std::uint32_t* __restrict block_row,
    const std::uint32_t* __restrict block_column, std::int64_t count, std::uint64_t first_row,
    const philox::Key key, std::uint32_t step, std::uint32_t stream) {
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i row_low_vector = _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(first_row)));
  const __m256i high_bits = _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(first_row >> 32)));
  const __m256i stream_bits = _mm256_set1_epi32(static_cast<int>(stream << 16));
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(philox::kM0));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(philox::kM1));
  std::int64_t b = 0;
  for (; b + 8 <= count; b += 8) {
    __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block_column + b));
    __m256i c1 = _mm256_add_epi32(row_low_vector, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block_row + b)));
    // carry into the high word where the 32-bit add wrapped (unsigned c1 < row_low): -1 there
    const __m256i carry = _mm256_cmpgt_epi32(_mm256_xor_si256(row_low_vector, sign), _mm256_xor_si256(c1, sign));
    __m256i c2 = _mm256_or_si256(_mm256_sub_epi32(high_bits, carry), stream_bits);
    __m256i c3 = _mm256_set1_epi32(static_cast<int>(step));
    std::uint32_t k0 = key.k[0], k1 = key.k[1];
#pragma GCC unroll 16
    for (int round = 0; round < philox::kRounds; ++round) {
      __m256i hi0, lo0, hi1, lo1;
      mulhilo8(c0, m0, &hi0, &lo0);
      mulhilo8(c2, m1, &hi1, &lo1);
      c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(static_cast<int>(k0)));
      c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(static_cast<int>(k1)));
      c1 = lo1;
      c3 = lo0;
      k0 += philox::kW0;
      k1 += philox::kW1;
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w0 + b), c0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w1 + b), c1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w2 + b), c2);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w3 + b), c3);
  }
  return b;
}

}  // namespace cpu
}  // namespace omegabridge
#else
#define OB_HAVE_PHILOX_AVX2 0
#endif
