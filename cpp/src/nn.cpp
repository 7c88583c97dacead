#include "masksegx/nn.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

// The AVX2 paths are compiled per function (target attribute) so the library itself needs no
// -m flags and still runs on any x86-64; the CPU is asked once at run time.
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MASKSEGX_AVX2_PATH 1
#include <immintrin.h>
#define MASKSEGX_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define MASKSEGX_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace masksegx {
namespace {

using i64 = std::int64_t;

// ---- instruction-set selection -------------------------------------------------------------

SimdLevel detect_simd() {
#if defined(__aarch64__)
    return SimdLevel::Neon;  // NEON is part of the aarch64 baseline
#elif defined(MASKSEGX_AVX2_PATH)
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
        return SimdLevel::Scalar;
    }
    // MASKSEGX_NO_AVX512=1 stops at AVX2 (to check or time that path on an AVX-512 CPU).
    const char* no_avx512 = std::getenv("MASKSEGX_NO_AVX512");
    const bool avx512_allowed = !(no_avx512 && std::strcmp(no_avx512, "1") == 0);
    return avx512_allowed && __builtin_cpu_supports("avx512f") ? SimdLevel::Avx512
                                                               : SimdLevel::Avx2;
#else
    return SimdLevel::Scalar;
#endif
}

std::atomic<bool>& simd_enabled_flag() {
    static std::atomic<bool> enabled{[] {
        const char* force = std::getenv("MASKSEGX_FORCE_SCALAR");
        return !(force && std::strcmp(force, "1") == 0);
    }()};
    return enabled;
}

// Per-thread scratch that only grows: the kernels run once per layer, pyramid level and crop
// batch, and fresh large buffers would be mapped and page-faulted on every call.
enum ScratchSlot { kPhases, kColumns, kFolded, kResizeRows, kPoolRows, kWideRows, kScratchSlots };
float* scratch(ScratchSlot slot, i64 count) {
    thread_local std::vector<float> buffers[kScratchSlots];
    std::vector<float>& buffer = buffers[slot];
    if (static_cast<i64>(buffer.size()) < count) buffer.resize(count);
    return buffer.data();
}

// ---- GEMM: the core of pointwise and im2col convolution --------------------------------------

// out[m * ldc + p] = bias[m] + sum_k w[m * depth + k] * b[k * ldb + p], m < rows, p < cols.
// Every path sums k in the same order, so SIMD and scalar differ only by FMA rounding.
struct GemmArgs {
    const float* w;
    const float* b;
    const float* bias;  // null: zeros
    float* out;
    i64 rows, depth, cols, ldb, ldc;
    const float* slope = nullptr;  // per row: PReLU applied to the output (null: none)
};

// x > 0 ? x : slope * x over a contiguous run (vectorised by the compiler).
inline void prelu_run(float* __restrict data, i64 count, float slope) {
    for (i64 k = 0; k < count; ++k) data[k] = data[k] > 0.0f ? data[k] : slope * data[k];
}

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

#if defined(MASKSEGX_AVX2_PATH)
// A Rows x 16 tile (Rows <= 4) of the output held in 2 * Rows registers over the whole depth
// (6-row tiles measured 1.5x slower: GCC spills them). Tail tiles (fewer than 16 columns
// left) use masked loads and stores.
template <int Rows, bool Tail>
MASKSEGX_TARGET_AVX2 inline void gemm_tile_avx2(const GemmArgs& g, i64 m0, i64 p0, __m256i mask0,
                                                __m256i mask1) {
    __m256 acc0[Rows], acc1[Rows];
    for (int r = 0; r < Rows; ++r) {
        acc0[r] = acc1[r] = _mm256_set1_ps(g.bias ? g.bias[m0 + r] : 0.0f);
    }
    const float* b = g.b + p0;
    const float* w = g.w + m0 * g.depth;
    for (i64 k = 0; k < g.depth; ++k, b += g.ldb) {
        const __m256 b0 = Tail ? _mm256_maskload_ps(b, mask0) : _mm256_loadu_ps(b);
        const __m256 b1 = Tail ? _mm256_maskload_ps(b + 8, mask1) : _mm256_loadu_ps(b + 8);
        for (int r = 0; r < Rows; ++r) {
            const __m256 wk = _mm256_broadcast_ss(w + r * g.depth + k);
            acc0[r] = _mm256_fmadd_ps(wk, b0, acc0[r]);
            acc1[r] = _mm256_fmadd_ps(wk, b1, acc1[r]);
        }
    }
    if (g.slope) {
        const __m256 zero = _mm256_setzero_ps();
        for (int r = 0; r < Rows; ++r) {
            const __m256 s = _mm256_set1_ps(g.slope[m0 + r]);
            acc0[r] = _mm256_blendv_ps(_mm256_mul_ps(acc0[r], s), acc0[r],
                                       _mm256_cmp_ps(acc0[r], zero, _CMP_GT_OQ));
            acc1[r] = _mm256_blendv_ps(_mm256_mul_ps(acc1[r], s), acc1[r],
                                       _mm256_cmp_ps(acc1[r], zero, _CMP_GT_OQ));
        }
    }
    float* out = g.out + m0 * g.ldc + p0;
    for (int r = 0; r < Rows; ++r, out += g.ldc) {
        if (Tail) {
            _mm256_maskstore_ps(out, mask0, acc0[r]);
            _mm256_maskstore_ps(out + 8, mask1, acc1[r]);
        } else {
            _mm256_storeu_ps(out, acc0[r]);
            _mm256_storeu_ps(out + 8, acc1[r]);
        }
    }
}

template <bool Tail>
MASKSEGX_TARGET_AVX2 void gemm_column_strip_avx2(const GemmArgs& g, i64 p0, __m256i mask0,
                                                 __m256i mask1) {
    i64 m = 0;
    for (; m + 4 <= g.rows; m += 4) gemm_tile_avx2<4, Tail>(g, m, p0, mask0, mask1);
    switch (g.rows - m) {
        case 3: gemm_tile_avx2<3, Tail>(g, m, p0, mask0, mask1); break;
        case 2: gemm_tile_avx2<2, Tail>(g, m, p0, mask0, mask1); break;
        case 1: gemm_tile_avx2<1, Tail>(g, m, p0, mask0, mask1); break;
        default: break;
    }
}

MASKSEGX_TARGET_AVX2 void gemm_avx2(const GemmArgs& g) {
    // Column strips outermost: a depth x 16 panel of B stays in L1 for every row tile.
    const __m256i all = _mm256_set1_epi32(-1);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    i64 p0 = 0;
    for (; p0 + 16 <= g.cols; p0 += 16) gemm_column_strip_avx2<false>(g, p0, all, all);
    const i64 left = g.cols - p0;
    if (left > 0) {
        const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(left)), lane);
        const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(left - 8)), lane);
        gemm_column_strip_avx2<true>(g, p0, mask0, mask1);
    }
}
#endif

