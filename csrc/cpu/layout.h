// The segment table of a domain, preprocessed once for the CPU kernels.
//
// Built from the arrays of omegabridge.domains.SegmentTable.as_tensors(). Columns of the
// same elementwise kind that follow each other are merged into one run, so the kernels loop
// over a run's columns with contiguous per-column parameters (and the compiler vectorises
// that loop); consecutive categorical groups form one run as well.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "omegabridge/posterior.h"

namespace omegabridge {
namespace cpu {

// A multi-column factor: a categorical group (width K) or a sphere (width d).
struct Group {
  std::int64_t offset;
  std::int64_t width;
};

// Columns [begin, end) of one kind; for categorical and sphere runs also its groups
// [first_group, end_group) in Layout::groups.
struct Run {
  std::int32_t kind;
  std::int64_t begin;
  std::int64_t end;
  std::int64_t first_group;
  std::int64_t end_group;
  float smallest_step;  // lattice runs: the smallest step of the run's columns
  float largest_step;  // lattice runs: the largest step of the run's columns
  std::int64_t most_points;  // lattice runs: the largest K of the run's columns
};

struct Layout {
  std::int64_t width = 0;
  // Per column (unused entries are 0): interval / half-line bounds, lattice low and step.
  std::vector<float> low, high;
  std::vector<double> lattice_low, lattice_step;
  std::vector<std::int64_t> lattice_points;
  std::vector<float> lattice_step_float, lattice_inverse_step, lattice_last;  // last = K - 1
  std::vector<Run> runs;
  std::vector<Group> groups;

  // From the segment arrays (n segments): kinds, offsets, widths, points, repeats (a field's
  // element count: the segment covers repeats x width columns, element r at offset + r width)
  // and the parameters (low, high, step) row-major (n, 3). Throws std::invalid_argument naming the
  // segment on an inconsistent table.
  static Layout from_segments(std::int64_t count, const std::int32_t* kinds,
                              const std::int64_t* offsets, const std::int64_t* widths,
                              const std::int64_t* points, const std::int64_t* repeats,
                              const double* parameters);

  std::string describe() const;
};

}  // namespace cpu
}  // namespace omegabridge
