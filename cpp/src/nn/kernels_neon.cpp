// The NEON kernels (aarch64, where NEON is part of the baseline).
#include "nn_internal.hpp"

#if defined(MASKSEGX_NEON_KERNELS)
#include <arm_neon.h>

namespace masksegx {
namespace nn_detail {
namespace {

template <int Rows>
inline void gemm_tile_neon(const GemmArgs& g, i64 m0, i64 p0) {
    float32x4_t acc0[Rows], acc1[Rows];
    for (int r = 0; r < Rows; ++r) {
        acc0[r] = acc1[r] = vdupq_n_f32(g.bias ? g.bias[m0 + r] : 0.0f);
    }
    const float* b = g.b + p0;
    const float* w = g.w + m0 * g.depth;
    for (i64 k = 0; k < g.depth; ++k, b += g.ldb) {
        const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
        for (int r = 0; r < Rows; ++r) {
            const float32x4_t wk = vdupq_n_f32(w[r * g.depth + k]);
            acc0[r] = vfmaq_f32(acc0[r], wk, b0);
            acc1[r] = vfmaq_f32(acc1[r], wk, b1);
        }
    }
    if (g.slope) {
        const float32x4_t zero = vdupq_n_f32(0.0f);
        for (int r = 0; r < Rows; ++r) {
            const float32x4_t s = vdupq_n_f32(g.slope[m0 + r]);
            acc0[r] = vbslq_f32(vcgtq_f32(acc0[r], zero), acc0[r], vmulq_f32(acc0[r], s));
            acc1[r] = vbslq_f32(vcgtq_f32(acc1[r], zero), acc1[r], vmulq_f32(acc1[r], s));
        }
    }
    float* out = g.out + m0 * g.ldc + p0;
    for (int r = 0; r < Rows; ++r, out += g.ldc) {
        vst1q_f32(out, acc0[r]);
        vst1q_f32(out + 4, acc1[r]);
    }
}

}  // namespace

void gemm_neon(const GemmArgs& g) {
    i64 p0 = 0;
    for (; p0 + 8 <= g.cols; p0 += 8) {
        i64 m = 0;
        for (; m + 4 <= g.rows; m += 4) gemm_tile_neon<4>(g, m, p0);
        for (; m < g.rows; ++m) gemm_tile_neon<1>(g, m, p0);
    }
    if (p0 < g.cols) {
        GemmArgs tail = g;
        tail.b += p0;
        tail.out += p0;
        tail.cols = g.cols - p0;
        gemm_scalar(tail);
    }
}

void depthwise_row_neon(const float* const* taps, const float* w, float bias, float* out,
                        i64 width) {
    float32x4_t wv[9];
    for (int t = 0; t < 9; ++t) wv[t] = vdupq_n_f32(w[t]);
    const float32x4_t bv = vdupq_n_f32(bias);
    i64 x = 0;
    for (; x + 4 <= width; x += 4) {
        float32x4_t acc = bv;
        for (int t = 0; t < 9; ++t) acc = vfmaq_f32(acc, wv[t], vld1q_f32(taps[t] + x));
        vst1q_f32(out + x, acc);
    }
    if (x < width) {
        const float* shifted[9];
        for (int t = 0; t < 9; ++t) shifted[t] = taps[t] + x;
        depthwise_row_scalar(shifted, w, bias, out + x, width - x);
    }
}

}  // namespace nn_detail
}  // namespace masksegx

#endif  // MASKSEGX_NEON_KERNELS
