// The AVX2 + FMA kernels (x86-64; compiled per function, used only on CPUs that have both).
#include <algorithm>
#include <vector>

#include "nn_internal.hpp"

#if defined(MASKSEGX_X86_KERNELS)
#include <immintrin.h>

namespace masksegx {
namespace nn_detail {
namespace {

// A Rows x 16 tile (Rows <= 4) of the output held in 2 * Rows registers over the whole depth
// (taller tiles are slower: GCC spills their registers), reading the 16 columns of B from
// ``b`` (row k at b + k * ldb: B itself or a packed panel). Tail tiles (fewer than 16 columns
// left) use masked loads and stores.
template <int Rows, bool Tail>
MASKSEGX_TARGET_AVX2 inline void gemm_tile_avx2(const GemmArgs& g, i64 m0, i64 p0, const float* b,
                                                i64 ldb, __m256i mask0, __m256i mask1) {
    __m256 acc0[Rows], acc1[Rows];
    for (int r = 0; r < Rows; ++r) {
        acc0[r] = acc1[r] = _mm256_set1_ps(g.bias ? g.bias[m0 + r] : 0.0f);
    }
    const float* w = g.w + m0 * g.depth;
    for (i64 k = 0; k < g.depth; ++k, b += ldb) {
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
MASKSEGX_TARGET_AVX2 void gemm_tile_rows_avx2(const GemmArgs& g, i64 m, i64 rows, i64 p0,
                                              const float* b, i64 ldb, __m256i mask0,
                                              __m256i mask1) {
    switch (rows) {
        case 4: gemm_tile_avx2<4, Tail>(g, m, p0, b, ldb, mask0, mask1); break;
        case 3: gemm_tile_avx2<3, Tail>(g, m, p0, b, ldb, mask0, mask1); break;
        case 2: gemm_tile_avx2<2, Tail>(g, m, p0, b, ldb, mask0, mask1); break;
        case 1: gemm_tile_avx2<1, Tail>(g, m, p0, b, ldb, mask0, mask1); break;
        default: break;
    }
}

// Every row tile of one 16-column strip. With more than one row tile, the depth x 16 panel of
// B is first copied into ``panel`` (contiguous), which every tile then reads: read in place,
// its rows lie ldb apart, and with ldb a multiple of 1024 floats they all fall in the same L1
// set (a 256 x 1024 B ran at 18 GMAC/s, a 256 x 1056 one at 24).
template <bool Tail>
MASKSEGX_TARGET_AVX2 void gemm_column_strip_avx2(const GemmArgs& g, i64 p0, float* panel,
                                                 __m256i mask0, __m256i mask1) {
    const float* b = g.b + p0;
    i64 ldb = g.ldb;
    if (g.rows > 4) {
        for (i64 k = 0; k < g.depth; ++k, b += g.ldb) {
            _mm256_storeu_ps(panel + 16 * k,
                             Tail ? _mm256_maskload_ps(b, mask0) : _mm256_loadu_ps(b));
            _mm256_storeu_ps(panel + 16 * k + 8,
                             Tail ? _mm256_maskload_ps(b + 8, mask1) : _mm256_loadu_ps(b + 8));
        }
        b = panel;
        ldb = 16;
    }
    i64 m = 0;
    for (; m + 4 <= g.rows; m += 4) gemm_tile_avx2<4, Tail>(g, m, p0, b, ldb, mask0, mask1);
    gemm_tile_rows_avx2<Tail>(g, m, g.rows - m, p0, b, ldb, mask0, mask1);
}

// B matrices up to this many floats (256 KiB) stay in L2 while being read once per row block.
constexpr i64 kRowBlocksOuterLimit = 1 << 16;

}  // namespace

MASKSEGX_TARGET_AVX2 void gemm_avx2(const GemmArgs& g) {
    const __m256i all = _mm256_set1_epi32(-1);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const i64 full = g.cols / 16 * 16, left = g.cols - full;
    const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(left)), lane);
    const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(left - 8)), lane);
    if (g.rows > 4 && g.depth * g.cols <= kRowBlocksOuterLimit) {
        // A small B: row blocks outermost, each writing its output rows front to back (see
        // gemm_avx512).
        for (i64 m = 0; m < g.rows; m += 4) {
            const i64 rows = std::min<i64>(4, g.rows - m);
            for (i64 p0 = 0; p0 < full; p0 += 16)
                gemm_tile_rows_avx2<false>(g, m, rows, p0, g.b + p0, g.ldb, all, all);
            if (left > 0)
                gemm_tile_rows_avx2<true>(g, m, rows, full, g.b + full, g.ldb, mask0, mask1);
        }
        return;
    }
    // Column strips outermost: a depth x 16 panel of B stays in L1 for every row tile.
    std::vector<float> panel(g.rows > 4 ? std::size_t(g.depth) * 16 : 0);
    for (i64 p0 = 0; p0 < full; p0 += 16)
        gemm_column_strip_avx2<false>(g, p0, panel.data(), all, all);
    if (left > 0) gemm_column_strip_avx2<true>(g, full, panel.data(), mask0, mask1);
}

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

