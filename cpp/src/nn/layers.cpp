// Max pooling, PReLU / ReLU, fully connected (ONNX Gemm) and softmax.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "nn_internal.hpp"

namespace masksegx {

using namespace nn_detail;

// Planes narrower than this are pooled window by window (see max_pool2d).
constexpr std::int64_t kSmallPoolWidth = 32;

Tensor4Shape max_pool2d_output_shape(const Tensor4Shape& input, const Pool2dSpec& spec) {
    require_shape(input, "max_pool2d input");
    require(spec.kernel_h >= 1 && spec.kernel_w >= 1, "max_pool2d: kernel must be at least 1");
    require(spec.stride_h >= 1 && spec.stride_w >= 1, "max_pool2d: stride must be at least 1");
    require_spatial(std::max(spec.stride_h, spec.stride_w), "max_pool2d: stride");
    require(input.h >= spec.kernel_h && input.w >= spec.kernel_w,
            "max_pool2d: input " + std::to_string(input.h) + "x" + std::to_string(input.w) +
                " is smaller than the kernel " + std::to_string(spec.kernel_h) + "x" +
                std::to_string(spec.kernel_w));
    const auto side = [](std::int64_t size, std::int64_t kernel, std::int64_t stride) {
        std::int64_t out = (size - kernel + stride - 1) / stride + 1;
        if ((out - 1) * stride >= size) --out;  // that window would start outside
        return out;
    };
    return {input.n, input.c, side(input.h, spec.kernel_h, spec.stride_h),
            side(input.w, spec.kernel_w, spec.stride_w)};
}

void max_pool2d(const float* input, const Tensor4Shape& input_shape, const Pool2dSpec& spec,
                float* output) {
    const Tensor4Shape out = max_pool2d_output_shape(input_shape, spec);
    const std::int64_t w = input_shape.w, kw = spec.kernel_w, sw = spec.stride_w;
    // Per output row, three contiguous (vectorised) passes: the maximum over the window's rows,
    // then over kw neighbours at every column, then every sw-th of those; windows clipped by
    // the right edge (ceil mode) are finished one by one.
    const Kernels& kernels = kernels_for(simd_level());
    if (kernels.max_pool_narrow_s2 && w <= 32 && sw == 2 && (kw == 2 || kw == 3)) {
        kernels.max_pool_narrow_s2(input, input_shape, spec, out, output);
        return;
    }
    if (w < kSmallPoolWidth) {
        // Narrow planes (R/O-net crops): per-row passes cost more than they save.
        for (std::int64_t plane = 0; plane < out.n * out.c; ++plane) {
            const float* src = input + plane * input_shape.plane();
            float* dst = output + plane * out.plane();
            for (std::int64_t oy = 0; oy < out.h; ++oy) {
                const std::int64_t y0 = oy * spec.stride_h;
                const std::int64_t y1 = std::min(y0 + spec.kernel_h, input_shape.h);
                for (std::int64_t ox = 0; ox < out.w; ++ox) {
                    const std::int64_t x0 = ox * sw, x1 = std::min(x0 + kw, w);
                    float best = src[y0 * w + x0];
                    for (std::int64_t y = y0; y < y1; ++y) {
                        const float* row = src + y * w;
                        for (std::int64_t x = x0; x < x1; ++x) best = row[x] > best ? row[x] : best;
                    }
                    *dst++ = best;
                }
            }
        }
        return;
    }
    const std::int64_t full = std::min(out.w, w >= kw ? (w - kw) / sw + 1 : 0);
    const std::int64_t spans = full > 0 ? (full - 1) * sw + 1 : 0;
    float* const row_max = scratch(kPoolRows, 2 * w);
    float* const window_max = row_max + w;
    for (std::int64_t plane = 0; plane < out.n * out.c; ++plane) {
        const float* src = input + plane * input_shape.plane();
        float* dst = output + plane * out.plane();
        for (std::int64_t oy = 0; oy < out.h; ++oy, dst += out.w) {
            const std::int64_t y0 = oy * spec.stride_h;
            const std::int64_t y1 = std::min(y0 + spec.kernel_h, input_shape.h);
            float* __restrict m = row_max;
            std::copy(src + y0 * w, src + (y0 + 1) * w, m);
            for (std::int64_t y = y0 + 1; y < y1; ++y) {
                const float* __restrict row = src + y * w;
                for (std::int64_t x = 0; x < w; ++x) m[x] = row[x] > m[x] ? row[x] : m[x];
            }
            float* __restrict p = window_max;
            std::copy(m, m + spans, p);
            for (std::int64_t t = 1; t < kw; ++t) {
                const float* __restrict shifted = m + t;
                for (std::int64_t x = 0; x < spans; ++x) {
                    p[x] = shifted[x] > p[x] ? shifted[x] : p[x];
                }
            }
            for (std::int64_t ox = 0; ox < full; ++ox) dst[ox] = p[ox * sw];
            for (std::int64_t ox = full; ox < out.w; ++ox) {
                const std::int64_t x0 = ox * sw, x1 = std::min(x0 + kw, w);
                float best = m[x0];
                for (std::int64_t x = x0 + 1; x < x1; ++x) best = m[x] > best ? m[x] : best;
                dst[ox] = best;
            }
        }
    }
}

void prelu(float* data, std::int64_t n, std::int64_t channels, std::int64_t plane_size,
           const float* slope) {
    require(n >= 1 && channels >= 1 && plane_size >= 1, "prelu: empty input");
    for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t c = 0; c < channels; ++c) {
            float* __restrict p = data + (i * channels + c) * plane_size;
            const float s = slope[c];
            for (std::int64_t k = 0; k < plane_size; ++k) p[k] = p[k] > 0.0f ? p[k] : s * p[k];
        }
    }
}