#if defined(MASKSEGX_AVX2_PATH)
// AVX-512: a Rows x 32 tile (Rows <= 8: 16 of the 32 vector registers hold the outputs);
// tails use masked loads and stores. Same summation order as the other paths.
template <int Rows, bool Tail>
MASKSEGX_TARGET_AVX512 inline void gemm_tile_avx512(const GemmArgs& g, i64 m0, i64 p0,
                                                    __mmask16 mask0, __mmask16 mask1) {
    __m512 acc0[Rows], acc1[Rows];
    for (int r = 0; r < Rows; ++r) {
        acc0[r] = acc1[r] = _mm512_set1_ps(g.bias ? g.bias[m0 + r] : 0.0f);
    }
    const float* b = g.b + p0;
    const float* w = g.w + m0 * g.depth;
    for (i64 k = 0; k < g.depth; ++k, b += g.ldb) {
        const __m512 b0 = Tail ? _mm512_maskz_loadu_ps(mask0, b) : _mm512_loadu_ps(b);
        const __m512 b1 = Tail ? _mm512_maskz_loadu_ps(mask1, b + 16) : _mm512_loadu_ps(b + 16);
        for (int r = 0; r < Rows; ++r) {
            const __m512 wk = _mm512_set1_ps(w[r * g.depth + k]);
            acc0[r] = _mm512_fmadd_ps(wk, b0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(wk, b1, acc1[r]);
        }
    }
    if (g.slope) {
        const __m512 zero = _mm512_setzero_ps();
        for (int r = 0; r < Rows; ++r) {
            const __m512 s = _mm512_set1_ps(g.slope[m0 + r]);
            acc0[r] = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(acc0[r], zero, _CMP_GT_OQ),
                                           _mm512_mul_ps(acc0[r], s), acc0[r]);
            acc1[r] = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(acc1[r], zero, _CMP_GT_OQ),
                                           _mm512_mul_ps(acc1[r], s), acc1[r]);
        }
    }
    float* out = g.out + m0 * g.ldc + p0;
    for (int r = 0; r < Rows; ++r, out += g.ldc) {
        if (Tail) {
            _mm512_mask_storeu_ps(out, mask0, acc0[r]);
            _mm512_mask_storeu_ps(out + 16, mask1, acc1[r]);
        } else {
            _mm512_storeu_ps(out, acc0[r]);
            _mm512_storeu_ps(out + 16, acc1[r]);
        }
    }
}

template <bool Tail>
MASKSEGX_TARGET_AVX512 void gemm_column_strip_avx512(const GemmArgs& g, i64 p0, __mmask16 mask0,
                                                     __mmask16 mask1) {
    i64 m = 0;
    for (; m + 8 <= g.rows; m += 8) gemm_tile_avx512<8, Tail>(g, m, p0, mask0, mask1);
    switch (g.rows - m) {
        case 7: gemm_tile_avx512<7, Tail>(g, m, p0, mask0, mask1); break;
        case 6: gemm_tile_avx512<6, Tail>(g, m, p0, mask0, mask1); break;
        case 5: gemm_tile_avx512<5, Tail>(g, m, p0, mask0, mask1); break;
        case 4: gemm_tile_avx512<4, Tail>(g, m, p0, mask0, mask1); break;
        case 3: gemm_tile_avx512<3, Tail>(g, m, p0, mask0, mask1); break;
        case 2: gemm_tile_avx512<2, Tail>(g, m, p0, mask0, mask1); break;
        case 1: gemm_tile_avx512<1, Tail>(g, m, p0, mask0, mask1); break;
        default: break;
    }
}

MASKSEGX_TARGET_AVX512 void gemm_avx512(const GemmArgs& g) {
    i64 p0 = 0;
    for (; p0 + 32 <= g.cols; p0 += 32) gemm_column_strip_avx512<false>(g, p0, 0xFFFF, 0xFFFF);
    const i64 left = g.cols - p0;
    if (left > 0) {
        const auto bits = [](i64 n) {
            return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1);
        };
        gemm_column_strip_avx512<true>(g, p0, bits(left), bits(left - 16));
    }
}
#endif

#if defined(__aarch64__)
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
#endif

void gemm(const GemmArgs& g, SimdLevel level) {
#if defined(MASKSEGX_AVX2_PATH)
    if (level == SimdLevel::Avx512) return gemm_avx512(g);
    if (level == SimdLevel::Avx2) return gemm_avx2(g);
#endif
#if defined(__aarch64__)
    if (level == SimdLevel::Neon) return gemm_neon(g);
#endif
    (void)level;
    gemm_scalar(g);
}

// ---- depthwise 3x3 ----------------------------------------------------------------------------

// out[x] = bias + sum_t w[t] * taps[t][x] for the 9 taps of one output row: the plane is
// pre-split by column phase, so every tap is a contiguous run whatever the stride.
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

#if defined(MASKSEGX_AVX2_PATH)
MASKSEGX_TARGET_AVX2 void depthwise_row_avx2(const float* const* taps, const float* w, float bias,
                                             float* out, i64 width) {
    __m256 wv[9];
    for (int t = 0; t < 9; ++t) wv[t] = _mm256_set1_ps(w[t]);
    const __m256 bv = _mm256_set1_ps(bias);
    i64 x = 0;
    for (; x + 8 <= width; x += 8) {
        __m256 acc = bv;
        for (int t = 0; t < 9; ++t) acc = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(taps[t] + x), acc);
        _mm256_storeu_ps(out + x, acc);
    }
    if (x < width) {
        const float* shifted[9];
        for (int t = 0; t < 9; ++t) shifted[t] = taps[t] + x;
        depthwise_row_scalar(shifted, w, bias, out + x, width - x);
    }
}
#endif

#if defined(MASKSEGX_AVX2_PATH)
MASKSEGX_TARGET_AVX512 void depthwise_row_avx512(const float* const* taps, const float* w,
                                                 float bias, float* out, i64 width) {
    __m512 wv[9];
    for (int t = 0; t < 9; ++t) wv[t] = _mm512_set1_ps(w[t]);
    const __m512 bv = _mm512_set1_ps(bias);
    for (i64 x = 0; x < width; x += 16) {
        const i64 left = width - x;
        const __mmask16 mask = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
        __m512 acc = bv;
        for (int t = 0; t < 9; ++t) {
            acc = _mm512_fmadd_ps(wv[t], _mm512_maskz_loadu_ps(mask, taps[t] + x), acc);
        }
        _mm512_mask_storeu_ps(out + x, mask, acc);
    }
}
#endif

#if defined(__aarch64__)
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
#endif

using DepthwiseRow = void (*)(const float* const*, const float*, float, float*, i64);

