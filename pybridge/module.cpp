// omegabridge._native_ext: CPU kernels of the Philox noise contract (docs/noise.md).
//
// Functions take raw data pointers (Python ints from tensor.data_ptr()) and sizes, release
// the GIL and fill a row-major contiguous (rows, width) buffer. The Python dispatch layer
// checks dtypes, shapes, contiguity and devices; here only cheap argument checks are made.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "omegabridge/philox.h"

namespace py = pybind11;
namespace ph = omegabridge::philox;

namespace {

constexpr std::int64_t kMaxRow = std::int64_t{1} << 48;  // rows lie in [0, 2^48)

struct Address {
  std::uint64_t seed;
  std::uint32_t step;
  std::uint64_t row_offset;
  std::uint32_t stream;
};

// Cheap checks of the sizes and address; raises ValueError.
Address check(std::int64_t rows, std::int64_t width, std::uint64_t seed, std::int64_t step,
              std::int64_t row_offset, std::int64_t stream) {
  if (rows < 0 || width < 0) {
    throw py::value_error("rows and width must be non-negative, got rows=" +
                          std::to_string(rows) + ", width=" + std::to_string(width));
  }
  if (step < 0 || step > std::int64_t{0xFFFFFFFF}) {
    throw py::value_error("step must be in [0, 2^32), got " + std::to_string(step));
  }
  if (stream < 0 || stream > 0xFFFF) {
    throw py::value_error("stream must be in [0, 2^16), got " + std::to_string(stream));
  }
  if (row_offset < 0 || row_offset > kMaxRow || rows > kMaxRow - row_offset) {
    throw py::value_error("rows [" + std::to_string(row_offset) + ", row_offset + " +
                          std::to_string(rows) + ") must lie in [0, 2^48)");
  }
  return Address{seed, static_cast<std::uint32_t>(step), static_cast<std::uint64_t>(row_offset),
                 static_cast<std::uint32_t>(stream)};
}

// Calls fill(block, row_out, first_column, count) for every block of four columns of every
// row; count (1..4) is how many of the block's columns lie inside `width`.
template <typename T, typename Fill>
void for_each_block(T* out, std::int64_t rows, std::int64_t width, const Address& a, Fill fill) {
  const ph::Key key = ph::make_key(a.seed);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * width >= 16384)
#endif
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::uint64_t row = a.row_offset + static_cast<std::uint64_t>(i);
    T* row_out = out + i * width;
    for (std::int64_t c = 0; c < width; c += 4) {
      const ph::Counter block = ph::philox4x32_10(
          ph::make_counter(a.step, row, static_cast<std::uint64_t>(c), a.stream), key);
      const int count = static_cast<int>(width - c < 4 ? width - c : 4);
      fill(block, row_out + c, count);
    }
  }
}

void philox_words(std::uintptr_t out_ptr, std::int64_t rows, std::int64_t width,
                  std::uint64_t seed, std::int64_t step, std::int64_t row_offset,
                  std::int64_t stream) {
  const Address a = check(rows, width, seed, step, row_offset, stream);
  if (rows == 0 || width == 0) return;
  auto* out = reinterpret_cast<std::int64_t*>(out_ptr);
  py::gil_scoped_release release;
  for_each_block(out, rows, width, a, [](const ph::Counter& b, std::int64_t* o, int n) {
    for (int k = 0; k < n; ++k) o[k] = static_cast<std::int64_t>(b.w[k]);
  });
}

void uniforms(std::uintptr_t out_ptr, std::int64_t rows, std::int64_t width, std::uint64_t seed,
              std::int64_t step, std::int64_t row_offset, std::int64_t stream) {
  const Address a = check(rows, width, seed, step, row_offset, stream);
  if (rows == 0 || width == 0) return;
  auto* out = reinterpret_cast<float*>(out_ptr);
  py::gil_scoped_release release;
  for_each_block(out, rows, width, a, [](const ph::Counter& b, float* o, int n) {
    for (int k = 0; k < n; ++k) o[k] = ph::uniform_from_word(b.w[k]);
  });
}

void normals(std::uintptr_t out_ptr, std::int64_t rows, std::int64_t width, std::uint64_t seed,
             std::int64_t step, std::int64_t row_offset, std::int64_t stream) {
  const Address a = check(rows, width, seed, step, row_offset, stream);
  if (rows == 0 || width == 0) return;
  auto* out = reinterpret_cast<float*>(out_ptr);
  py::gil_scoped_release release;
  for_each_block(out, rows, width, a, [](const ph::Counter& b, float* o, int n) {
    // Pairs (0, 1) and (2, 3) of the block; an odd last column pairs with the virtual
    // column `width`, whose word is already in the block.
    float pair[4];
    ph::box_muller(ph::uniform_from_word(b.w[0]), ph::uniform_from_word(b.w[1]), &pair[0],
                   &pair[1]);
    if (n > 2) {
      ph::box_muller(ph::uniform_from_word(b.w[2]), ph::uniform_from_word(b.w[3]), &pair[2],
                     &pair[3]);
    }
    for (int k = 0; k < n; ++k) o[k] = pair[k];
  });
}

}  // namespace

PYBIND11_MODULE(_native_ext, m) {
  m.doc() =
      "CPU kernels of omegabridge's Philox4x32-10 noise contract (docs/noise.md). Each function "
      "fills a row-major contiguous (rows, width) buffer given by its address (tensor.data_ptr()) "
      "with the values of global rows row_offset .. row_offset + rows - 1; the GIL is released "
      "while it runs. The caller guarantees the buffer's dtype, size and contiguity.";
  m.attr("abi") = 1;
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
  m.def("philox_words", &philox_words, py::arg("out_ptr"), py::arg("rows"), py::arg("width"),
        py::arg("seed"), py::arg("step"), py::arg("row_offset"), py::arg("stream"),
        "Write the uint32 Philox words (as int64) of a (rows, width) block; compare with "
        "omegabridge.noise.random_words.");
  m.def("uniforms", &uniforms, py::arg("out_ptr"), py::arg("rows"), py::arg("width"),
        py::arg("seed"), py::arg("step"), py::arg("row_offset"), py::arg("stream"),
        "Write float32 uniforms in (0, 1]; bit-identical to omegabridge.noise.uniforms.");
  m.def("normals", &normals, py::arg("out_ptr"), py::arg("rows"), py::arg("width"),
        py::arg("seed"), py::arg("step"), py::arg("row_offset"), py::arg("stream"),
        "Write float32 standard normals (Box-Muller); equal to omegabridge.noise.normals up to "
        "float rounding.");
}
