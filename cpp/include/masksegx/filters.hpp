// Neighbourhood filters: the local variance used as texture by the connectivity analysis.
#pragma once
#include <cstdint>

namespace masksegx {

// Variance E[x^2] - E[x]^2 of the window x window box centred on each pixel of a row-major
// height x width map, written as float32 to `out` (height * width values, not aliasing
// `values`). window: odd and >= 1, std::invalid_argument otherwise; it may exceed the image.
// Borders: reflect-101 (OpenCV's BORDER_REFLECT_101, ...cba|abcd|dcb...), repeated for
// windows wider than the image; an axis of length 1 repeats its only sample.
// Sums are exact integers for uint8 input and double for float input, and tiny negative
// results of the subtraction are clamped to 0. Float input must be finite
// (std::invalid_argument otherwise, detected without a separate pass).
void local_variance(const std::uint8_t* values, std::int64_t height, std::int64_t width,
                    std::int64_t window, float* out);
void local_variance(const float* values, std::int64_t height, std::int64_t width,
                    std::int64_t window, float* out);

}  // namespace masksegx