DepthwiseRow depthwise_row_for(SimdLevel level) {
#if defined(MASKSEGX_AVX2_PATH)
    if (level == SimdLevel::Avx512) return depthwise_row_avx512;
    if (level == SimdLevel::Avx2) return depthwise_row_avx2;
#endif
#if defined(__aarch64__)
    if (level == SimdLevel::Neon) return depthwise_row_neon;
#endif
    (void)level;
    return depthwise_row_scalar;
}

// Output rows narrower than this run as one stretch per plane (see depthwise3x3).
constexpr i64 kNarrowDepthwise = 32;

void depthwise3x3(const float* input, const Tensor4Shape& in, const float* weight,
                  const float* bias, const float* slope, const Conv2dSpec& spec,
                  const Tensor4Shape& out_shape, float* output, SimdLevel level) {
    const i64 sh = spec.stride_h, sw = spec.stride_w;
    const i64 padded_h = in.h + 2 * spec.pad_h, padded_w = in.w + 2 * spec.pad_w;
    // Unpadded stride-1 planes are read in place; otherwise each plane is copied once into
    // `sw` zero-bordered column phases (phase q holds padded columns q, q + sw, ...).
    const bool in_place = spec.pad_h == 0 && spec.pad_w == 0 && sw == 1;
    const i64 phase_w = (padded_w + sw - 1) / sw;
    const i64 phase_size = padded_h * phase_w;
    float* const phases = in_place ? nullptr : scratch(kPhases, sw * phase_size);
    if (!in_place) std::fill(phases, phases + sw * phase_size, 0.0f);
    const DepthwiseRow row_kernel = depthwise_row_for(level);
    // Padded column X = x + pad_w lives in phase X % sw at X / sw: the first input column of
    // each phase, and each tap's offset within a phase-split plane, computed once.
    std::vector<i64> phase_first_x(sw);
    for (i64 q = 0; q < sw; ++q) phase_first_x[q] = ((q - spec.pad_w) % sw + sw) % sw;
    const i64 row_stride = in_place ? in.w : phase_w, phase_stride = in_place ? 0 : phase_size;
    i64 tap_offset[9];
    for (i64 i = 0; i < 3; ++i) {
        for (i64 j = 0; j < 3; ++j) {
            tap_offset[i * 3 + j] = (j % sw) * phase_stride + i * row_stride + j / sw;
        }
    }

    const i64 wide_len = (out_shape.h - 1) * row_stride + out_shape.w;
    float* const wide = sh == 1 && sw == 1 && out_shape.w < kNarrowDepthwise
                            ? scratch(kWideRows, wide_len)
                            : nullptr;
    for (i64 n = 0; n < in.n; ++n) {
        for (i64 c = 0; c < in.c; ++c) {
            const float* plane = input + (n * in.c + c) * in.plane();
            const float* base = in_place ? plane : phases;
            if (!in_place) {
                for (i64 y = 0; y < in.h; ++y) {
                    const float* src = plane + y * in.w;
                    for (i64 q = 0; q < sw; ++q) {
                        const i64 first = phase_first_x[q];
                        float* dst = phases + q * phase_size + (y + spec.pad_h) * phase_w +
                                     (first + spec.pad_w) / sw;
                        for (i64 x = first; x < in.w; x += sw) *dst++ = src[x];
                    }
                }
            }
            const float* w9 = weight + c * 9;
            const float b = bias ? bias[c] : 0.0f;
            float* out_plane = output + (n * out_shape.c + c) * out_shape.plane();
            if (wide) {
                // Narrow stride-1 planes: one run over the rows laid end to end (the columns
                // between an output row's end and the next row's start are computed and
                // dropped), then the rows copied out.
                const float* taps[9];
                for (int t = 0; t < 9; ++t) taps[t] = base + tap_offset[t];
                row_kernel(taps, w9, b, wide, wide_len);
                for (i64 oy = 0; oy < out_shape.h; ++oy) {
                    std::copy(wide + oy * row_stride, wide + oy * row_stride + out_shape.w,
                              out_plane + oy * out_shape.w);
                }
            } else {
                for (i64 oy = 0; oy < out_shape.h; ++oy) {
                    const float* row = base + oy * sh * row_stride;
                    const float* taps[9];
                    for (int t = 0; t < 9; ++t) taps[t] = row + tap_offset[t];
                    row_kernel(taps, w9, b, out_plane + oy * out_shape.w, out_shape.w);
                }
            }
            if (slope) prelu_run(out_plane, out_shape.plane(), slope[c]);
        }
    }
}

// ---- generic convolution: im2col in bands of output rows, then GEMM ------------------------

// dst[i] = src[2 i] for i < count (the columns of a stride-2 convolution); nothing past
// src[2 count - 2] is read.
void gather_stride2_scalar(const float* src, float* dst, i64 count) {
    for (i64 i = 0; i < count; ++i) dst[i] = src[2 * i];
}

#if defined(MASKSEGX_AVX2_PATH)
MASKSEGX_TARGET_AVX2 void gather_stride2_avx2(const float* src, float* dst, i64 count) {
    i64 i = 0;
    for (; i + 8 < count; i += 8) {  // reads src[2 i .. 2 i + 15], 2 i + 15 <= 2 count - 3
        const __m256 a = _mm256_loadu_ps(src + 2 * i), b = _mm256_loadu_ps(src + 2 * i + 8);
        const __m256 even = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        _mm256_storeu_ps(dst + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even),
                                                                         _MM_SHUFFLE(3, 1, 2, 0))));
    }
    gather_stride2_scalar(src + 2 * i, dst + i, count - i);
}
#endif

using GatherStride2 = void (*)(const float*, float*, i64);

GatherStride2 gather_stride2_for(SimdLevel level) {
#if defined(MASKSEGX_AVX2_PATH)
    if (level == SimdLevel::Avx2 || level == SimdLevel::Avx512) return gather_stride2_avx2;
#endif
    (void)level;
    return gather_stride2_scalar;
}

// dst[r * count + x] = src[r * src_stride + x * step] for r < rows, x < count, step 1 or 2:
// the im2col rows of one kernel tap of an unpadded convolution. Nothing past
// src[(rows - 1) * src_stride + (count - 1) * step] is read.
void copy_rows_scalar(const float* src, i64 src_stride, i64 step, float* __restrict dst, i64 count,
                      i64 rows) {
    for (i64 r = 0; r < rows; ++r, src += src_stride, dst += count) {
        for (i64 x = 0; x < count; ++x) dst[x] = src[x * step];
    }
}

#if defined(MASKSEGX_AVX2_PATH)
MASKSEGX_TARGET_AVX2 void copy_rows_avx2(const float* src, i64 src_stride, i64 step, float* dst,
                                         i64 count, i64 rows) {
    if (step != 1) {
        for (i64 r = 0; r < rows; ++r) {
            gather_stride2_avx2(src + r * src_stride, dst + r * count, count);
        }
        return;
    }
    for (i64 r = 0; r < rows; ++r, src += src_stride, dst += count) {
        i64 x = 0;
        for (; x + 8 <= count; x += 8) _mm256_storeu_ps(dst + x, _mm256_loadu_ps(src + x));
        for (; x < count; ++x) dst[x] = src[x];
    }
}

