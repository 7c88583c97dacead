// The instruction set in use (public: simd_level, set_simd_enabled), the kernel table of each
// level, and the per-thread scratch of the layers.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "nn_internal.hpp"

namespace masksegx {
namespace nn_detail {
namespace {

SimdLevel detect_simd() {
#if defined(MASKSEGX_NEON_KERNELS)
    return SimdLevel::Neon;
#elif defined(MASKSEGX_X86_KERNELS)
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

// Each level starts from the scalar kernels and replaces those it has its own version of.
constexpr Kernels make_kernels(SimdLevel level) {
    Kernels k;
    k.gemm = gemm_scalar;
    k.depthwise_row = depthwise_row_scalar;
    k.gather_stride2 = gather_stride2_scalar;
    k.copy_rows = copy_rows_scalar;
    k.weighted_rows_f32 = weighted_rows_f32_scalar;
    k.weighted_rows_u8 = weighted_rows_u8_scalar;
    k.softmax_pair = softmax_pair_scalar;
#if defined(MASKSEGX_X86_KERNELS)
    if (level == SimdLevel::Avx2 || level == SimdLevel::Avx512) {
        k.gemm = gemm_avx2;
        k.depthwise_row = depthwise_row_avx2;
        k.gather_stride2 = gather_stride2_avx2;
        k.copy_rows = copy_rows_avx2;
        k.weighted_rows_f32 = weighted_rows_f32_avx2;
        k.weighted_rows_u8 = weighted_rows_u8_avx2;
        k.softmax_pair = softmax_pair_avx2;
        k.fully_connected_few = fully_connected_few_avx2;
    }
    if (level == SimdLevel::Avx512) {
        k.gemm = gemm_avx512;
        k.depthwise_row = depthwise_row_avx512;
        k.copy_rows = copy_rows_avx512;
        k.max_pool_narrow_s2 = max_pool_narrow_s2_avx512;
    }
#endif
#if defined(MASKSEGX_NEON_KERNELS)
    if (level == SimdLevel::Neon) {
        k.gemm = gemm_neon;
        k.depthwise_row = depthwise_row_neon;
    }
#endif
    (void)level;  // unused where the build has no SIMD kernels
    return k;
}

constexpr Kernels kScalarKernels = make_kernels(SimdLevel::Scalar);
constexpr Kernels kAvx2Kernels = make_kernels(SimdLevel::Avx2);
constexpr Kernels kAvx512Kernels = make_kernels(SimdLevel::Avx512);
constexpr Kernels kNeonKernels = make_kernels(SimdLevel::Neon);

}  // namespace

const Kernels& kernels_for(SimdLevel level) {
    switch (level) {
        case SimdLevel::Avx2: return kAvx2Kernels;
        case SimdLevel::Avx512: return kAvx512Kernels;
        case SimdLevel::Neon: return kNeonKernels;
        default: return kScalarKernels;
    }
}

float* scratch(ScratchSlot slot, i64 count) {
    thread_local std::vector<float> buffers[kScratchSlots];
    std::vector<float>& buffer = buffers[slot];
    if (static_cast<i64>(buffer.size()) < count) buffer.resize(count);
    return buffer.data();
}

}  // namespace nn_detail

SimdLevel simd_level() {
    static const SimdLevel best = nn_detail::detect_simd();
    return nn_detail::simd_enabled_flag().load(std::memory_order_relaxed) ? best
                                                                          : SimdLevel::Scalar;
}

const char* simd_level_name(SimdLevel level) {
    switch (level) {
        case SimdLevel::Avx512: return "avx512";
        case SimdLevel::Avx2: return "avx2";
        case SimdLevel::Neon: return "neon";
        default: return "scalar";
    }
}

void set_simd_enabled(bool enabled) { nn_detail::simd_enabled_flag().store(enabled); }

}  // namespace masksegx
