// What the CPU kernels' two files (kernels.cpp: mean, step, bridge step, target; final_step.cpp:
// the exact last step) share: the ISA-clone and SIMD macros, widening loads of the drift and the
// data, and the Philox words of a noise tile.
#pragma once

#include <algorithm>
#include <cstdint>

#include "omegabridge/config.h"
#include "omegabridge/philox.h"
#include "philox_avx2.h"

// OB_NO_ISA_CLONES (setup.py: OMEGABRIDGE_CPU_BASELINE=1) builds the baseline only. Otherwise each
// tile function is compiled for AVX-512, AVX2+FMA and baseline x86-64, and the CPU picks at load.
#if !defined(OB_NO_ISA_CLONES) && defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && \
    (!defined(__clang__) || __clang_major__ >= 14)
#define OB_ISA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define OB_HAVE_ISA_CLONES 1
#else
#define OB_ISA_CLONES
#define OB_HAVE_ISA_CLONES 0
#endif

#if defined(_OPENMP)
#define OB_SIMD _Pragma("omp simd")
#else
#define OB_SIMD
#endif

// Lambdas passed to the column and row loops are inlined into the ISA clone that calls them.
#if defined(__GNUC__)
#define OB_LAMBDA_INLINE __attribute__((always_inline))
#else
#define OB_LAMBDA_INLINE
#endif

namespace omegabridge {
namespace cpu {

// Element i of a float32 or bfloat16 (uint16 bits) buffer, as float.
template <typename T>
OB_INLINE float load(const T* data, std::int64_t i);
template <>
OB_INLINE float load<float>(const float* data, std::int64_t i) { return data[i]; }
template <>
OB_INLINE float load<std::uint16_t>(const std::uint16_t* data, std::int64_t i) {
  return float_of_bfloat16(data[i]);
}

// The four Philox words of `count` blocks into the planar arrays w0..w3. Block b's counter is
// (block_column[b], first_row + block_row[b] (low, high | stream << 16), step). The AVX2 Philox
// writes whole groups of 8 blocks where the CPU has it, the compiler-vectorised one the rest
// (integer math: the same words either way).
OB_INLINE void philox_tile_words(std::uint32_t* __restrict w0, std::uint32_t* __restrict w1,
                                 std::uint32_t* __restrict w2, std::uint32_t* __restrict w3,
                                 const std::uint32_t* __restrict block_row,
                                 const std::uint32_t* __restrict block_column, std::int64_t count,
                                 std::uint64_t first_row, const philox::Key key, std::uint32_t step,
                                 std::uint32_t stream) {
  std::int64_t done = 0;  // blocks whose words are written
#if OB_HAVE_PHILOX_AVX2
  if (cpu_has_avx2()) {
    done = philox_tile_words_avx2(w0, w1, w2, w3, block_row, block_column, count, first_row, key, step, stream);
  }
#endif
  const std::uint32_t row_low = static_cast<std::uint32_t>(first_row);
  const std::uint32_t row_high = static_cast<std::uint32_t>(first_row >> 32);
  const std::uint32_t stream_bits = stream << 16;
  OB_SIMD
  for (std::int64_t b = done; b < count; ++b) {
    const std::uint32_t low = row_low + block_row[b];
    std::uint32_t a0 = block_column[b], a1 = low;
    std::uint32_t a2 = (row_high + (low < row_low ? 1u : 0u)) | stream_bits, a3 = step;
    philox::philox4x32_10_words(a0, a1, a2, a3, key.k[0], key.k[1]);
    w0[b] = a0;
    w1[b] = a1;
    w2[b] = a2;
    w3[b] = a3;
  }
}

// tile(call, first, count, scratch) for the tiles of `tile_rows` rows that cover `rows`, split
// statically over `threads` OpenMP threads; each thread keeps one Scratch, grown by
// scratch.reserve(call) and reused by every tile and call it runs.
template <typename Scratch, typename Call, typename Tile>
void for_tiles(const Call& call, std::int64_t rows, std::int64_t tile_rows, int threads, Tile tile) {
  const std::int64_t tiles = (rows + tile_rows - 1) / tile_rows;
  threads = std::max(1, threads);
  if (tiles < threads) threads = static_cast<int>(tiles);
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    thread_local Scratch scratch;
    scratch.reserve(call);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (std::int64_t t = 0; t < tiles; ++t) {
      const std::int64_t first = t * tile_rows;
      tile(call, first, std::min(tile_rows, rows - first), scratch);
    }
  }
}

}  // namespace cpu
}  // namespace omegabridge
