// The plain C++ kernels: what every level falls back to, and the reference the SIMD versions
// are tested against (set_simd_enabled(false) runs only these).
#include <algorithm>

#include "nn_internal.hpp"

namespace masksegx {
namespace nn_detail {

void gemm_scalar(const GemmArgs& g) {
    // Column blocks keep the output rows and the B panel in L1 across all rows.
    constexpr i64 kBlock = 256;
    for (i64 p0 = 0; p0 < g.cols; p0 += kBlock) {
        const i64 width = std::min(kBlock, g.cols - p0);
        for (i64 m = 0; m < g.rows; ++m) {
            float* __restrict out = g.out + m * g.ldc + p0;
            const float init = g.bias ? g.bias[m] : 0.0f;
            for (i64 p = 0; p < width; ++p) out[p] = init;
            const float* w_row = g.w + m * g.depth;
            for (i64 k = 0; k < g.depth; ++k) {
                const float wk = w_row[k];
                const float* __restrict b = g.b + k * g.ldb + p0;
                for (i64 p = 0; p < width; ++p) out[p] += wk * b[p];
            }
            if (g.slope) prelu_run(out, width, g.slope[m]);
        }
    }
}

// The plane is pre-split by column phase, so every tap is a contiguous run whatever the stride.
void depthwise_row_scalar(const float* const* taps, const float* w, float bias,
                          float* __restrict out, i64 width) {
    const float *t0 = taps[0], *t1 = taps[1], *t2 = taps[2], *t3 = taps[3], *t4 = taps[4],
                *t5 = taps[5], *t6 = taps[6], *t7 = taps[7], *t8 = taps[8];
    for (i64 x = 0; x < width; ++x) {
        float s = bias;
        s += w[0] * t0[x];
        s += w[1] * t1[x];
        s += w[2] * t2[x];
        s += w[3] * t3[x];
        s += w[4] * t4[x];
        s += w[5] * t5[x];
        s += w[6] * t6[x];
        s += w[7] * t7[x];
        s += w[8] * t8[x];
        out[x] = s;
    }
}

void gather_stride2_scalar(const float* src, float* dst, i64 count) {
    for (i64 i = 0; i < count; ++i) dst[i] = src[2 * i];
}

void copy_rows_scalar(const float* src, i64 src_stride, i64 step, float* __restrict dst, i64 count,
                      i64 rows) {
    for (i64 r = 0; r < rows; ++r, src += src_stride, dst += count) {
        for (i64 x = 0; x < count; ++x) dst[x] = src[x * step];
    }
}

void weighted_rows_f32_scalar(const float* src, i64 stride, const float* weight, i64 count,
                              i64 length, float* dst) {
    weighted_rows_loop(src, stride, weight, count, length, dst);
}

void weighted_rows_u8_scalar(const std::uint8_t* src, i64 stride, const float* weight, i64 count,
                             i64 length, float* dst) {
    weighted_rows_loop(src, stride, weight, count, length, dst);
}

void softmax_pair_scalar(const float* a, const float* b, float* pa, float* pb, i64 count) {
    softmax_pair_loop(a, b, pa, pb, count);
}

}  // namespace nn_detail
}  // namespace masksegx