void relu(float* data, std::int64_t count) {
    for (std::int64_t k = 0; k < count; ++k) data[k] = data[k] > 0.0f ? data[k] : 0.0f;
}

void fully_connected(const float* input, std::int64_t n, std::int64_t k, const float* weight,
                     std::int64_t m, const float* bias, float* output) {
    require(n >= 1 && k >= 1 && m >= 1, "fully_connected: every dimension must be at least 1");
    const Kernels& kernels = kernels_for(simd_level());
    // Batches of up to 16 (the O-net's few crops): up to 8 rows at a time as dot products.
    if (kernels.fully_connected_few && n <= 16 && k >= 64) {
        for (std::int64_t i = 0; i < n; i += 8) {
            const std::int64_t count = std::min<std::int64_t>(8, n - i);
            kernels.fully_connected_few(input + i * k, count, k, weight, m, bias, output + i * m);
        }
        return;
    }
    // As output^T = weight . input^T the GEMM streams the (large) weight matrix once for the
    // whole batch instead of once per sample.
    std::vector<float> input_t(k * n), output_t(m * n);
    for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t j = 0; j < k; ++j) input_t[j * n + i] = input[i * k + j];
    }
    kernels.gemm(GemmArgs{weight, input_t.data(), bias, output_t.data(), m, k, n, n, n});
    for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t j = 0; j < m; ++j) output[i * m + j] = output_t[j * n + i];
    }
}

void softmax(const float* input, std::int64_t outer, std::int64_t axis_len, std::int64_t inner,
             float* output) {
    require(outer >= 1 && axis_len >= 1 && inner >= 1, "softmax: empty input");
    if (axis_len == 2) {  // two classes (the detector's face / no face): one exponential each
        const Kernels& kernels = kernels_for(simd_level());
        for (std::int64_t o = 0; o < outer; ++o) {
            const float* a = input + o * 2 * inner;
            const float* b = a + inner;
            float* pa = output + o * 2 * inner;
            float* pb = pa + inner;
            kernels.softmax_pair(a, b, pa, pb, inner);
        }
        return;
    }
    // Work on whole inner rows so every loop runs over contiguous memory.
    std::vector<float> peak(inner), total(inner);
    for (std::int64_t o = 0; o < outer; ++o) {
        const float* src = input + o * axis_len * inner;
        float* dst = output + o * axis_len * inner;
        std::copy(src, src + inner, peak.begin());
        for (std::int64_t a = 1; a < axis_len; ++a) {
            for (std::int64_t i = 0; i < inner; ++i) {
                peak[i] = std::max(peak[i], src[a * inner + i]);
            }
        }
        std::fill(total.begin(), total.end(), 0.0f);
        for (std::int64_t a = 0; a < axis_len; ++a) {
            for (std::int64_t i = 0; i < inner; ++i) {
                const float e = std::exp(src[a * inner + i] - peak[i]);
                dst[a * inner + i] = e;
                total[i] += e;
            }
        }
        for (std::int64_t i = 0; i < inner; ++i) total[i] = 1.0f / total[i];
        for (std::int64_t a = 0; a < axis_len; ++a) {
            for (std::int64_t i = 0; i < inner; ++i) dst[a * inner + i] *= total[i];
        }
    }
}

}  // namespace masksegx
