#include "layout.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace omegabridge {
namespace cpu {

namespace {

bool elementwise(std::int32_t kind) {
  return kind != posterior::kCategorical && kind != posterior::kSphere;
}

std::string segment_error(std::int64_t i, const std::string& what) {
  return "segment " + std::to_string(i) + " of the table: " + what;
}

}  // namespace

Layout Layout::from_segments(std::int64_t count, const std::int32_t* kinds,
                             const std::int64_t* offsets, const std::int64_t* widths,
                             const std::int64_t* points, const std::int64_t* repeats,
                             const double* parameters) {
  Layout layout;
  std::int64_t column = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int32_t kind = kinds[i];
    if (kind < posterior::kReal || kind > posterior::kSphere) {
      throw std::invalid_argument(segment_error(i, "unknown kind " + std::to_string(kind)));
    }
    if (offsets[i] != column) {
      throw std::invalid_argument(segment_error(i, "offset " + std::to_string(offsets[i]) +
                                                       " but the previous segments end at " +
                                                       std::to_string(column)));
    }
    const std::int64_t width = widths[i];
    if (width < 1 || (elementwise(kind) && width != 1)) {
      throw std::invalid_argument(segment_error(i, "bad width " + std::to_string(width)));
    }
    const double low = parameters[3 * i], high = parameters[3 * i + 1], step = parameters[3 * i + 2];
    if (kind == posterior::kLattice && !(step > 0.0 && points[i] >= 1)) {
      throw std::invalid_argument(segment_error(i, "lattice needs step > 0 and points >= 1"));
    }
    if (repeats[i] < 1) {
      throw std::invalid_argument(segment_error(i, "bad repeat count " + std::to_string(repeats[i])));
    }
    // A field's elements follow each other: element r starts at offset + r width.
    for (std::int64_t element = 0; element < repeats[i]; ++element) {
      for (std::int64_t c = 0; c < width; ++c) {
        layout.low.push_back(static_cast<float>(low));
        layout.high.push_back(static_cast<float>(high));
        const bool lattice = kind == posterior::kLattice;
        layout.lattice_low.push_back(lattice ? low : 0.0);
        layout.lattice_step.push_back(lattice ? step : 1.0);
        layout.lattice_points.push_back(lattice ? points[i] : 1);
        layout.lattice_step_float.push_back(lattice ? static_cast<float>(step) : 1.0f);
        layout.lattice_inverse_step.push_back(lattice ? static_cast<float>(1.0 / step) : 1.0f);
        layout.lattice_last.push_back(lattice ? static_cast<float>(points[i] - 1) : 0.0f);
      }
      if (!elementwise(kind)) layout.groups.push_back(Group{column, width});

      // Extend the current run or start a new one (spheres are one run per group).
      const std::int64_t group = elementwise(kind) ? -1 : static_cast<std::int64_t>(layout.groups.size()) - 1;
      const bool extend = !layout.runs.empty() && layout.runs.back().kind == kind &&
                          kind != posterior::kSphere;
      if (extend) {
        Run& run = layout.runs.back();
        run.end = column + width;
        if (group >= 0) run.end_group = group + 1;
      } else {
        layout.runs.push_back(Run{kind, column, column + width, group, group + 1, 0.0f, 0.0f, 1});
      }
      if (kind == posterior::kLattice) {
        Run& run = layout.runs.back();
        const float step_float = static_cast<float>(step);
        run.smallest_step = run.smallest_step == 0.0f ? step_float : std::min(run.smallest_step, step_float);
        run.largest_step = std::max(run.largest_step, step_float);
        run.most_points = std::max(run.most_points, points[i]);
      }
      column += width;
    }
  }
  layout.width = column;
  return layout;
}

std::string Layout::describe() const {
  static const char* names[] = {"real", "interval", "half-line (lower)", "half-line (upper)",
                                "lattice", "binary", "categorical", "sphere"};
  std::ostringstream text;
  text << "Layout(width=" << width << ", runs=[";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    text << (i ? ", " : "") << names[runs[i].kind] << " " << runs[i].begin << ":" << runs[i].end;
  }
  text << "])";
  return text.str();
}

}  // namespace cpu
}  // namespace omegabridge
