// Neural-network layers for small CNN inference (MTCNN-sized): float32, NCHW, batch N >= 1.
// Weights use the ONNX layouts (Conv: [M, C/groups, kh, kw]; Gemm with transB=1: [M, K]) so
// an executor can hand ONNX initializers over unchanged. Bad arguments throw
// std::invalid_argument. Hot loops have AVX-512 and AVX2+FMA (x86-64, chosen at run time) and NEON
// (aarch64) paths; the scalar path is always available and is the reference for them.
#pragma once
#include <cstdint>

namespace masksegx {

struct Tensor4Shape {
    std::int64_t n = 0, c = 0, h = 0, w = 0;
    std::int64_t plane() const { return h * w; }
    std::int64_t size() const { return n * c * h * w; }
};

// ONNX Conv attributes plus the weight's shape [out_channels, in_channels/groups, kh, kw].
struct Conv2dSpec {
    std::int64_t out_channels = 0;
    std::int64_t kernel_h = 0, kernel_w = 0;
    std::int64_t stride_h = 1, stride_w = 1;
    std::int64_t pad_h = 0, pad_w = 0;  // zeros added on both sides
    std::int64_t groups = 1;
};

// Validates `spec` against the input and returns the output shape
// [N, M, (H + 2ph - kh) / sh + 1, (W + 2pw - kw) / sw + 1].
Tensor4Shape conv2d_output_shape(const Tensor4Shape& input, const Conv2dSpec& spec);

// output = bias + cross-correlation of input with weight (bias may be null: zeros), then, when
// `slope` is not null, PReLU with slope[m] per output channel (fused: no second pass).
// Depthwise 3x3 (groups == C == M) and pointwise 1x1 (stride 1, no padding) take fast
// paths; everything else goes through im2col bands and the same GEMM as pointwise. Batches of
// small output planes (under 256 pixels, groups == 1) run as one GEMM over several samples.
void conv2d(const float* input, const Tensor4Shape& input_shape, const float* weight,
            const float* bias, const Conv2dSpec& spec, float* output, const float* slope = nullptr);

// Max pooling without padding in Caffe's ceil mode (MTCNN): every window that starts inside
// the input counts, the last one clipped to it. Output side: ceil((H - k) / s) + 1, minus one
// if that last window would start at or after H. Requires H >= kernel_h and W >= kernel_w.
struct Pool2dSpec {
    std::int64_t kernel_h = 0, kernel_w = 0;
    std::int64_t stride_h = 1, stride_w = 1;
};
Tensor4Shape max_pool2d_output_shape(const Tensor4Shape& input, const Pool2dSpec& spec);
void max_pool2d(const float* input, const Tensor4Shape& input_shape, const Pool2dSpec& spec,
                float* output);

// In place: x = x > 0 ? x : slope[c] * x for data laid out [n, channels, plane_size].
void prelu(float* data, std::int64_t n, std::int64_t channels, std::int64_t plane_size,
           const float* slope);
// In place: x = max(x, 0).
void relu(float* data, std::int64_t count);

// output[n, m] = bias[m] + sum_k input[n, k] * weight[m, k]  (bias may be null).
void fully_connected(const float* input, std::int64_t n, std::int64_t k, const float* weight,
                     std::int64_t m, const float* bias, float* output);

// Softmax along the middle axis of an [outer, axis_len, inner] array (max-subtracted).
void softmax(const float* input, std::int64_t outer, std::int64_t axis_len, std::int64_t inner,
             float* output);

// Area resampling of boxes of a planar float image [channels, height, width] (OpenCV's
// INTER_AREA when both sides shrink or both grow): every output pixel is the mean of the input
// over its footprint, pixels partly inside weighted by the covered fraction. Box k is
// boxes[4k .. 4k+3] = x0, y0, x1, y1 (end exclusive) with 0 <= x0 < x1 <= width and
// 0 <= y0 < y1 <= height; output [count, channels, out_h, out_w]. The MTCNN cascade's crops
// and pyramid levels, without an interleaved copy or a transpose.
void resize_area_boxes(const float* image, std::int64_t channels, std::int64_t height,
                       std::int64_t width, const std::int64_t* boxes, std::int64_t count,
                       std::int64_t out_h, std::int64_t out_w, float* output);

// The same from an interleaved uint8 image [height, width, channels] (as OpenCV stores it):
// output channel c reads channel `reverse_channels ? channels - 1 - c : c` (BGR -> RGB), and
// every output is scale * mean + offset (the nets' normalisation, folded in: the area weights
// sum to one). Output planar [count, channels, out_h, out_w].
void resize_area_boxes_u8(const std::uint8_t* image, std::int64_t height, std::int64_t width,
                          std::int64_t channels, bool reverse_channels, float scale, float offset,
                          const std::int64_t* boxes, std::int64_t count, std::int64_t out_h,
                          std::int64_t out_w, float* output);

// Bilinear 2x enlargement of every plane of [planes, height, width] into [planes, 2 height,
// 2 width], half-pixel centres, source coordinates clamped to the input (ONNX Resize, mode
// linear, scales 2 on both axes, onnxruntime's rounding up to the order of the sums).
void upsample_linear2x(const float* input, std::int64_t planes, std::int64_t height,
                       std::int64_t width, float* output);

enum class SimdLevel { Scalar, Avx2, Avx512, Neon };
// The instruction set the kernels use now: the best the CPU has, unless disabled by
// set_simd_enabled(false) or the environment variable MASKSEGX_FORCE_SCALAR=1 (read once),
// after which every kernel runs its plain C++ version; MASKSEGX_NO_AVX512=1 stops at AVX2 on
// AVX-512 CPUs.
SimdLevel simd_level();
const char* simd_level_name(SimdLevel level);
void set_simd_enabled(bool enabled);

}  // namespace masksegx
