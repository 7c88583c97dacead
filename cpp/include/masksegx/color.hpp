// Colour-space conversions and the paper's spectral indices (eq. 16-17).
#pragma once
#include <cstdint>

namespace masksegx {

enum class ChannelOrder { BGR, RGB };

// Per-pixel outputs of one pass over an interleaved 3-channel uint8 image.
// Request the three HSI maps together (or none) and both indices together (or none);
// std::invalid_argument otherwise. Ranges:
//   hue        [0, 1)  fraction of a full turn (0 = red, 1/3 = green, 2/3 = blue), 0 where S == 0
//   saturation [0, 1]  1 - min(R,G,B) / mean(R,G,B), 0 for black
//   intensity  [0, 1]  mean(R,G,B) / 255
//   nbri       [-1, 1] (B - R) / (B + R), 0 where B + R == 0
//   nmri       [-1, 1] (S - I) / (S + I), 0 where S + I == 0
struct SpectralOutputs {
    float* hue = nullptr;
    float* saturation = nullptr;
    float* intensity = nullptr;
    float* nbri = nullptr;
    float* nmri = nullptr;
    // Element step between consecutive pixels in the three HSI outputs: 1 for planar
    // maps, 3 to write an interleaved HxWx3 array through hue/saturation/intensity = base+0/1/2.
    std::int64_t hsi_stride = 1;
};

void spectral_maps(const std::uint8_t* pixels, std::int64_t n_pixels, ChannelOrder order,
                   const SpectralOutputs& out);

}  // namespace masksegx