MASKSEGX_TARGET_AVX2 void weighted_rows_f32_avx2(const float* src, i64 stride, const float* weight,
                                                 i64 count, i64 length, float* dst) {
    weighted_rows_loop(src, stride, weight, count, length, dst);
}

MASKSEGX_TARGET_AVX2 void weighted_rows_u8_avx2(const std::uint8_t* src, i64 stride,
                                                const float* weight, i64 count, i64 length,
                                                float* dst) {
    weighted_rows_loop(src, stride, weight, count, length, dst);
}

MASKSEGX_TARGET_AVX2 void softmax_pair_avx2(const float* a, const float* b, float* pa, float* pb,
                                            i64 count) {
    softmax_pair_loop(a, b, pa, pb, count);
}

namespace {

// Small batches (N <= 8): one pass over each weight row, N dot products at once (8 lanes each,
// summed at the end). The GEMM would fill N of its 16 or 32 columns per strip.
template <int N>
MASKSEGX_TARGET_AVX2 void fully_connected_rows_avx2(const float* input, i64 k, const float* weight,
                                                    i64 m, const float* bias, float* output) {
    const i64 full = k / 8 * 8;
    for (i64 r = 0; r < m; ++r) {
        const float* w = weight + r * k;
        __m256 acc[N];
        for (int j = 0; j < N; ++j) acc[j] = _mm256_setzero_ps();
        for (i64 i = 0; i < full; i += 8) {
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
            for (i64 i = full; i < k; ++i) sum += w[i] * input[j * k + i];
            output[j * m + r] = sum + (bias ? bias[r] : 0.0f);
        }
    }
}

}  // namespace

MASKSEGX_TARGET_AVX2 void fully_connected_few_avx2(const float* input, i64 n, i64 k,
                                                   const float* weight, i64 m, const float* bias,
                                                   float* output) {
    switch (n) {
        case 1: return fully_connected_rows_avx2<1>(input, k, weight, m, bias, output);
        case 2: return fully_connected_rows_avx2<2>(input, k, weight, m, bias, output);
        case 3: return fully_connected_rows_avx2<3>(input, k, weight, m, bias, output);
        case 4: return fully_connected_rows_avx2<4>(input, k, weight, m, bias, output);
        case 5: return fully_connected_rows_avx2<5>(input, k, weight, m, bias, output);
        case 6: return fully_connected_rows_avx2<6>(input, k, weight, m, bias, output);
        case 7: return fully_connected_rows_avx2<7>(input, k, weight, m, bias, output);
        default: return fully_connected_rows_avx2<8>(input, k, weight, m, bias, output);
    }
}

}  // namespace nn_detail
}  // namespace masksegx

#endif  // MASKSEGX_X86_KERNELS
