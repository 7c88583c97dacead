// Private to the nn layers (cpp/src/nn/). The files:
//   conv.cpp        conv2d: depthwise 3x3, pointwise, im2col bands, small planes batched
//   layers.cpp      max pooling, PReLU / ReLU, fully connected, softmax
//   resize.cpp      area resampling of boxes
//   runtime.cpp     the SIMD level in use, the kernel table of each level, per-thread scratch
//   kernels_scalar.cpp  plain C++ kernels: every level's fallback, the reference for the rest
//   kernels_avx2.cpp, kernels_avx512.cpp, kernels_neon.cpp  the same kernels with intrinsics
// The layer files reach SIMD code only through the Kernels table of the current SimdLevel, so
// set_simd_enabled(false) and MASKSEGX_FORCE_SCALAR=1 run the plain C++ kernels everywhere.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "masksegx/nn.hpp"

// x86-64 with GCC or Clang: the AVX2 and AVX-512 kernels are compiled per function (target
// attribute), so the library itself needs no -m flags and still runs on any x86-64; the CPU
// is asked once at run time. Declarations and definitions carry the same attribute.
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MASKSEGX_X86_KERNELS 1
#define MASKSEGX_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define MASKSEGX_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif
// NEON is part of the aarch64 baseline: no attribute needed.
#if defined(__aarch64__)
#define MASKSEGX_NEON_KERNELS 1
#endif

#if defined(__GNUC__) || defined(__clang__)
// Inlined into each caller, so a loop body is compiled for the caller's instruction set.
#define MASKSEGX_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define MASKSEGX_ALWAYS_INLINE inline
#endif

namespace masksegx {
namespace nn_detail {

using i64 = std::int64_t;

// ---- kernels and the table that picks them ----------------------------------------------------

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

// One function per kernel (runtime.cpp fills one table per level): a level without its own
// version of a kernel takes the next one down, AVX-512 the AVX2 one and the others the scalar
// one. The optional kernels are null where a level has none; the caller then takes its general
// path.
struct Kernels {
    void (*gemm)(const GemmArgs& g) = nullptr;
    // out[x] = bias + sum_t w[t] * taps[t][x], x < width, for the 9 taps of a 3x3 depthwise row.
    void (*depthwise_row)(const float* const* taps, const float* w, float bias, float* out,
                          i64 width) = nullptr;
    // dst[i] = src[2 i] for i < count; nothing past src[2 count - 2] is read.
    void (*gather_stride2)(const float* src, float* dst, i64 count) = nullptr;
    // dst[r * count + x] = src[r * src_stride + x * step] for r < rows, x < count, step 1 or 2:
    // the im2col rows of one kernel tap of an unpadded convolution. Nothing past
    // src[(rows - 1) * src_stride + (count - 1) * step] is read.
    void (*copy_rows)(const float* src, i64 src_stride, i64 step, float* dst, i64 count,
                      i64 rows) = nullptr;
    // dst[x] = sum_t weight[t] src[t stride + x], t < count, x < length: the vertical pass of
    // area resampling, from float or uint8 rows.
    void (*weighted_rows_f32)(const float* src, i64 stride, const float* weight, i64 count,
                              i64 length, float* dst) = nullptr;
    void (*weighted_rows_u8)(const std::uint8_t* src, i64 stride, const float* weight, i64 count,
                             i64 length, float* dst) = nullptr;
    // Two-class softmax of logits a, b into pa, pb.
    void (*softmax_pair)(const float* a, const float* b, float* pa, float* pb, i64 count) = nullptr;

