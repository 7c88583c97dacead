// Greedy non-maximum suppression of axis-aligned boxes, as in MTCNN.
#pragma once
#include <cstdint>

namespace masksegx {

// How two boxes' overlap is measured: intersection over union, or over the smaller area
// (MTCNN's last stage, which drops boxes nested inside a better one).
enum class OverlapMode { Union, Min };

// boxes: n x 4 (x1, y1, x2, y2) in pixel coordinates, inclusive of the last pixel: widths and
// heights are x2 - x1 + 1 and y2 - y1 + 1 (the original MTCNN / facenet-pytorch convention),
// and so is the intersection. Visits boxes by descending score (ties: lower index first),
// keeps each one not yet suppressed and suppresses every later box whose overlap with it is
// greater than `threshold`. Writes the kept indices in that order to `keep` (room for n) and
// returns how many. Overlaps are computed in double precision.
std::int64_t nms(const float* boxes, const float* scores, std::int64_t n, double threshold,
                 OverlapMode mode, std::int64_t* keep);

}  // namespace masksegx
