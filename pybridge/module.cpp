// omegabridge._native_ext: the CPU kernels (csrc/cpu) and the Philox noise contract
// (docs/noise.md) for Python.
//
// Functions take raw data pointers (Python ints from tensor.data_ptr()) of row-major
// contiguous buffers, sizes and a Layout (the segment table, preprocessed once), release
// the GIL while they run, and never allocate a tensor. The Python dispatch layer
// (omegabridge/ops/functional.py) checks dtypes, shapes, contiguity and devices once; here only
// cheap argument checks are made.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "../csrc/cpu/kernels.h"
#include "omegabridge/philox.h"

namespace py = pybind11;
namespace ph = omegabridge::philox;
namespace cpu = omegabridge::cpu;

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

cpu::Layout make_layout(std::int64_t count, std::uintptr_t kinds, std::uintptr_t offsets,
                        std::uintptr_t widths, std::uintptr_t points, std::uintptr_t repeats,
                        std::uintptr_t parameters) {
  if (count < 0) throw py::value_error("segment count must be non-negative");
  try {
    return cpu::Layout::from_segments(count, reinterpret_cast<const std::int32_t*>(kinds),
                                      reinterpret_cast<const std::int64_t*>(offsets),
                                      reinterpret_cast<const std::int64_t*>(widths),
                                      reinterpret_cast<const std::int64_t*>(points),
                                      reinterpret_cast<const std::int64_t*>(repeats),
                                      reinterpret_cast<const double*>(parameters));
  } catch (const std::invalid_argument& error) {
    throw py::value_error(error.what());
  }
}

cpu::NoiseAddress noise_address(std::int64_t rows, std::uint64_t seed, std::int64_t step,
                                std::int64_t row_offset) {
  const Address a = check(rows, 1, seed, step, row_offset, 0);
  return cpu::NoiseAddress{a.seed, a.step, a.row_offset};
}

cpu::Storage storage_of(std::int64_t code) {
  if (code != 0 && code != 1) throw py::value_error("storage must be 0 (float32) or 1 (bfloat16)");
  return static_cast<cpu::Storage>(code);
}

void posterior_mean(const cpu::Layout& layout, std::uintptr_t z, std::uintptr_t remaining,
                    std::uintptr_t out, std::int64_t rows, int threads) {
  check(rows, layout.width, 0, 0, 0, 0);
  py::gil_scoped_release release;
  cpu::posterior_mean(layout, reinterpret_cast<const float*>(z), reinterpret_cast<const float*>(remaining),
                      reinterpret_cast<float*>(out), rows, threads);
}

void step(const cpu::Layout& layout, std::uintptr_t z, std::uintptr_t drift, std::int64_t drift_storage,
          std::uintptr_t out, std::int64_t rows, double remaining, double increment,
          std::uint64_t seed, std::int64_t step_index, std::int64_t row_offset, int threads) {
  const cpu::NoiseAddress address = noise_address(rows, seed, step_index, row_offset);
  const cpu::Storage storage = storage_of(drift_storage);
  py::gil_scoped_release release;
  cpu::step(layout, reinterpret_cast<const float*>(z), reinterpret_cast<const void*>(drift), storage,
            reinterpret_cast<float*>(out), rows, remaining, increment, address, threads);
}

void bridge_step(const cpu::Layout& layout, std::uintptr_t z, std::uintptr_t drift, std::int64_t drift_storage,
                 std::uintptr_t previous, std::uintptr_t out, std::uintptr_t prediction, std::int64_t rows,
                 double remaining, double fraction, double weight, std::uintptr_t spread, std::uint64_t seed,
                 std::int64_t step_index, std::int64_t row_offset, int threads) {
  const cpu::NoiseAddress address = noise_address(rows, seed, step_index, row_offset);
  const cpu::Storage storage = storage_of(drift_storage);
  py::gil_scoped_release release;
  cpu::bridge_step(layout, reinterpret_cast<const float*>(z), reinterpret_cast<const void*>(drift), storage,
                   reinterpret_cast<const float*>(previous), reinterpret_cast<float*>(out),
                   reinterpret_cast<float*>(prediction), rows, remaining, fraction, weight,
                   reinterpret_cast<const float*>(spread), address, threads);
}

void final_step(const cpu::Layout& layout, std::uintptr_t z, std::uintptr_t drift,
                std::int64_t drift_storage, std::uintptr_t out, std::int64_t rows, double remaining,
                std::uint64_t seed, std::int64_t step_index, std::int64_t row_offset, int threads) {
  const cpu::NoiseAddress address = noise_address(rows, seed, step_index, row_offset);
  const cpu::Storage storage = storage_of(drift_storage);
  py::gil_scoped_release release;
  cpu::final_step(layout, reinterpret_cast<const float*>(z), reinterpret_cast<const void*>(drift), storage,
                  reinterpret_cast<float*>(out), rows, remaining, address, threads);
}