// Short rows (R/O-net crops) cost one masked load and store each (two loads and a permute at
// step 2) instead of a call per row.
MASKSEGX_TARGET_AVX512 void copy_rows_avx512(const float* src, i64 src_stride, i64 step, float* dst,
                                             i64 count, i64 rows) {
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const auto lanes = [](i64 n) {
        return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1);
    };
    for (i64 r = 0; r < rows; ++r, src += src_stride, dst += count) {
        for (i64 x = 0; x < count; x += 16) {
            const i64 n = std::min<i64>(16, count - x);
            if (step == 1) {
                const __mmask16 mask = lanes(n);
                _mm512_mask_storeu_ps(dst + x, mask, _mm512_maskz_loadu_ps(mask, src + x));
            } else {
                // Elements 2x .. 2x + 2n - 2: the last odd one is not needed and not read.
                const float* from = src + 2 * x;
                const __m512 low = _mm512_maskz_loadu_ps(lanes(2 * n - 1), from);
                const __m512 high = _mm512_maskz_loadu_ps(lanes(2 * n - 1 - 16), from + 16);
                _mm512_mask_storeu_ps(dst + x, lanes(n), _mm512_permutex2var_ps(low, even, high));
            }
        }
    }
}
#endif

using CopyRows = void (*)(const float*, i64, i64, float*, i64, i64);

CopyRows copy_rows_for(SimdLevel level) {
#if defined(MASKSEGX_AVX2_PATH)
    if (level == SimdLevel::Avx512) return copy_rows_avx512;
    if (level == SimdLevel::Avx2) return copy_rows_avx2;
#endif
    (void)level;
    return copy_rows_scalar;
}

// A band's column matrix is at most this many floats (256 KiB: stays in L2).
constexpr i64 kColumnBufferFloats = 1 << 16;
// Output planes smaller than this are batched: the columns of several samples form one GEMM
// (a 3x3 plane alone fills only 9 of a 16-column tile; 64 11x11 R-net planes took 0.19 ms one
// GEMM per sample, 0.14 ms folded).
constexpr i64 kFoldPlane = 256;

// Writes rows [oy0, oy0 + rows) of the im2col matrix of one group of one sample: matrix row
// (ci, i, j) starts at dst + ((ci * kh + i) * kw + j) * row_stride and holds rows * out.w values.
struct ColumnFiller {
    const Tensor4Shape& in;
    const Conv2dSpec& spec;
    const Tensor4Shape& out;
    i64 in_group;
    std::vector<i64> first_x, end_x;  // output columns read inside the input, per kernel column
    GatherStride2 gather2;
    CopyRows copy_rows;

    ColumnFiller(const Tensor4Shape& in_, const Conv2dSpec& spec_, const Tensor4Shape& out_,
                 SimdLevel level)
        : in(in_),
          spec(spec_),
          out(out_),
          in_group(in_.c / spec_.groups),
          first_x(spec_.kernel_w),
          end_x(spec_.kernel_w),
          gather2(gather_stride2_for(level)),
          copy_rows(copy_rows_for(level)) {
        const i64 sw = spec.stride_w;
        for (i64 j = 0; j < spec.kernel_w; ++j) {
            const i64 lead = spec.pad_w - j;
            first_x[j] = std::min(out.w, lead <= 0 ? i64{0} : (lead + sw - 1) / sw);
            const i64 last_in = in.w - 1 + spec.pad_w - j;
            end_x[j] =
                std::max(first_x[j], last_in < 0 ? i64{0} : std::min(out.w, last_in / sw + 1));
        }
    }

    void fill(const float* group_input, i64 oy0, i64 rows, float* dst, i64 row_stride) const {
        const i64 kh = spec.kernel_h, kw = spec.kernel_w, sh = spec.stride_h, sw = spec.stride_w;
        if (spec.pad_h == 0 && spec.pad_w == 0 && sw <= 2) {
            // Every tap reads inside the input: one strided block copy per tap (per-row calls
            // were most of an R-net layer's time: its rows are 3-11 values long).
            for (i64 ci = 0; ci < in_group; ++ci) {
                for (i64 i = 0; i < kh; ++i) {
                    for (i64 j = 0; j < kw; ++j) {
                        copy_rows(group_input + ci * in.plane() + (oy0 * sh + i) * in.w + j,
                                  sh * in.w, sw, dst + ((ci * kh + i) * kw + j) * row_stride, out.w,
                                  rows);
                    }
                }
            }
            return;
        }
        for (i64 ci = 0; ci < in_group; ++ci) {
            for (i64 i = 0; i < kh; ++i) {
                for (i64 j = 0; j < kw; ++j) {
                    float* dst_row = dst + ((ci * kh + i) * kw + j) * row_stride;
                    for (i64 oy = oy0; oy < oy0 + rows; ++oy) {
                        float* d = dst_row + (oy - oy0) * out.w;
                        const i64 iy = oy * sh - spec.pad_h + i;
                        if (iy < 0 || iy >= in.h) {
                            std::fill(d, d + out.w, 0.0f);
                            continue;
                        }
                        const float* src = group_input + ci * in.plane() + iy * in.w;
                        const i64 shift = j - spec.pad_w;
                        std::fill(d, d + first_x[j], 0.0f);
                        if (sw == 1) {
                            std::copy(src + first_x[j] + shift, src + end_x[j] + shift,
                                      d + first_x[j]);
                        } else if (sw == 2) {
                            gather2(src + 2 * first_x[j] + shift, d + first_x[j],
                                    end_x[j] - first_x[j]);
                        } else {
                            for (i64 ox = first_x[j]; ox < end_x[j]; ++ox) {
                                d[ox] = src[ox * sw + shift];
                            }
                        }
                        std::fill(d + end_x[j], d + out.w, 0.0f);
                    }
                }
            }
        }
    }
};

void convolution_im2col(const float* input, const Tensor4Shape& in, const float* weight,
                        const float* bias, const float* slope, const Conv2dSpec& spec,
                        const Tensor4Shape& out, float* output, SimdLevel level) {
    const ColumnFiller filler(in, spec, out, level);
    const i64 in_group = filler.in_group, out_group = out.c / spec.groups;
    const i64 depth = in_group * spec.kernel_h * spec.kernel_w;
    const i64 band_rows = std::clamp<i64>(kColumnBufferFloats / (depth * out.w), 1, out.h);
    float* const columns = scratch(kColumns, depth * band_rows * out.w);
    for (i64 n = 0; n < in.n; ++n) {
        for (i64 g = 0; g < spec.groups; ++g) {
            const float* group_input = input + (n * in.c + g * in_group) * in.plane();
            for (i64 oy0 = 0; oy0 < out.h; oy0 += band_rows) {
                const i64 rows = std::min(band_rows, out.h - oy0);
                const i64 cols = rows * out.w;
                filler.fill(group_input, oy0, rows, columns, cols);
                GemmArgs args{weight + g * out_group * depth,
                              columns,
                              bias ? bias + g * out_group : nullptr,
                              output + ((n * out.c + g * out_group) * out.h + oy0) * out.w,
                              out_group,
                              depth,
                              cols,
                              cols,
                              out.plane(),
                              slope ? slope + g * out_group : nullptr};
                gemm(args, level);
            }
        }
    }
}

