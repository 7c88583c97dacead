// Mask-region compensation (paper eq. 18-21): blue suppression and the Minkowski-norm
// ("improved") gray world correction of a region against the rest of the image.
#pragma once
#include <cstdint>

#include "masksegx/color.hpp"

namespace masksegx {

// Conventions shared by every function here:
//   pixels  interleaved 3-channel uint8 image, n_pixels pixels.
//   region  one byte per pixel, nonzero = inside the region R (numpy bool layout).
//   out     n_pixels * 3 bytes; may not alias `pixels`.
//   Rounding of corrected values is to nearest, ties to even (numpy.rint, cv::saturate_cast),
//   then saturation to [0, 255].
//   Minkowski illuminant of one channel over a pixel set (eq. 19-20):
//     l = scale * (mean(v^t))^(1/t),  v in [0, 255], t >= 1; t = +inf gives scale * max(v).
//   Bad arguments throw std::invalid_argument whose message starts with the argument name.

// Eq. 18: copy of `pixels` whose blue channel inside `region` is mu * B (mu finite, >= 0).
void blue_suppression(const std::uint8_t* pixels, const std::uint8_t* region, std::int64_t n_pixels,
                      ChannelOrder order, double mu, std::uint8_t* out);

// Eq. 19-20 over the pixels inside `region`; illuminant[c] follows the image's channel order.
// Throws when the region has no pixels.
void minkowski_illuminant(const std::uint8_t* pixels, const std::uint8_t* region,
                          std::int64_t n_pixels, double t, double scale, double illuminant[3]);

// Per-channel figures of a region correction (image channel order). A side with no pixels
// has NaN illuminants, and then every gain is 1; a channel whose region illuminant is 0
// also keeps gain 1.
struct CompensationStats {
    double gain[3];
    double illuminant_region[3];
    double illuminant_background[3];
};

// Eq. 21: region pixels times l(background) / l(region) per channel, other pixels copied.
CompensationStats gray_world_minkowski(const std::uint8_t* pixels, const std::uint8_t* region,
                                       std::int64_t n_pixels, double t, std::uint8_t* out);

// The paper's combined compensation: blue suppression of the region (eq. 18), then eq. 21
// with both illuminants measured on the suppressed image, its gains raised to `strength`
// (finite; 1 = eq. 21 as written, 0 = suppression only, < 0 moves the region's colour away
// from the background's). With strength 1 it equals, byte for byte,
// gray_world_minkowski(blue_suppression(pixels)), in two passes over the image.
CompensationStats compensate_region(const std::uint8_t* pixels, const std::uint8_t* region,
                                    std::int64_t n_pixels, ChannelOrder order, double mu, double t,
                                    double strength, std::uint8_t* out);

}  // namespace masksegx
