// Serialising a CPU Layout (csrc/cpu/layout.h) into the CUDA kernels' work items and column
// parameters (device_layout.h). Host code: compiled into the bindings, never by nvcc.
#include "device_layout.h"

#include <algorithm>
#include <cstring>

#include "../cpu/layout.h"

namespace omegabridge {
namespace cuda {

namespace {

std::size_t append(std::vector<unsigned char>& bytes, const void* data, std::size_t size) {
  const std::size_t start = (bytes.size() + 15) / 16 * 16;  // every array 16-byte aligned
  bytes.resize(start + size);
  if (size) std::memcpy(bytes.data() + start, data, size);
  return start;
}

bool elementwise(std::int32_t kind) {
  return kind != posterior::kCategorical && kind != posterior::kSphere;
}

}  // namespace

LayoutPlan plan_layout(const cpu::Layout& layout) {
  LayoutPlan plan;
  plan.width = layout.width;
  const std::size_t width = static_cast<std::size_t>(layout.width);
  std::vector<ColumnParams> columns(width);
  std::vector<std::int32_t> kind_of(width, posterior::kReal);
  for (const cpu::Run& run : layout.runs) {
    for (std::int64_t c = run.begin; c < run.end; ++c) kind_of[static_cast<std::size_t>(c)] = run.kind;
  }
  for (std::size_t c = 0; c < width; ++c) {
    plan.kinds |= 1u << kind_of[c];
    columns[c] = ColumnParams{layout.low[c], layout.high[c], layout.lattice_step_float[c],
                              layout.lattice_inverse_step[c], layout.lattice_last[c], kind_of[c]};
  }
  // Work items in column order: a block item per Philox block holding an elementwise column,
  // a group item per categorical group or sphere (placed at its first column).
  std::vector<WorkItem> items;
  std::size_t next_group = 0;
  for (std::int64_t block = 0; 4 * block < layout.width; ++block) {
    std::int32_t mask = 0;
    for (std::int64_t c = 4 * block; c < std::min<std::int64_t>(4 * block + 4, layout.width); ++c) {
      if (elementwise(kind_of[static_cast<std::size_t>(c)])) mask |= 1 << (c - 4 * block);
    }
    while (next_group < layout.groups.size() && layout.groups[next_group].offset < 4 * block + 4) {
      const cpu::Group& group = layout.groups[next_group++];
      items.push_back(WorkItem{group.offset, kind_of[static_cast<std::size_t>(group.offset)],
                               static_cast<std::int32_t>(group.width)});
      plan.widest_group = std::max(plan.widest_group, group.width);
    }
    if (mask) items.push_back(WorkItem{4 * block, kBlockItem, mask});
  }
  plan.items = static_cast<std::int64_t>(items.size());
  plan.groups = static_cast<std::int64_t>(layout.groups.size());
  plan.item_offset = append(plan.bytes, items.data(), items.size() * sizeof(WorkItem));
  plan.column_offset = append(plan.bytes, columns.data(), width * sizeof(ColumnParams));
  plan.low_offset = append(plan.bytes, layout.lattice_low.data(), width * sizeof(double));
  plan.step_offset = append(plan.bytes, layout.lattice_step.data(), width * sizeof(double));
  plan.points_offset = append(plan.bytes, layout.lattice_points.data(), width * sizeof(std::int64_t));
  plan.bytes.resize(std::max<std::size_t>((plan.bytes.size() + 15) / 16 * 16, 16));
  plan.description = "CudaLayout(width=" + std::to_string(plan.width) + ", items per row=" +
                     std::to_string(plan.items) + ", groups=" + std::to_string(plan.groups) +
                     ", bytes=" + std::to_string(plan.bytes.size()) + ")";
  return plan;
}

DeviceLayout LayoutPlan::bind(std::uintptr_t base) const {
  DeviceLayout device;
  device.width = width;
  device.items = items;
  device.kinds = kinds;
  device.item = reinterpret_cast<const WorkItem*>(base + item_offset);
  device.column = reinterpret_cast<const ColumnParams*>(base + column_offset);
  device.lattice_low = reinterpret_cast<const double*>(base + low_offset);
  device.lattice_step = reinterpret_cast<const double*>(base + step_offset);
  device.lattice_points = reinterpret_cast<const std::int64_t*>(base + points_offset);
  return device;
}

}  // namespace cuda
}  // namespace omegabridge