// groups == 1 and small output planes: the columns of `chunk` samples side by side, one GEMM
// into a [M, chunk * plane] buffer, then each sample's planes copied to their place.
void convolution_folded(const float* input, const Tensor4Shape& in, const float* weight,
                        const float* bias, const float* slope, const Conv2dSpec& spec,
                        const Tensor4Shape& out, float* output, SimdLevel level) {
    const bool one_by_one = spec.kernel_h == 1 && spec.kernel_w == 1 && spec.stride_h == 1 &&
                            spec.stride_w == 1 && spec.pad_h == 0 && spec.pad_w == 0;
    const ColumnFiller filler(in, spec, out, level);
    const i64 depth = in.c * spec.kernel_h * spec.kernel_w, plane = out.plane();
    const i64 chunk = std::clamp<i64>(kColumnBufferFloats / (depth * plane), 1, in.n);
    float* const columns = scratch(kColumns, depth * chunk * plane);
    float* const result = scratch(kFolded, out.c * chunk * plane);
    for (i64 n0 = 0; n0 < in.n; n0 += chunk) {
        const i64 count = std::min(chunk, in.n - n0), cols = count * plane;
        for (i64 k = 0; k < count; ++k) {
            const float* sample = input + (n0 + k) * in.c * in.plane();
            if (one_by_one) {
                for (i64 c = 0; c < in.c; ++c) {
                    std::copy(sample + c * plane, sample + (c + 1) * plane,
                              columns + c * cols + k * plane);
                }
            } else {
                filler.fill(sample, 0, out.h, columns + k * plane, cols);
            }
        }
        gemm(GemmArgs{weight, columns, bias, result, out.c, depth, cols, cols, cols, slope}, level);
        for (i64 k = 0; k < count; ++k) {
            float* dst = output + (n0 + k) * out.c * plane;
            for (i64 m = 0; m < out.c; ++m) {
                const float* src = result + m * cols + k * plane;
                std::copy(src, src + plane, dst + m * plane);
            }
        }
    }
}

void pointwise(const float* input, const Tensor4Shape& in, const float* weight, const float* bias,
               const float* slope, const Conv2dSpec& spec, const Tensor4Shape& out, float* output,
               SimdLevel level) {
    const i64 in_group = in.c / spec.groups, out_group = out.c / spec.groups;
    for (i64 n = 0; n < in.n; ++n) {
        for (i64 g = 0; g < spec.groups; ++g) {
            GemmArgs args{weight + g * out_group * in_group,
                          input + (n * in.c + g * in_group) * in.plane(),
                          bias ? bias + g * out_group : nullptr,
                          output + (n * out.c + g * out_group) * out.plane(),
                          out_group,
                          in_group,
                          in.plane(),
                          in.plane(),
                          out.plane(),
                          slope ? slope + g * out_group : nullptr};
            gemm(args, level);
        }
    }
}

void require(bool condition, const std::string& message) {
    if (!condition) throw std::invalid_argument(message);
}

void require_shape(const Tensor4Shape& s, const char* what) {
    require(s.n >= 1 && s.c >= 1 && s.h >= 1 && s.w >= 1,
            std::string(what) + ": every dimension must be at least 1");
}

// Largest padding, stride and output side (the image side limit of the bindings): keeps the
// shape arithmetic far from int64 overflow and a typo from allocating gigabytes.
constexpr i64 kMaxSpatial = 1 << 15;

void require_spatial(i64 value, const char* what) {
    require(value <= kMaxSpatial, std::string(what) + " exceeds " + std::to_string(kMaxSpatial) +
                                      ", got " + std::to_string(value));
}

}  // namespace

// ---- public API ---------------------------------------------------------------------------

SimdLevel simd_level() {
    static const SimdLevel best = detect_simd();
    return simd_enabled_flag().load(std::memory_order_relaxed) ? best : SimdLevel::Scalar;
}

const char* simd_level_name(SimdLevel level) {
    switch (level) {
        case SimdLevel::Avx512: return "avx512";
        case SimdLevel::Avx2: return "avx2";
        case SimdLevel::Neon: return "neon";
        default: return "scalar";
    }
}

void set_simd_enabled(bool enabled) { simd_enabled_flag().store(enabled); }

Tensor4Shape conv2d_output_shape(const Tensor4Shape& input, const Conv2dSpec& spec) {
    require_shape(input, "conv2d input");
    require(spec.out_channels >= 1 && spec.kernel_h >= 1 && spec.kernel_w >= 1,
            "conv2d: weight dimensions must be at least 1");
    require(spec.stride_h >= 1 && spec.stride_w >= 1, "conv2d: stride must be at least 1");
    require(spec.pad_h >= 0 && spec.pad_w >= 0, "conv2d: padding must be non-negative");
    require(spec.groups >= 1 && input.c % spec.groups == 0 && spec.out_channels % spec.groups == 0,
            "conv2d: groups must divide the input channels (" + std::to_string(input.c) +
                ") and the output channels (" + std::to_string(spec.out_channels) + ")");
    require_spatial(std::max(spec.pad_h, spec.pad_w), "conv2d: padding");
    require_spatial(std::max(spec.stride_h, spec.stride_w), "conv2d: stride");
    const std::int64_t padded_h = input.h + 2 * spec.pad_h, padded_w = input.w + 2 * spec.pad_w;
    require(padded_h >= spec.kernel_h && padded_w >= spec.kernel_w,
            "conv2d: kernel " + std::to_string(spec.kernel_h) + "x" +
                std::to_string(spec.kernel_w) + " is larger than the padded input " +
                std::to_string(padded_h) + "x" + std::to_string(padded_w));
    const Tensor4Shape out{input.n, spec.out_channels,
                           (padded_h - spec.kernel_h) / spec.stride_h + 1,
                           (padded_w - spec.kernel_w) / spec.stride_w + 1};
    require_spatial(std::max(out.h, out.w), "conv2d: output side");
    return out;
}