void final_step_scalar(const cpu::Layout& layout, std::uintptr_t z, std::uintptr_t drift,
                       std::int64_t drift_storage, std::uintptr_t out, std::int64_t rows, double remaining,
                       std::uint64_t seed, std::int64_t step_index, std::int64_t row_offset, int threads) {
  const cpu::NoiseAddress address = noise_address(rows, seed, step_index, row_offset);
  const cpu::Storage storage = storage_of(drift_storage);
  py::gil_scoped_release release;
  cpu::final_step_scalar(layout, reinterpret_cast<const float*>(z), reinterpret_cast<const void*>(drift), storage,
                         reinterpret_cast<float*>(out), rows, remaining, address, threads);
}

void bridge_target(const cpu::Layout& layout, std::uintptr_t x, std::int64_t x_storage,
                   std::uintptr_t mean_scale, std::uintptr_t noise_scale, std::uintptr_t remaining,
                   std::uintptr_t z_t, std::uintptr_t target, std::int64_t rows, std::uint64_t seed,
                   std::int64_t step_index, std::int64_t row_offset, int threads) {
  const cpu::NoiseAddress address = noise_address(rows, seed, step_index, row_offset);
  const cpu::Storage storage = storage_of(x_storage);
  py::gil_scoped_release release;
  cpu::bridge_target(layout, reinterpret_cast<const void*>(x), storage,
                     reinterpret_cast<const float*>(mean_scale), reinterpret_cast<const float*>(noise_scale),
                     reinterpret_cast<const float*>(remaining), reinterpret_cast<float*>(z_t),
                     reinterpret_cast<float*>(target), rows, address, threads);
}

}  // namespace

PYBIND11_MODULE(_native_ext, m) {
  m.doc() =
      "CPU kernels of omegabridge's Philox4x32-10 noise contract (docs/noise.md). Each function "
      "fills a row-major contiguous (rows, width) buffer given by its address (tensor.data_ptr()) "
      "with the values of global rows row_offset .. row_offset + rows - 1; the GIL is released "
      "while it runs. The caller guarantees the buffer's dtype, size and contiguity.";
  m.attr("abi") = 2;
  m.attr("simd") = cpu::simd_level();
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
  py::class_<cpu::Layout>(m, "Layout",
                          "A segment table preprocessed for the CPU kernels (build it with make_layout).")
      .def_property_readonly("width", [](const cpu::Layout& l) { return l.width; })
      .def("__repr__", &cpu::Layout::describe);
  m.def("make_layout", &make_layout, py::arg("count"), py::arg("kinds"), py::arg("offsets"),
        py::arg("widths"), py::arg("points"), py::arg("repeats"), py::arg("parameters"),
        "Layout from the addresses of SegmentTable.as_tensors(): int32 kinds, int64 offsets, "
        "widths, points and repeats, float64 parameters (count, 3).");
  m.def("posterior_mean", &posterior_mean, py::arg("layout"), py::arg("z"), py::arg("remaining"),
        py::arg("out"), py::arg("rows"), py::arg("threads"),
        "out = m(z, s) with float32 z, out (rows, width) and per-row float32 s (rows,).");
  m.def("step", &step, py::arg("layout"), py::arg("z"), py::arg("drift"), py::arg("drift_storage"),
        py::arg("out"), py::arg("rows"), py::arg("remaining"), py::arg("increment"), py::arg("seed"),
        py::arg("step"), py::arg("row_offset"), py::arg("threads"),
        "out = z + db [(m(z, s) - z)/s + f] + sqrt(db) xi; drift 0 means f = 0; out may be z.");
  m.def("bridge_step", &bridge_step, py::arg("layout"), py::arg("z"), py::arg("drift"), py::arg("drift_storage"),
        py::arg("previous"), py::arg("out"), py::arg("prediction"), py::arg("rows"), py::arg("remaining"),
        py::arg("fraction"), py::arg("weight"), py::arg("spread"), py::arg("seed"), py::arg("step"),
        py::arg("row_offset"), py::arg("threads"),
        "prediction = m(z, s) + s f; out = z + fraction (prediction + weight (prediction - previous) - z) + "
        "spread xi; drift or previous 0 means none; out may be z.");
  m.def("final_step", &final_step, py::arg("layout"), py::arg("z"), py::arg("drift"),
        py::arg("drift_storage"), py::arg("out"), py::arg("rows"), py::arg("remaining"),
        py::arg("seed"), py::arg("step"), py::arg("row_offset"), py::arg("threads"),
        "out = a draw from N(z + s f, s I) restricted to the domain (the exact last step).");
  m.def("final_step_scalar", &final_step_scalar, py::arg("layout"), py::arg("z"), py::arg("drift"),
        py::arg("drift_storage"), py::arg("out"), py::arg("rows"), py::arg("remaining"),
        py::arg("seed"), py::arg("step"), py::arg("row_offset"), py::arg("threads"),
        "final_step's draws row by row with the scalar formulas (its definition, for tests; slow).");
  m.def("bridge_target", &bridge_target, py::arg("layout"), py::arg("x"), py::arg("x_storage"),
        py::arg("mean_scale"), py::arg("noise_scale"), py::arg("remaining"), py::arg("z_t"),
        py::arg("target"), py::arg("rows"), py::arg("seed"), py::arg("step"), py::arg("row_offset"),
        py::arg("threads"),
        "z_t = c x + sigma eps and target = (x - m(z_t, s))/s with per-row float32 c, sigma, s.");
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
