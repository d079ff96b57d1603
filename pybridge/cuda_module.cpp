// omegabridge._cuda_ext: the CUDA kernels (csrc/cuda) for Python.
//
// Host C++ only: compiled by the host compiler, linked with the nvcc-built kernels and the
// static CUDA runtime (so the module imports on a machine without a GPU driver; CUDA calls then
// fail with a clear error). It does not link libtorch: functions take raw device addresses
// (Python ints from tensor.data_ptr()), sizes, and the caller's CUDA stream handle
// (torch.cuda.current_stream().cuda_stream), enqueue one kernel on that stream and return
// without synchronising. Cheap argument checks raise ValueError before any CUDA call; a failed
// CUDA call raises RuntimeError naming the call ("cudaLaunchKernel failed: ...").
//
// The layout (segment table) is built on the host with the CPU extension's Layout code and
// serialised (Layout.write); the Python side copies those bytes into a device tensor it owns
// and passes that tensor's address with every call.
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "../csrc/cpu/layout.h"
#include "../csrc/cuda/device_layout.h"
#include "../csrc/cuda/launch.h"

namespace py = pybind11;
namespace cu = omegabridge::cuda;

namespace {

constexpr std::int64_t kMaxRow = std::int64_t{1} << 48;

void raise_if_failed(const cu::Status& status, const char* op) {
  if (!status.ok()) {
    throw std::runtime_error(std::string(op) + ": " + status.call + " failed: " + status.message);
  }
}

void check_rows(std::int64_t rows) {
  if (rows < 0) throw py::value_error("rows must be non-negative, got " + std::to_string(rows));
}

void* stream_of(std::int64_t stream) {
  if (stream < 0) {
    throw py::value_error("stream must be a CUDA stream handle (torch.cuda.current_stream().cuda_stream, >= 0), got " +
                          std::to_string(stream));
  }
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(stream));
}

// A device address: non-zero and aligned to its element size.
template <typename T>
T* address(const char* name, std::int64_t value, std::size_t alignment = alignof(T)) {
  if (value == 0) throw py::value_error(std::string(name) + " must be a device address, got 0");
  if (value < 0 || static_cast<std::uint64_t>(value) % alignment != 0) {
    throw py::value_error(std::string(name) + " must be a device address aligned to " + std::to_string(alignment) +
                          " bytes, got " + std::to_string(value));
  }
  return reinterpret_cast<T*>(static_cast<std::uintptr_t>(value));
}

template <typename T>
T* optional_address(const char* name, std::int64_t value, std::size_t alignment = alignof(T)) {
  return value == 0 ? nullptr : address<T>(name, value, alignment);
}

cu::Storage storage_of(std::int64_t code) {
  if (code < 0 || code > 2) throw py::value_error("storage must be 0 (float32), 1 (bfloat16) or 2 (float16), got " + std::to_string(code));
  return static_cast<cu::Storage>(code);
}

std::size_t storage_bytes(cu::Storage storage) { return storage == cu::Storage::kFloat32 ? 4 : 2; }

cu::NoiseAddress noise_address(std::int64_t rows, std::uint64_t seed, std::int64_t step, std::int64_t row_offset) {
  check_rows(rows);
  if (step < 0 || step > std::int64_t{0xFFFFFFFF}) throw py::value_error("step must be in [0, 2^32), got " + std::to_string(step));
  if (row_offset < 0 || row_offset > kMaxRow || rows > kMaxRow - row_offset) {
    throw py::value_error("rows [" + std::to_string(row_offset) + ", row_offset + " + std::to_string(rows) +
                          ") must lie in [0, 2^48)");
  }
  return cu::NoiseAddress{seed, static_cast<std::uint32_t>(step), static_cast<std::uint64_t>(row_offset)};
}

cu::DeviceLayout bind(const cu::LayoutPlan& plan, std::int64_t layout_address) {
  return plan.bind(reinterpret_cast<std::uintptr_t>(address<unsigned char>("layout_address", layout_address, 16)));
}