void conv2d(const float* input, const Tensor4Shape& input_shape, const float* weight,
            const float* bias, const Conv2dSpec& spec, float* output, const float* slope) {
    const Tensor4Shape out = conv2d_output_shape(input_shape, spec);
    const SimdLevel level = simd_level();
    const bool depthwise = spec.groups == input_shape.c && spec.out_channels == input_shape.c &&
                           spec.kernel_h == 3 && spec.kernel_w == 3;
    const bool one_by_one = spec.kernel_h == 1 && spec.kernel_w == 1 && spec.stride_h == 1 &&
                            spec.stride_w == 1 && spec.pad_h == 0 && spec.pad_w == 0;
    if (depthwise) {
        depthwise3x3(input, input_shape, weight, bias, slope, spec, out, output, level);
    } else if (spec.groups == 1 && input_shape.n > 1 && out.plane() < kFoldPlane) {
        convolution_folded(input, input_shape, weight, bias, slope, spec, out, output, level);
    } else if (one_by_one) {
        pointwise(input, input_shape, weight, bias, slope, spec, out, output, level);
    } else {
        convolution_im2col(input, input_shape, weight, bias, slope, spec, out, output, level);
    }
}

constexpr std::int64_t kSmallPoolWidth = 32;

#if defined(MASKSEGX_AVX2_PATH)
// Rows of at most 32 columns, window width 2 or 3, column stride 2 (the R/O-net pools): each
// output row from one or two vectors per input row. Columns past the row read as -inf, so the
// ceil-mode window clipped by the right edge needs no special case.
MASKSEGX_TARGET_AVX512 void max_pool_narrow_s2_avx512(const float* input, const Tensor4Shape& in,
                                                      const Pool2dSpec& spec,
                                                      const Tensor4Shape& out, float* output) {
    const std::int64_t w = in.w;
    const __mmask16 mask0 = static_cast<__mmask16>(w >= 16 ? 0xFFFF : (1u << w) - 1);
    const __mmask16 mask1 = static_cast<__mmask16>(w <= 16   ? 0
                                                   : w >= 32 ? 0xFFFF
                                                             : (1u << (w - 16)) - 1);
    const __mmask16 out_mask = static_cast<__mmask16>((1u << out.w) - 1);  // out.w <= 16
    const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd =
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    // 2 ox + 2, or 31 for the last lane: v[31] is in that window already (see the note above).
    const __m512i next =
        _mm512_setr_epi32(2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 31);
    const bool three = spec.kernel_w == 3;
    for (std::int64_t plane = 0; plane < out.n * out.c; ++plane) {
        const float* src = input + plane * in.plane();
        float* dst = output + plane * out.plane();
        for (std::int64_t oy = 0; oy < out.h; ++oy, dst += out.w) {
            const std::int64_t y0 = oy * spec.stride_h;
            const std::int64_t y1 = std::min(y0 + spec.kernel_h, in.h);
            __m512 v0 = lowest, v1 = lowest;
            for (std::int64_t y = y0; y < y1; ++y) {
                const float* row = src + y * w;
                v0 = _mm512_max_ps(v0, _mm512_mask_loadu_ps(lowest, mask0, row));
                if (mask1) v1 = _mm512_max_ps(v1, _mm512_mask_loadu_ps(lowest, mask1, row + 16));
            }
            __m512 best = _mm512_max_ps(_mm512_permutex2var_ps(v0, even, v1),
                                        _mm512_permutex2var_ps(v0, odd, v1));
            if (three) best = _mm512_max_ps(best, _mm512_permutex2var_ps(v0, next, v1));
            _mm512_mask_storeu_ps(dst, out_mask, best);
        }
    }
}
#endif

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
#if defined(MASKSEGX_AVX2_PATH)
    if (simd_level() == SimdLevel::Avx512 && w <= 32 && sw == 2 && (kw == 2 || kw == 3)) {
        max_pool_narrow_s2_avx512(input, input_shape, spec, out, output);
        return;
    }
#endif
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

namespace {

#if defined(MASKSEGX_AVX2_PATH)
// Small batches (N <= 8): one pass over each weight row, N dot products at once (8 lanes each,
// summed at the end). The GEMM would fill N of its 16 or 32 columns per strip.
template <int N>
MASKSEGX_TARGET_AVX2 void fully_connected_rows_avx2(const float* input, std::int64_t k,
                                                    const float* weight, std::int64_t m,
                                                    const float* bias, float* output) {
    const std::int64_t full = k / 8 * 8;
    for (std::int64_t r = 0; r < m; ++r) {
        const float* w = weight + r * k;
        __m256 acc[N];
        for (int j = 0; j < N; ++j) acc[j] = _mm256_setzero_ps();
        for (std::int64_t i = 0; i < full; i += 8) {
            const __m256 wv = _mm256_loadu_ps(w + i);
            for (int j = 0; j < N; ++j) {
                acc[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(input + j * k + i), acc[j]);
            }
        }
        for (int j = 0; j < N; ++j) {
            const __m128 half =
                _mm_add_ps(_mm256_castps256_ps128(acc[j]), _mm256_extractf128_ps(acc[j], 1));
            const __m128 pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
            float sum = _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)));
            for (std::int64_t i = full; i < k; ++i) sum += w[i] * input[j * k + i];
            output[j * m + r] = sum + (bias ? bias[r] : 0.0f);
        }
    }
}

bool fully_connected_small_batch(const float* input, std::int64_t n, std::int64_t k,
                                 const float* weight, std::int64_t m, const float* bias,
                                 float* output, SimdLevel level) {
    if (level != SimdLevel::Avx2 && level != SimdLevel::Avx512) return false;
    switch (n) {
        case 1: fully_connected_rows_avx2<1>(input, k, weight, m, bias, output); return true;
        case 2: fully_connected_rows_avx2<2>(input, k, weight, m, bias, output); return true;
        case 3: fully_connected_rows_avx2<3>(input, k, weight, m, bias, output); return true;
        case 4: fully_connected_rows_avx2<4>(input, k, weight, m, bias, output); return true;
        case 5: fully_connected_rows_avx2<5>(input, k, weight, m, bias, output); return true;
        case 6: fully_connected_rows_avx2<6>(input, k, weight, m, bias, output); return true;
        case 7: fully_connected_rows_avx2<7>(input, k, weight, m, bias, output); return true;
        case 8: fully_connected_rows_avx2<8>(input, k, weight, m, bias, output); return true;
        default: return false;
    }
}
#else
bool fully_connected_small_batch(const float*, std::int64_t, std::int64_t, const float*,
                                 std::int64_t, const float*, float*, SimdLevel) {
    return false;
}
#endif

}  // namespace

