// Connected components of a binary mask and the paper's geometric-weighted scores (eq. 22-24).
#pragma once
#include <cstdint>
#include <vector>

namespace masksegx {

// Columns [begin, end) of one row holding pixels of the labelled polarity.
struct Run {
    std::int32_t begin;
    std::int32_t end;
};

// A labelled mask kept as runs: one union-find pass over the runs replaces a pass over pixels.
// Components are numbered 1..count in raster order of their first pixel.
struct RunComponents {
    std::int64_t height = 0;
    std::int64_t width = 0;
    std::vector<Run> runs;                // raster order
    std::vector<std::int64_t> row_start;  // runs of row y are [row_start[y], row_start[y + 1])
    std::vector<std::int32_t> run_label;  // component of each run, 1..count
    std::int32_t count = 0;
};

// Labels the pixels of `mask` (HxW, one byte per pixel) that are nonzero, or with
// `foreground = false` those that are zero. connectivity is 4 or 8 (std::invalid_argument
// otherwise, or for an empty image).
RunComponents find_components(const std::uint8_t* mask, std::int64_t height, std::int64_t width,
                              int connectivity, bool foreground = true);

// Per-component measurements, each array with `count` entries (bbox: 4 per component).
//   area           pixels
//   bbox           x, y, width, height of the bounding box in pixels (as cv2's stats)
//   diagonal       K = sqrt(width^2 + height^2)
//   mi             K^2 / area (eq. 23); 2 for a single pixel
//   mean_variance  eps = mean of the variance map over the component's pixels (0 without a map)
//   po             (X_max / area) * eps (eq. 24), X_max = largest area in the image
struct ComponentStats {
    std::int64_t* area = nullptr;
    std::int32_t* bbox = nullptr;
    double* diagonal = nullptr;
    double* mi = nullptr;
    double* mean_variance = nullptr;
    double* po = nullptr;
};

// Writes the HxW label image (0 = background) and, when `stats` is given (all six arrays set),
// the measurements, in one pass over the runs. `variance` (HxW, may be null) feeds eps.
void write_components(const RunComponents& components, const float* variance, std::int32_t* labels,
                      const ComponentStats* stats);

// `filled` = mask plus every zero region (4-connected) that does not touch the image border;
// the output holds 0/1 bytes.
void fill_holes(const std::uint8_t* mask, std::int64_t height, std::int64_t width,
                std::uint8_t* filled);

}  // namespace masksegx