cu::LayoutPlan make_layout(std::int64_t count, std::uintptr_t kinds, std::uintptr_t offsets, std::uintptr_t widths,
                           std::uintptr_t points, std::uintptr_t repeats, std::uintptr_t parameters) {
  if (count < 0) throw py::value_error("segment count must be non-negative");
  try {
    const omegabridge::cpu::Layout layout = omegabridge::cpu::Layout::from_segments(
        count, reinterpret_cast<const std::int32_t*>(kinds), reinterpret_cast<const std::int64_t*>(offsets),
        reinterpret_cast<const std::int64_t*>(widths), reinterpret_cast<const std::int64_t*>(points),
        reinterpret_cast<const std::int64_t*>(repeats), reinterpret_cast<const double*>(parameters));
    return cu::plan_layout(layout);
  } catch (const std::invalid_argument& error) {
    throw py::value_error(error.what());
  }
}

// Scalars of a step rounded from double as the CPU kernels round them.
cu::StepScalars step_scalars(double remaining, double increment) {
  if (!(remaining > 0.0) || !(increment > 0.0)) throw py::value_error("remaining and increment must be > 0");
  return cu::StepScalars{static_cast<float>(remaining), static_cast<float>(1.0 / remaining),
                         static_cast<float>(std::sqrt(remaining)), static_cast<float>(increment),
                         static_cast<float>(std::sqrt(increment))};
}

int device_count() {
  int count = 0;
  raise_if_failed(cu::device_count(&count), "device_count");
  return count;
}

void posterior_mean(const cu::LayoutPlan& plan, std::int64_t layout_address, std::int64_t z, std::int64_t remaining,
                    std::int64_t out, std::int64_t rows, std::int64_t stream) {
  check_rows(rows);
  const cu::DeviceLayout layout = bind(plan, layout_address);
  auto* z_ptr = address<const float>("z", z);
  auto* s_ptr = address<const float>("remaining", remaining);
  auto* out_ptr = address<float>("out", out);
  void* cuda_stream = stream_of(stream);
  cu::Status status;
  {
    py::gil_scoped_release release;
    status = cu::posterior_mean(layout, z_ptr, s_ptr, out_ptr, rows, cuda_stream);
  }
  raise_if_failed(status, "posterior_mean");
}

void step(const cu::LayoutPlan& plan, std::int64_t layout_address, std::int64_t z, std::int64_t drift,
          std::int64_t drift_storage, std::int64_t out, std::int64_t rows, double remaining, double increment,
          std::uint64_t seed, std::int64_t step_index, std::int64_t row_offset, std::int64_t stream) {
  const cu::NoiseAddress a = noise_address(rows, seed, step_index, row_offset);
  const cu::Storage storage = storage_of(drift_storage);
  const cu::DeviceLayout layout = bind(plan, layout_address);
  const cu::StepScalars scalars = step_scalars(remaining, increment);
  auto* z_ptr = address<const float>("z", z);
  auto* f_ptr = optional_address<const void>("drift", drift, storage_bytes(storage));
  auto* out_ptr = address<float>("out", out);
  void* cuda_stream = stream_of(stream);
  cu::Status status;
  {
    py::gil_scoped_release release;
    status = cu::step(layout, z_ptr, f_ptr, storage, out_ptr, rows, scalars, nullptr, 0, nullptr, a, cuda_stream);
  }
  raise_if_failed(status, "step");
}

void bridge_step(const cu::LayoutPlan& plan, std::int64_t layout_address, std::int64_t z, std::int64_t drift,
                 std::int64_t drift_storage, std::int64_t previous, std::int64_t out, std::int64_t prediction,
                 std::int64_t rows, double remaining, double fraction, double weight, std::int64_t spread,
                 std::uint64_t seed, std::int64_t step_index, std::int64_t row_offset, std::int64_t stream) {
  const cu::NoiseAddress a = noise_address(rows, seed, step_index, row_offset);
  const cu::Storage storage = storage_of(drift_storage);
  const cu::DeviceLayout layout = bind(plan, layout_address);
  const cu::StepScalars scalars = step_scalars(remaining, fraction * remaining);
  auto* z_ptr = address<const float>("z", z);
  auto* f_ptr = optional_address<const void>("drift", drift, storage_bytes(storage));
  auto* previous_ptr = optional_address<const float>("previous", previous, 4);
  auto* out_ptr = address<float>("out", out);
  auto* prediction_ptr = address<float>("prediction", prediction);
  auto* spread_ptr = address<const float>("spread", spread);
  void* cuda_stream = stream_of(stream);
  cu::Status status;
  {
    py::gil_scoped_release release;
    status = cu::bridge_step(layout, z_ptr, f_ptr, storage, previous_ptr, out_ptr, prediction_ptr, rows, scalars,
                             static_cast<float>(fraction), static_cast<float>(weight), spread_ptr, a, cuda_stream);
  }
  raise_if_failed(status, "bridge_step");
}