void fully_connected(const float* input, std::int64_t n, std::int64_t k, const float* weight,
                     std::int64_t m, const float* bias, float* output) {
    require(n >= 1 && k >= 1 && m >= 1, "fully_connected: every dimension must be at least 1");
    // Batches of up to 8 (the O-net's few crops) in groups of 8 as dot products.
    const SimdLevel level = simd_level();
    if (n <= 16 && k >= 64 && level != SimdLevel::Scalar) {
        bool done = true;
        for (std::int64_t i = 0; i < n && done; i += 8) {
            const std::int64_t count = std::min<std::int64_t>(8, n - i);
            done = fully_connected_small_batch(input + i * k, count, k, weight, m, bias,
                                               output + i * m, level);
        }
        if (done) return;
    }
    // As output^T = weight . input^T the GEMM streams the (large) weight matrix once for the
    // whole batch instead of once per sample.
    std::vector<float> input_t(k * n), output_t(m * n);
    for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t j = 0; j < k; ++j) input_t[j * n + i] = input[i * k + j];
    }
    gemm(GemmArgs{weight, input_t.data(), bias, output_t.data(), m, k, n, n, n}, simd_level());
    for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t j = 0; j < m; ++j) output[i * m + j] = output_t[j * n + i];
    }
}

namespace {

// The input pixels of output pixel i along one axis are first[i] .. first[i] + count[i] - 1,
// with weights weight[offset[i] ..].
struct AreaTaps {
    std::vector<std::int64_t> first, count, offset;
    std::vector<float> weight;
};

void area_taps(std::int64_t start, std::int64_t in_len, std::int64_t out_len, AreaTaps& taps) {
    taps.first.clear();
    taps.count.clear();
    taps.offset.clear();
    taps.weight.clear();
    const double scale = double(in_len) / double(out_len);
    for (std::int64_t i = 0; i < out_len; ++i) {
        const double lo = i * scale, hi = std::min(double(in_len), (i + 1) * scale);
        const std::int64_t j_end = std::min(in_len, std::int64_t(std::ceil(hi)));
        taps.offset.push_back(std::int64_t(taps.weight.size()));
        std::int64_t first = -1;
        for (std::int64_t j = std::int64_t(std::floor(lo)); j < j_end; ++j) {
            const double covered = std::min(hi, double(j + 1)) - std::max(lo, double(j));
            if (covered <= 1e-9) {
                if (first < 0) continue;
                break;
            }
            if (first < 0) first = j;
            taps.weight.push_back(float(covered / scale));
        }
        taps.first.push_back(start + std::max<std::int64_t>(first, 0));
        taps.count.push_back(std::int64_t(taps.weight.size()) - taps.offset.back());
    }
}

// The same taps with a fixed count K per output (the largest), padded with zero weights: output
// i reads src[start[i] .. start[i] + K - 1] with weights padded[i * K ..], all inside the axis.
void fixed_taps(const AreaTaps& taps, std::int64_t in_len, std::int64_t& k,
                std::vector<std::int64_t>& start, std::vector<float>& padded) {
    const std::int64_t n = static_cast<std::int64_t>(taps.first.size());
    k = 1;
    for (std::int64_t i = 0; i < n; ++i) k = std::max(k, taps.count[i]);
    start.resize(n);
    padded.assign(n * k, 0.0f);
    for (std::int64_t i = 0; i < n; ++i) {
        start[i] = std::min(taps.first[i], in_len - k);
        const std::int64_t skip = taps.first[i] - start[i];
        for (std::int64_t t = 0; t < taps.count[i]; ++t) {
            padded[i * k + skip + t] = taps.weight[taps.offset[i] + t];
        }
    }
}

template <int K>
void resample_row_fixed(const float* src, std::int64_t stride, const std::int64_t* start,
                        const float* weight, float* dst, std::int64_t count) {
    for (std::int64_t i = 0; i < count; ++i) {
        const float* s = src + start[i] * stride;
        const float* w = weight + i * K;
        float sum = w[0] * s[0];
        for (int t = 1; t < K; ++t) sum += w[t] * s[t * stride];
        dst[i] = sum;
    }
}

// dst[i] = sum_t weight[i k + t] src[(start[i] + t) stride], i < count.
void resample_row(const float* src, std::int64_t stride, const std::int64_t* start,
                  const float* weight, float* dst, std::int64_t count, std::int64_t k) {
    switch (k) {
        case 1: return resample_row_fixed<1>(src, stride, start, weight, dst, count);
        case 2: return resample_row_fixed<2>(src, stride, start, weight, dst, count);
        case 3: return resample_row_fixed<3>(src, stride, start, weight, dst, count);
        case 4: return resample_row_fixed<4>(src, stride, start, weight, dst, count);
        case 5: return resample_row_fixed<5>(src, stride, start, weight, dst, count);
        default: break;
    }
    for (std::int64_t i = 0; i < count; ++i) {
        const float* s = src + start[i] * stride;
        const float* w = weight + i * k;
        float sum = 0.0f;
        for (std::int64_t t = 0; t < k; ++t) sum += w[t] * s[t * stride];
        dst[i] = sum;
    }
}

// dst[x] = sum_t weight[t] src[t stride + x], x < length: the vertical pass of area resampling
// (compiled for AVX2 and plain x86-64, picked when first called).
#if defined(MASKSEGX_AVX2_PATH)
#define MASKSEGX_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MASKSEGX_CLONES
#endif
MASKSEGX_CLONES void weighted_rows(const float* src, std::int64_t stride, const float* weight,
                                   std::int64_t count, std::int64_t length, float* dst) {
    for (std::int64_t x = 0; x < length; ++x) dst[x] = weight[0] * src[x];
    for (std::int64_t t = 1; t < count; ++t) {
        const float w = weight[t];
        const float* __restrict row = src + t * stride;
        float* __restrict out = dst;
        for (std::int64_t x = 0; x < length; ++x) out[x] += w * row[x];
    }
}

MASKSEGX_CLONES void weighted_rows(const std::uint8_t* src, std::int64_t stride,
                                   const float* weight, std::int64_t count, std::int64_t length,
                                   float* dst) {
    for (std::int64_t x = 0; x < length; ++x) dst[x] = weight[0] * float(src[x]);
    for (std::int64_t t = 1; t < count; ++t) {
        const float w = weight[t];
        const std::uint8_t* __restrict row = src + t * stride;
        float* __restrict out = dst;
        for (std::int64_t x = 0; x < length; ++x) out[x] += w * float(row[x]);
    }
}

// A planar float image [C, H, W] or an interleaved one [H, W, C] (any element type), read as
// channels `reverse ? C - 1 - c : c`; outputs are scale * mean + offset.
template <class T>
struct AreaSource {
    const T* data;
    std::int64_t channels, height, width;
    bool interleaved, reverse;
    float scale, offset;
};

template <class T>
void resize_area(const AreaSource<T>& source, const std::int64_t* boxes, std::int64_t count,
                 std::int64_t out_h, std::int64_t out_w, float* output) {
    const std::int64_t channels = source.channels, width = source.width;
    require(channels >= 1 && source.height >= 1 && width >= 1 && out_h >= 1 && out_w >= 1,
            "resize_area_boxes: every dimension must be at least 1");
    require_spatial(std::max(out_h, out_w), "resize_area_boxes: output side");
    for (std::int64_t k = 0; k < count; ++k) {
        const std::int64_t* b = boxes + 4 * k;
        require(0 <= b[0] && b[0] < b[2] && b[2] <= width && 0 <= b[1] && b[1] < b[3] &&
                    b[3] <= source.height,
                "resize_area_boxes: box " + std::to_string(k) + " is empty or outside the image");
    }
    // An interleaved image is one plane of C-wide pixels.
    const std::int64_t planes = source.interleaved ? 1 : channels;
    const std::int64_t step = source.interleaved ? channels : 1;  // between a row's pixels
    const bool affine = source.scale != 1.0f || source.offset != 0.0f;
    AreaTaps xs, ys;
    std::vector<std::int64_t> x_start;
    std::vector<float> x_weight;
    std::int64_t x_taps = 1;
    // Rows first (contiguous, vectorised: out_h rows of the box width), then columns on those
    // few rows only.
    for (std::int64_t k = 0; k < count; ++k) {
        const std::int64_t x0 = boxes[4 * k], y0 = boxes[4 * k + 1];
        const std::int64_t box_w = boxes[4 * k + 2] - x0, box_h = boxes[4 * k + 3] - y0;
        const std::int64_t row_len = box_w * step;
        area_taps(0, box_w, out_w, xs);
        fixed_taps(xs, box_w, x_taps, x_start, x_weight);
        area_taps(y0, box_h, out_h, ys);
        float* const rows = scratch(kResizeRows, out_h * row_len);
        for (std::int64_t p = 0; p < planes; ++p) {
            const T* plane = source.data + p * source.height * width + x0 * step;
            for (std::int64_t oy = 0; oy < out_h; ++oy) {
                weighted_rows(plane + ys.first[oy] * width * step, width * step,
                              ys.weight.data() + ys.offset[oy], ys.count[oy], row_len,
                              rows + oy * row_len);
            }
            if (source.interleaved && channels == 3) {
                // The three channels of a pixel share their taps: one pass over the rows.
                float* out_planes[3];
                for (std::int64_t c = 0; c < 3; ++c) {
                    const std::int64_t stored = source.reverse ? 2 - c : c;
                    out_planes[stored] = output + (k * 3 + c) * out_h * out_w;
                }
                for (std::int64_t oy = 0; oy < out_h; ++oy) {
                    const float* row = rows + oy * row_len;
                    float* o0 = out_planes[0] + oy * out_w;
                    float* o1 = out_planes[1] + oy * out_w;
                    float* o2 = out_planes[2] + oy * out_w;
                    for (std::int64_t ox = 0; ox < out_w; ++ox) {
                        const float* px = row + 3 * x_start[ox];
                        const float* w = x_weight.data() + ox * x_taps;
                        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f;
                        for (std::int64_t t = 0; t < x_taps; ++t, px += 3) {
                            a0 += w[t] * px[0];
                            a1 += w[t] * px[1];
                            a2 += w[t] * px[2];
                        }
                        o0[ox] = source.scale * a0 + source.offset;
                        o1[ox] = source.scale * a1 + source.offset;
                        o2[ox] = source.scale * a2 + source.offset;
                    }
                }
                continue;
            }
            const std::int64_t first = source.interleaved ? 0 : p;
            const std::int64_t last = source.interleaved ? channels : p + 1;
            for (std::int64_t c = first; c < last; ++c) {
                const std::int64_t stored = source.reverse ? channels - 1 - c : c;
                const std::int64_t lane = source.interleaved ? stored : 0;
                float* out_plane = output + (k * channels + c) * out_h * out_w;
                for (std::int64_t oy = 0; oy < out_h; ++oy) {
                    float* dst = out_plane + oy * out_w;
                    resample_row(rows + oy * row_len + lane, step, x_start.data(), x_weight.data(),
                                 dst, out_w, x_taps);
                    if (affine) {
                        for (std::int64_t x = 0; x < out_w; ++x) {
                            dst[x] = source.scale * dst[x] + source.offset;
                        }
                    }
                }
            }
        }
    }
}

}  // namespace