    // Optional. output[j, r] = bias[r] + sum_i input[j, i] * weight[r, i] for a batch of
    // 1 <= n <= 8 rows as n dot products per weight row (the GEMM would fill n of its columns).
    void (*fully_connected_few)(const float* input, i64 n, i64 k, const float* weight, i64 m,
                                const float* bias, float* output) = nullptr;
    // Optional. max_pool2d for rows of at most 32 columns, window width 2 or 3, column stride 2.
    void (*max_pool_narrow_s2)(const float* input, const Tensor4Shape& in, const Pool2dSpec& spec,
                               const Tensor4Shape& out, float* output) = nullptr;
};

// The kernels of `level` (any level this build knows; levels the CPU lacks are never asked for).
const Kernels& kernels_for(SimdLevel level);

void gemm_scalar(const GemmArgs& g);
void depthwise_row_scalar(const float* const* taps, const float* w, float bias, float* out,
                          i64 width);
void gather_stride2_scalar(const float* src, float* dst, i64 count);
void copy_rows_scalar(const float* src, i64 src_stride, i64 step, float* dst, i64 count, i64 rows);
void weighted_rows_f32_scalar(const float* src, i64 stride, const float* weight, i64 count,
                              i64 length, float* dst);
void weighted_rows_u8_scalar(const std::uint8_t* src, i64 stride, const float* weight, i64 count,
                             i64 length, float* dst);
void softmax_pair_scalar(const float* a, const float* b, float* pa, float* pb, i64 count);

#if defined(MASKSEGX_X86_KERNELS)
MASKSEGX_TARGET_AVX2 void gemm_avx2(const GemmArgs& g);
MASKSEGX_TARGET_AVX2 void depthwise_row_avx2(const float* const* taps, const float* w, float bias,
                                             float* out, i64 width);
MASKSEGX_TARGET_AVX2 void gather_stride2_avx2(const float* src, float* dst, i64 count);
MASKSEGX_TARGET_AVX2 void copy_rows_avx2(const float* src, i64 src_stride, i64 step, float* dst,
                                         i64 count, i64 rows);
MASKSEGX_TARGET_AVX2 void weighted_rows_f32_avx2(const float* src, i64 stride, const float* weight,
                                                 i64 count, i64 length, float* dst);
MASKSEGX_TARGET_AVX2 void weighted_rows_u8_avx2(const std::uint8_t* src, i64 stride,
                                                const float* weight, i64 count, i64 length,
                                                float* dst);
MASKSEGX_TARGET_AVX2 void softmax_pair_avx2(const float* a, const float* b, float* pa, float* pb,
                                            i64 count);
MASKSEGX_TARGET_AVX2 void fully_connected_few_avx2(const float* input, i64 n, i64 k,
                                                   const float* weight, i64 m, const float* bias,
                                                   float* output);

MASKSEGX_TARGET_AVX512 void gemm_avx512(const GemmArgs& g);
MASKSEGX_TARGET_AVX512 void depthwise_row_avx512(const float* const* taps, const float* w,
                                                 float bias, float* out, i64 width);
MASKSEGX_TARGET_AVX512 void copy_rows_avx512(const float* src, i64 src_stride, i64 step, float* dst,
                                             i64 count, i64 rows);
MASKSEGX_TARGET_AVX512 void max_pool_narrow_s2_avx512(const float* input, const Tensor4Shape& in,
                                                      const Pool2dSpec& spec,
                                                      const Tensor4Shape& out, float* output);
#endif

#if defined(MASKSEGX_NEON_KERNELS)
void gemm_neon(const GemmArgs& g);
void depthwise_row_neon(const float* const* taps, const float* w, float bias, float* out,
                        i64 width);
#endif

// ---- plain loops compiled once per instruction set ---------------------------------------------
// The compiler vectorises these by itself; the scalar kernel and the AVX2 one call the same
// body, inlined, so each gets the vectors of its own target. Elementwise: both give the same bits.

template <class T>
MASKSEGX_ALWAYS_INLINE void weighted_rows_loop(const T* src, i64 stride, const float* weight,
                                               i64 count, i64 length, float* dst) {
    for (i64 x = 0; x < length; ++x) dst[x] = weight[0] * float(src[x]);
    for (i64 t = 1; t < count; ++t) {
        const float w = weight[t];
        const T* __restrict row = src + t * stride;
        float* __restrict out = dst;
        for (i64 x = 0; x < length; ++x) out[x] += w * float(row[x]);
    }
}

// exp(x) for x <= 0 within 2e-7 relative (x < -87: about 1.6e-38), branch-free so loops
// vectorise: x = (i + f) ln 2 with integer i <= 0 and f in [0, 1), 2^f = e^(f ln 2) by its
// Taylor series to degree 9. NaN stays NaN; it is clamped like -87 first, so the integer
// conversion below never sees it (undefined behaviour, found by the sanitized fuzzer).
MASKSEGX_ALWAYS_INLINE float exp_nonpositive(float x) {
    const float clamped = x > -87.0f ? (x < 0.0f ? x : 0.0f) : -87.0f;
    const float t = clamped * 1.44269504088896341f;
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
    return x == x ? p * scale : x;
}

MASKSEGX_ALWAYS_INLINE void softmax_pair_loop(const float* a, const float* b, float* pa, float* pb,
                                              i64 count) {
    for (i64 i = 0; i < count; ++i) {
        // Stable: exp of a non-positive difference only.
        const float d = a[i] - b[i];
        const float e = exp_nonpositive(-std::fabs(d));
        const float big = 1.0f / (1.0f + e), small = e * big;
        pa[i] = d >= 0 ? big : small;
        pb[i] = d >= 0 ? small : big;
    }
}

// ---- shared by the layers ----------------------------------------------------------------------

// x > 0 ? x : slope * x over a contiguous run (vectorised by the compiler).
inline void prelu_run(float* __restrict data, i64 count, float slope) {
    for (i64 k = 0; k < count; ++k) data[k] = data[k] > 0.0f ? data[k] : slope * data[k];
}

// Per-thread scratch that only grows: the kernels run once per layer, pyramid level and crop
// batch, and fresh large buffers would be mapped and page-faulted on every call.
enum ScratchSlot {
    kPhases,
    kColumns,
    kFolded,
    kResizeRows,
    kPoolRows,
    kWideRows,
    kGemmTail,
    kScratchSlots
};
float* scratch(ScratchSlot slot, i64 count);

inline void require(bool condition, const std::string& message) {
    if (!condition) throw std::invalid_argument(message);
}

inline void require_shape(const Tensor4Shape& s, const char* what) {
    require(s.n >= 1 && s.c >= 1 && s.h >= 1 && s.w >= 1,
            std::string(what) + ": every dimension must be at least 1");
}

// Largest padding, stride and output side (the image side limit of the bindings): keeps the
// shape arithmetic far from int64 overflow and a typo from allocating gigabytes.
constexpr i64 kMaxSpatial = 1 << 15;

inline void require_spatial(i64 value, const char* what) {
    require(value <= kMaxSpatial, std::string(what) + " exceeds " + std::to_string(kMaxSpatial) +
                                      ", got " + std::to_string(value));
}

}  // namespace nn_detail
}  // namespace masksegx