void scheduled_step(const cu::LayoutPlan& plan, std::int64_t layout_address, std::int64_t z, std::int64_t drift,
                    std::int64_t drift_storage, std::int64_t out, std::int64_t rows, std::int64_t schedule,
                    std::int64_t schedule_steps, std::int64_t counter, std::uint64_t seed, std::int64_t row_offset,
                    std::int64_t stream) {
  const cu::NoiseAddress a = noise_address(rows, seed, 0, row_offset);
  const cu::Storage storage = storage_of(drift_storage);
  const cu::DeviceLayout layout = bind(plan, layout_address);
  auto* z_ptr = address<const float>("z", z);
  auto* f_ptr = optional_address<const void>("drift", drift, storage_bytes(storage));
  auto* out_ptr = address<float>("out", out);
  auto* schedule_ptr = address<const cu::StepScalars>("schedule", schedule, 4);
  auto* counter_ptr = address<const std::int64_t>("counter", counter);
  if (schedule_steps < 1) throw py::value_error("schedule_steps must be >= 1, got " + std::to_string(schedule_steps));
  void* cuda_stream = stream_of(stream);
  cu::Status status;
  {
    py::gil_scoped_release release;
    status = cu::step(layout, z_ptr, f_ptr, storage, out_ptr, rows, cu::StepScalars{}, schedule_ptr, schedule_steps,
                      counter_ptr, a, cuda_stream);
  }
  raise_if_failed(status, "scheduled_step");
}

void final_step(const cu::LayoutPlan& plan, std::int64_t layout_address, std::int64_t z, std::int64_t drift,
                std::int64_t drift_storage, std::int64_t out, std::int64_t rows, double remaining, std::uint64_t seed,
                std::int64_t step_index, std::int64_t row_offset, std::int64_t stream) {
  const cu::NoiseAddress a = noise_address(rows, seed, step_index, row_offset);
  const cu::Storage storage = storage_of(drift_storage);
  if (!(remaining > 0.0)) throw py::value_error("remaining must be > 0");
  const cu::DeviceLayout layout = bind(plan, layout_address);
  auto* z_ptr = address<const float>("z", z);
  auto* f_ptr = optional_address<const void>("drift", drift, storage_bytes(storage));
  auto* out_ptr = address<float>("out", out);
  if (static_cast<const void*>(out_ptr) == static_cast<const void*>(z_ptr)) {
    throw py::value_error("final_step cannot run in place: out must not be z");
  }
  void* cuda_stream = stream_of(stream);
  cu::Status status;
  {
    py::gil_scoped_release release;
    status = cu::final_step(layout, z_ptr, f_ptr, storage, out_ptr, rows, remaining, a, cuda_stream);
  }
  raise_if_failed(status, "final_step");
}