void resize_area_boxes(const float* image, std::int64_t channels, std::int64_t height,
                       std::int64_t width, const std::int64_t* boxes, std::int64_t count,
                       std::int64_t out_h, std::int64_t out_w, float* output) {
    // A planar image whose channels are not reversed: the reverse flag would swap planes.
    resize_area(AreaSource<float>{image, channels, height, width, false, false, 1.0f, 0.0f}, boxes,
                count, out_h, out_w, output);
}

void resize_area_boxes_u8(const std::uint8_t* image, std::int64_t height, std::int64_t width,
                          std::int64_t channels, bool reverse_channels, float scale, float offset,
                          const std::int64_t* boxes, std::int64_t count, std::int64_t out_h,
                          std::int64_t out_w, float* output) {
    resize_area(AreaSource<std::uint8_t>{image, channels, height, width, true, reverse_channels,
                                         scale, offset},
                boxes, count, out_h, out_w, output);
}

namespace {

// exp(x) for x <= 0 within 2e-7 relative (x < -87: about 1.6e-38), branch-free so loops
// vectorise: x = (i + f) ln 2 with integer i <= 0 and f in [0, 1), 2^f = e^(f ln 2) by its
// Taylor series to degree 9.
inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    const float t = x * 1.44269504088896341f;
    const float i = std::floor(t);
    const float f = (t - i) * 0.693147180559945309f;  // in [0, ln 2)
    float p = 2.75573192e-6f;
    p = p * f + 2.48015873e-5f;
    p = p * f + 1.98412698e-4f;
    p = p * f + 1.38888889e-3f;
    p = p * f + 8.33333333e-3f;
    p = p * f + 4.16666667e-2f;
    p = p * f + 1.66666667e-1f;
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    const std::int32_t bits = (static_cast<std::int32_t>(i) + 127) * (1 << 23);
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// Two-class softmax of logits a, b (vectorised where the CPU allows).
MASKSEGX_CLONES void softmax_pair(const float* a, const float* b, float* pa, float* pb,
                                  std::int64_t count) {
    for (std::int64_t i = 0; i < count; ++i) {
        // Stable: exp of a non-positive difference only.
        const float d = a[i] - b[i];
        const float e = exp_nonpositive(-std::fabs(d));
        const float big = 1.0f / (1.0f + e), small = e * big;
        pa[i] = d >= 0 ? big : small;
        pb[i] = d >= 0 ? small : big;
    }
}

}  // namespace

void softmax(const float* input, std::int64_t outer, std::int64_t axis_len, std::int64_t inner,
             float* output) {
    require(outer >= 1 && axis_len >= 1 && inner >= 1, "softmax: empty input");
    if (axis_len == 2) {  // two classes (the detector's face / no face): one exponential each
        for (std::int64_t o = 0; o < outer; ++o) {
            const float* a = input + o * 2 * inner;
            const float* b = a + inner;
            float* pa = output + o * 2 * inner;
            float* pb = pa + inner;
            softmax_pair(a, b, pa, pb, inner);
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
