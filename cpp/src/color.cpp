#include "masksegx/color.hpp"

#include <cmath>
#include <stdexcept>

namespace masksegx {
namespace {

constexpr float kTwoPi = 6.28318530717958647692f;
constexpr float kSqrt3 = 1.73205080756887729353f;

// atan2 by octant reduction and a minimax polynomial on [0, 1]; |error| < 1e-6 rad.
// Branch-light so the compiler can vectorise the pixel loop; std::atan2 is a scalar library
// call and much slower.
inline float fast_atan2(float y, float x) {
    const float ax = std::fabs(x);
    const float ay = std::fabs(y);
    const float hi = ax > ay ? ax : ay;
    const float lo = ax > ay ? ay : ax;
    const float a = hi > 0.0f ? lo / hi : 0.0f;
    const float s = a * a;
    // atan(a) = a + a*s*P(s), P fitted by iteratively reweighted least squares (max err 5e-8).
    // clang-format off: Horner's scheme reads better as written
    const float p = (((((-0.0043569f * s + 0.02304554f) * s - 0.05778128f) * s + 0.09794781f) * s -
                      0.13976782f) * s + 0.19962739f) * s - 0.33331661f;
    // clang-format on
    float r = a + a * s * p;
    if (ay > ax) r = 1.57079637f - r;
    if (x < 0.0f) r = 3.14159274f - r;
    return y < 0.0f ? -r : r;
}

// One loop per output combination so the per-pixel body has no pointer tests and the
// compiler can vectorise it (SSE2 on any x86-64, NEON on aarch64).
template <bool kHsi, bool kIndices, int kStride>
void spectral_loop(const std::uint8_t* __restrict pixels, std::int64_t n, int r_index,
                   float* __restrict hue, float* __restrict sat, float* __restrict inten,
                   float* __restrict nbri, float* __restrict nmri) {
    const int b_index = 2 - r_index;
    for (std::int64_t p = 0; p < n; ++p) {
        const float r = pixels[3 * p + r_index];
        const float g = pixels[3 * p + 1];
        const float b = pixels[3 * p + b_index];
        const float sum = r + g + b;
        const float mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
        const float intensity = sum * (1.0f / 765.0f);
        const float saturation = sum > 0.0f ? 1.0f - 3.0f * mn / (sum > 0.0f ? sum : 1.0f) : 0.0f;
        if constexpr (kIndices) {
            const float br = b + r;
            nbri[p] = br > 0.0f ? (b - r) / (br > 0.0f ? br : 1.0f) : 0.0f;
            const float si = saturation + intensity;
            nmri[p] = si > 0.0f ? (saturation - intensity) / (si > 0.0f ? si : 1.0f) : 0.0f;
        }
        if constexpr (kHsi) {
            // Same angle as the textbook acos form of HSI hue, without its division hazards.
            float h = fast_atan2(kSqrt3 * (g - b), 2.0f * r - g - b) * (1.0f / kTwoPi);
            h = h < 0.0f ? h + 1.0f : h;
            h = h >= 1.0f ? 0.0f : h;
            hue[p * kStride] = saturation > 0.0f ? h : 0.0f;
            sat[p * kStride] = saturation;
            inten[p * kStride] = intensity;
        }
    }
}

}  // namespace

void spectral_maps(const std::uint8_t* pixels, std::int64_t n_pixels, ChannelOrder order,
                   const SpectralOutputs& out) {
    const bool hsi = out.hue != nullptr;
    const bool indices = out.nbri != nullptr;
    if (hsi != (out.saturation != nullptr) || hsi != (out.intensity != nullptr) ||
        indices != (out.nmri != nullptr)) {
        throw std::invalid_argument(
            "spectral_maps: request all HSI maps or none, both indices or none");
    }
    if (out.hsi_stride != 1 && out.hsi_stride != 3) {
        throw std::invalid_argument("spectral_maps: hsi_stride must be 1 or 3");
    }
    const int r = order == ChannelOrder::BGR ? 2 : 0;
    float* h = out.hue;
    float* s = out.saturation;
    float* i = out.intensity;
    if (hsi && indices && out.hsi_stride == 1) {
        spectral_loop<true, true, 1>(pixels, n_pixels, r, h, s, i, out.nbri, out.nmri);
    } else if (hsi && indices) {
        spectral_loop<true, true, 3>(pixels, n_pixels, r, h, s, i, out.nbri, out.nmri);
    } else if (hsi && out.hsi_stride == 1) {
        spectral_loop<true, false, 1>(pixels, n_pixels, r, h, s, i, nullptr, nullptr);
    } else if (hsi) {
        spectral_loop<true, false, 3>(pixels, n_pixels, r, h, s, i, nullptr, nullptr);
    } else if (indices) {
        spectral_loop<false, true, 1>(pixels, n_pixels, r, nullptr, nullptr, nullptr, out.nbri,
                                      out.nmri);
    }
}

}  // namespace masksegx