void bridge_target(const cu::LayoutPlan& plan, std::int64_t layout_address, std::int64_t x, std::int64_t x_storage,
                   std::int64_t mean_scale, std::int64_t noise_scale, std::int64_t remaining, std::int64_t z_t,
                   std::int64_t target, std::int64_t rows, std::uint64_t seed, std::int64_t step_index,
                   std::int64_t row_offset, std::int64_t stream) {
  const cu::NoiseAddress a = noise_address(rows, seed, step_index, row_offset);
  const cu::Storage storage = storage_of(x_storage);
  const cu::DeviceLayout layout = bind(plan, layout_address);
  auto* x_ptr = address<const void>("x", x, storage_bytes(storage));
  auto* c_ptr = address<const float>("mean_scale", mean_scale);
  auto* sigma_ptr = address<const float>("noise_scale", noise_scale);
  auto* s_ptr = address<const float>("remaining", remaining);
  auto* z_t_ptr = address<float>("z_t", z_t);
  auto* target_ptr = address<float>("target", target);
  void* cuda_stream = stream_of(stream);
  cu::Status status;
  {
    py::gil_scoped_release release;
    status = cu::bridge_target(layout, x_ptr, storage, c_ptr, sigma_ptr, s_ptr, z_t_ptr, target_ptr, rows, a,
                               cuda_stream);
  }
  raise_if_failed(status, "bridge_target");
}

void noise(bool normal, std::int64_t out, std::int64_t rows, std::int64_t width, std::uint64_t seed,
           std::int64_t step_index, std::int64_t row_offset, std::int64_t noise_stream, std::int64_t stream) {
  const cu::NoiseAddress a = noise_address(rows, seed, step_index, row_offset);
  if (width < 0) throw py::value_error("width must be non-negative, got " + std::to_string(width));
  if (noise_stream < 0 || noise_stream > 0xFFFF) {
    throw py::value_error("noise_stream must be in [0, 2^16), got " + std::to_string(noise_stream));
  }
  auto* out_ptr = address<float>("out", out);
  void* cuda_stream = stream_of(stream);
  cu::Status status;
  {
    py::gil_scoped_release release;
    status = cu::noise(out_ptr, normal, rows, width, a, static_cast<std::uint32_t>(noise_stream), cuda_stream);
  }
  raise_if_failed(status, normal ? "normals" : "uniforms");
}

}  // namespace

