// The segment table as the CUDA kernels read it: a flat list of work items per row and the
// per-column parameters, serialised on the host into one byte buffer that the caller copies
// to the device (a torch tensor owns it, so no CUDA allocation happens in the extension and a
// captured CUDA graph keeps pointing at live memory). Plain C++: included by the host-compiled
// bindings (which build it) and by csrc/cuda/kernels.cu (which reads it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace omegabridge {
namespace cuda {

// One thread's work in one row. kind == kBlockItem: the elementwise columns of Philox block
// `offset / 4` (columns offset .. offset + 3), `width` = bit mask of which of the four are
// elementwise (the others belong to groups); one Philox call gives the block's four normals.
// Otherwise a categorical group or a sphere (kind as posterior::Kind) of `width` columns.
constexpr std::int32_t kBlockItem = 100;

struct WorkItem {
  std::int64_t offset;
  std::int32_t kind;
  std::int32_t width;
};
static_assert(sizeof(WorkItem) == 16, "WorkItem is read as 16 bytes");

// Float parameters of one column (as csrc/cpu/layout.h): interval / half-line bounds,
// lattice low, step, 1/step and K - 1.
struct ColumnParams {
  float low, high, step, inverse_step, last;
  std::int32_t kind;
};
static_assert(sizeof(ColumnParams) == 24, "ColumnParams is 24 bytes");

// What a kernel gets by value: counts and device pointers into the serialised buffer.
struct DeviceLayout {
  std::int64_t width = 0;
  std::int64_t items = 0;  // work items per row
  std::uint32_t kinds = 0;  // bit k: a column of posterior::Kind k is present (picks the kernel specialised for it)
  const WorkItem* item = nullptr;
  const ColumnParams* column = nullptr;
  const double* lattice_low = nullptr;   // the exact last step draws on the canonical grid in double
  const double* lattice_step = nullptr;
  const std::int64_t* lattice_points = nullptr;
};

// Host side: the buffer's bytes and where each array starts in it.
struct LayoutPlan {
  std::int64_t width = 0;
  std::int64_t items = 0;
  std::uint32_t kinds = 0;
  std::int64_t groups = 0;
  std::int64_t widest_group = 0;
  std::vector<unsigned char> bytes;
  std::size_t item_offset = 0, column_offset = 0, low_offset = 0, step_offset = 0, points_offset = 0;
  std::string description;

  // DeviceLayout for the buffer copied to device address `base` (16-byte aligned).
  DeviceLayout bind(std::uintptr_t base) const;
};

}  // namespace cuda
namespace cpu {
struct Layout;
}
namespace cuda {
// The plan of a CPU layout (device_layout.cpp; host only).
LayoutPlan plan_layout(const cpu::Layout& layout);
}  // namespace cuda
}  // namespace omegabridge
