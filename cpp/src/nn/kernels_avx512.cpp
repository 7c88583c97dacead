// The AVX-512 (F) kernels (x86-64; compiled per function, used only on CPUs that have them).
#include <algorithm>
#include <limits>

#include "nn_internal.hpp"

#if defined(MASKSEGX_X86_KERNELS)
#include <immintrin.h>

namespace masksegx {
namespace nn_detail {
namespace {

// A Rows x 32 tile (Rows <= 8: 16 of the 32 vector registers hold the outputs) reading the 32
// columns of B from ``b`` (row k at b + k * ldb: B itself or the zero-padded tail panel); tail
// tiles store their first columns only (masked stores). Same summation order as the other
// paths.
template <int Rows, bool Tail>
MASKSEGX_TARGET_AVX512 inline void gemm_tile_avx512(const GemmArgs& g, i64 m0, i64 p0,
                                                    const float* b, i64 ldb, __mmask16 mask0,
                                                    __mmask16 mask1) {
    __m512 acc0[Rows], acc1[Rows];
    for (int r = 0; r < Rows; ++r) {
        acc0[r] = acc1[r] = _mm512_set1_ps(g.bias ? g.bias[m0 + r] : 0.0f);
    }
    const float* w = g.w + m0 * g.depth;
    for (i64 k = 0; k < g.depth; ++k, b += ldb) {
        const __m512 b0 = _mm512_loadu_ps(b);
        const __m512 b1 = _mm512_loadu_ps(b + 16);
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
MASKSEGX_TARGET_AVX512 void gemm_tile_rows_avx512(const GemmArgs& g, i64 m, i64 rows, i64 p0,
                                                  const float* b, i64 ldb, __mmask16 mask0,
                                                  __mmask16 mask1) {
    switch (rows) {
        case 8: gemm_tile_avx512<8, Tail>(g, m, p0, b, ldb, mask0, mask1); break;
        case 7: gemm_tile_avx512<7, Tail>(g, m, p0, b, ldb, mask0, mask1); break;
        case 6: gemm_tile_avx512<6, Tail>(g, m, p0, b, ldb, mask0, mask1); break;
        case 5: gemm_tile_avx512<5, Tail>(g, m, p0, b, ldb, mask0, mask1); break;
        case 4: gemm_tile_avx512<4, Tail>(g, m, p0, b, ldb, mask0, mask1); break;
        case 3: gemm_tile_avx512<3, Tail>(g, m, p0, b, ldb, mask0, mask1); break;
        case 2: gemm_tile_avx512<2, Tail>(g, m, p0, b, ldb, mask0, mask1); break;
        case 1: gemm_tile_avx512<1, Tail>(g, m, p0, b, ldb, mask0, mask1); break;
        default: break;
    }
}

template <bool Tail>
MASKSEGX_TARGET_AVX512 void gemm_column_strip_avx512(const GemmArgs& g, i64 p0, const float* b,
                                                     i64 ldb, __mmask16 mask0, __mmask16 mask1) {
    i64 m = 0;
    for (; m + 8 <= g.rows; m += 8) gemm_tile_avx512<8, Tail>(g, m, p0, b, ldb, mask0, mask1);
    gemm_tile_rows_avx512<Tail>(g, m, g.rows - m, p0, b, ldb, mask0, mask1);
}

// The last cols - full (< 32) columns of B copied once into a zero-padded depth x 32 panel: with
// masked loads in the depth loop instead, a tail tile cost 2.5 times a full one (AMD EPYC; a
// 256 x 256 x 16 GEMM ran at 10 GMAC/s, a 256 x 256 x 32 one at 53).
MASKSEGX_TARGET_AVX512 void pack_tail_avx512(const GemmArgs& g, i64 full, __mmask16 mask0,
                                             __mmask16 mask1, float* panel) {
    const float* b = g.b + full;
    for (i64 k = 0; k < g.depth; ++k, b += g.ldb) {
        _mm512_storeu_ps(panel + 32 * k, _mm512_maskz_loadu_ps(mask0, b));
        _mm512_storeu_ps(panel + 32 * k + 16, _mm512_maskz_loadu_ps(mask1, b + 16));
    }
}

// B matrices up to this many floats (256 KiB) stay in L2 while being read once per row block.
constexpr i64 kRowBlocksOuterLimit = 1 << 16;

}  // namespace

MASKSEGX_TARGET_AVX512 void gemm_avx512(const GemmArgs& g) {
    const auto bits = [](i64 n) {
        return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1);
    };
    const i64 full = g.cols / 32 * 32, left = g.cols - full;
    const __mmask16 mask0 = bits(left), mask1 = bits(left - 16);
    float* const tail = left > 0 ? scratch(kGemmTail, g.depth * 32) : nullptr;
    if (left > 0) pack_tail_avx512(g, full, mask0, mask1, tail);
    if (g.rows > 8 && g.depth * g.cols <= kRowBlocksOuterLimit) {
        // A small B: row blocks outermost, so each block writes its 8 output rows front to back
        // (column strips outermost write 8 rows x 32 columns per tile across every output row:
        // with planes a power of two apart, all in the same cache sets).
        for (i64 m = 0; m < g.rows; m += 8) {
            const i64 rows = std::min<i64>(8, g.rows - m);
            for (i64 p0 = 0; p0 < full; p0 += 32) {
                gemm_tile_rows_avx512<false>(g, m, rows, p0, g.b + p0, g.ldb, 0xFFFF, 0xFFFF);
            }
            if (left > 0) gemm_tile_rows_avx512<true>(g, m, rows, full, tail, 32, mask0, mask1);
        }
        return;
    }
    for (i64 p0 = 0; p0 < full; p0 += 32)
        gemm_column_strip_avx512<false>(g, p0, g.b + p0, g.ldb, 0xFFFF, 0xFFFF);
    if (left > 0) gemm_column_strip_avx512<true>(g, full, tail, 32, mask0, mask1);
}

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

// Rows of at most 32 columns, window width 2 or 3, column stride 2 (the R/O-net pools): each
// output row from one or two vectors per input row. Columns past the row read as -inf, so the
// ceil-mode window clipped by the right edge needs no special case.
MASKSEGX_TARGET_AVX512 void max_pool_narrow_s2_avx512(const float* input, const Tensor4Shape& in,
                                                      const Pool2dSpec& spec,
                                                      const Tensor4Shape& out, float* output) {
    const i64 w = in.w;
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
    for (i64 plane = 0; plane < out.n * out.c; ++plane) {
        const float* src = input + plane * in.plane();
        float* dst = output + plane * out.plane();
        for (i64 oy = 0; oy < out.h; ++oy, dst += out.w) {
            const i64 y0 = oy * spec.stride_h;
            const i64 y1 = std::min(y0 + spec.kernel_h, in.h);
            __m512 v0 = lowest, v1 = lowest;
            for (i64 y = y0; y < y1; ++y) {
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

}  // namespace nn_detail
}  // namespace masksegx

#endif  // MASKSEGX_X86_KERNELS