PYBIND11_MODULE(_cuda_ext, m) {
  m.doc() =
      "CUDA kernels of omegabridge (csrc/cuda). Functions take device addresses (tensor.data_ptr()) of row-major "
      "contiguous buffers, sizes, the device address of the layout's bytes (Layout.write, copied to the device by "
      "the caller) and a CUDA stream handle; each enqueues one kernel on that stream without synchronising. "
      "Bad arguments raise ValueError before any CUDA call; a failed CUDA call raises RuntimeError naming it.";
  m.attr("abi") = 2;
  m.attr("step_scalar_count") = cu::kStepScalarCount;
  // module_local: the kernels compiled for the CPU (tests/cuda_emulation.py) register the same C++
  // type in a second module of the same process.
  py::class_<cu::LayoutPlan>(m, "Layout",
                             "A segment table as the CUDA kernels read it: host bytes to copy to the device once.",
                             py::module_local())
      .def_property_readonly("width", [](const cu::LayoutPlan& p) { return p.width; })
      .def_property_readonly("items", [](const cu::LayoutPlan& p) { return p.items; },
                             "work items (threads) per row")
      .def_property_readonly("widest_group", [](const cu::LayoutPlan& p) { return p.widest_group; })
      .def_property_readonly("nbytes", [](const cu::LayoutPlan& p) { return static_cast<std::int64_t>(p.bytes.size()); })
      .def(
          "write",
          [](const cu::LayoutPlan& p, std::uintptr_t host_address) {
            if (host_address == 0) throw py::value_error("write needs a host address, got 0");
            std::memcpy(reinterpret_cast<void*>(host_address), p.bytes.data(), p.bytes.size());
          },
          py::arg("host_address"), "Copy the nbytes bytes of the layout to a host buffer.")
      .def("__repr__", [](const cu::LayoutPlan& p) { return p.description; });
  m.def("make_layout", &make_layout, py::arg("count"), py::arg("kinds"), py::arg("offsets"), py::arg("widths"),
        py::arg("points"), py::arg("repeats"), py::arg("parameters"),
        "Layout from the host addresses of SegmentTable.as_tensors() (as _native_ext.make_layout).");
  m.def("device_count", &device_count, "cudaGetDeviceCount (raises RuntimeError naming the call on failure).");
  m.def("posterior_mean", &posterior_mean, py::arg("layout"), py::arg("layout_address"), py::arg("z"),
        py::arg("remaining"), py::arg("out"), py::arg("rows"), py::arg("stream"),
        "out = m(z, s), per-row float32 s (rows,).");
  m.def("step", &step, py::arg("layout"), py::arg("layout_address"), py::arg("z"), py::arg("drift"),
        py::arg("drift_storage"), py::arg("out"), py::arg("rows"), py::arg("remaining"), py::arg("increment"),
        py::arg("seed"), py::arg("step"), py::arg("row_offset"), py::arg("stream"),
        "out = z + db [(m(z, s) - z)/s + f] + sqrt(db) xi; drift 0 means f = 0; out may be z.");
  m.def("bridge_step", &bridge_step, py::arg("layout"), py::arg("layout_address"), py::arg("z"), py::arg("drift"),
        py::arg("drift_storage"), py::arg("previous"), py::arg("out"), py::arg("prediction"), py::arg("rows"),
        py::arg("remaining"), py::arg("fraction"), py::arg("weight"), py::arg("spread"), py::arg("seed"), py::arg("step"),
        py::arg("row_offset"), py::arg("stream"),
        "prediction = m(z, s) + s f; out = z + fraction (prediction + weight (prediction - previous) - z) + spread xi; "
        "drift or previous 0 means none; out may be z.");
  m.def("scheduled_step", &scheduled_step, py::arg("layout"), py::arg("layout_address"), py::arg("z"),
        py::arg("drift"), py::arg("drift_storage"), py::arg("out"), py::arg("rows"), py::arg("schedule"),
        py::arg("schedule_steps"), py::arg("counter"), py::arg("seed"), py::arg("row_offset"), py::arg("stream"),
        "step with the step index k read from the device int64 *counter and (s, 1/s, sqrt s, db, sqrt db) from "
        "row k of the device float32 schedule (schedule_steps, 5): one launch a CUDA graph can replay for every "
        "step; a counter outside [0, schedule_steps) gives NaN outputs.");
  m.def("final_step", &final_step, py::arg("layout"), py::arg("layout_address"), py::arg("z"), py::arg("drift"),
        py::arg("drift_storage"), py::arg("out"), py::arg("rows"), py::arg("remaining"), py::arg("seed"),
        py::arg("step"), py::arg("row_offset"), py::arg("stream"),
        "out = a draw from N(z + s f, s I) restricted to the domain (out must not be z).");
  m.def("bridge_target", &bridge_target, py::arg("layout"), py::arg("layout_address"), py::arg("x"),
        py::arg("x_storage"), py::arg("mean_scale"), py::arg("noise_scale"), py::arg("remaining"), py::arg("z_t"),
        py::arg("target"), py::arg("rows"), py::arg("seed"), py::arg("step"), py::arg("row_offset"),
        py::arg("stream"), "z_t = c x + sigma eps and target = (x - m(z_t, s))/s with per-row float32 c, sigma, s.");
  m.def(
      "uniforms",
      [](std::int64_t out, std::int64_t rows, std::int64_t width, std::uint64_t seed, std::int64_t step,
         std::int64_t row_offset, std::int64_t noise_stream, std::int64_t stream) {
        noise(false, out, rows, width, seed, step, row_offset, noise_stream, stream);
      },
      py::arg("out"), py::arg("rows"), py::arg("width"), py::arg("seed"), py::arg("step"), py::arg("row_offset"),
      py::arg("noise_stream"), py::arg("stream"), "float32 uniforms of the noise contract (bit-identical to the CPU's).");
  m.def(
      "normals",
      [](std::int64_t out, std::int64_t rows, std::int64_t width, std::uint64_t seed, std::int64_t step,
         std::int64_t row_offset, std::int64_t noise_stream, std::int64_t stream) {
        noise(true, out, rows, width, seed, step, row_offset, noise_stream, stream);
      },
      py::arg("out"), py::arg("rows"), py::arg("width"), py::arg("seed"), py::arg("step"), py::arg("row_offset"),
      py::arg("noise_stream"), py::arg("stream"), "float32 normals of the noise contract (Box-Muller).");
}
