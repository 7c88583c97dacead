// conv2d: the shape checks, then one of four paths (depthwise 3x3, small planes folded across
// the batch, pointwise, im2col bands), all ending in the kernels of the current SimdLevel.
#include <algorithm>
#include <string>
#include <vector>

#include "nn_internal.hpp"

namespace masksegx {

using namespace nn_detail;

namespace {

// ---- depthwise 3x3 ----------------------------------------------------------------------------

// Output rows narrower than this run as one stretch per plane (see depthwise3x3).
constexpr i64 kNarrowDepthwise = 32;

void depthwise3x3(const float* input, const Tensor4Shape& in, const float* weight,
                  const float* bias, const float* slope, const Conv2dSpec& spec,
                  const Tensor4Shape& out_shape, float* output, const Kernels& kernels) {
    const i64 sh = spec.stride_h, sw = spec.stride_w;
    const i64 padded_h = in.h + 2 * spec.pad_h, padded_w = in.w + 2 * spec.pad_w;
    // Unpadded stride-1 planes are read in place; otherwise each plane is copied once into
    // `sw` zero-bordered column phases (phase q holds padded columns q, q + sw, ...).
    const bool in_place = spec.pad_h == 0 && spec.pad_w == 0 && sw == 1;
    const i64 phase_w = (padded_w + sw - 1) / sw;
    const i64 phase_size = padded_h * phase_w;
    float* const phases = in_place ? nullptr : scratch(kPhases, sw * phase_size);
    if (!in_place) std::fill(phases, phases + sw * phase_size, 0.0f);
    const auto depthwise_row = kernels.depthwise_row;
    // Padded column X = x + pad_w lives in phase X % sw at X / sw. Per phase, computed once:
    // its first input column, where that column lands in a phase row, and how many follow.
    std::vector<i64> phase_first_x(sw), phase_offset(sw), phase_count(sw);
    for (i64 q = 0; q < sw; ++q) {
        phase_first_x[q] = ((q - spec.pad_w) % sw + sw) % sw;
        phase_offset[q] = q * phase_size + (phase_first_x[q] + spec.pad_w) / sw;
        phase_count[q] = (in.w - phase_first_x[q] + sw - 1) / sw;
    }
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
                    float* const phase_row = phases + (y + spec.pad_h) * phase_w;
                    for (i64 q = 0; q < sw; ++q) {
                        const float* src = plane + y * in.w + phase_first_x[q];
                        float* dst = phase_row + phase_offset[q];
                        if (sw == 1) {
                            std::copy(src, src + phase_count[q], dst);
                        } else if (sw == 2) {
                            kernels.gather_stride2(src, dst, phase_count[q]);
                        } else {
                            for (i64 i = 0; i < phase_count[q]; ++i) dst[i] = src[i * sw];
                        }
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
                depthwise_row(taps, w9, b, wide, wide_len);
                for (i64 oy = 0; oy < out_shape.h; ++oy) {
                    std::copy(wide + oy * row_stride, wide + oy * row_stride + out_shape.w,
                              out_plane + oy * out_shape.w);
                }
            } else {
                for (i64 oy = 0; oy < out_shape.h; ++oy) {
                    const float* row = base + oy * sh * row_stride;
                    const float* taps[9];
                    for (int t = 0; t < 9; ++t) taps[t] = row + tap_offset[t];
                    depthwise_row(taps, w9, b, out_plane + oy * out_shape.w, out_shape.w);
                }
            }
            if (slope) prelu_run(out_plane, out_shape.plane(), slope[c]);
        }
    }
}

// ---- generic convolution: im2col in bands of output rows, then GEMM ------------------------

// A band's column matrix is at most this many floats (256 KiB: stays in L2).
constexpr i64 kColumnBufferFloats = 1 << 16;
// Output planes smaller than this are batched: the columns of several samples form one GEMM
// (a 3x3 plane alone fills only 9 of a 16-column tile, and a GEMM per small plane costs more
// in calls and tile edges than it computes).
constexpr i64 kFoldPlane = 256;

// Writes rows [oy0, oy0 + rows) of the im2col matrix of one group of one sample: matrix row
// (ci, i, j) starts at dst + ((ci * kh + i) * kw + j) * row_stride and holds rows * out.w values.
struct ColumnFiller {
    const Tensor4Shape& in;
    const Conv2dSpec& spec;
    const Tensor4Shape& out;
    i64 in_group;
    std::vector<i64> first_x, end_x;  // output columns read inside the input, per kernel column
    const Kernels& kernels;

    ColumnFiller(const Tensor4Shape& in_, const Conv2dSpec& spec_, const Tensor4Shape& out_,
                 const Kernels& kernels_)
        : in(in_),
          spec(spec_),
          out(out_),
          in_group(in_.c / spec_.groups),
          first_x(spec_.kernel_w),
          end_x(spec_.kernel_w),
          kernels(kernels_) {
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
                        kernels.copy_rows(group_input + ci * in.plane() + (oy0 * sh + i) * in.w + j,
                                          sh * in.w, sw,
                                          dst + ((ci * kh + i) * kw + j) * row_stride, out.w, rows);
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
                            kernels.gather_stride2(src + 2 * first_x[j] + shift, d + first_x[j],
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
                        const Tensor4Shape& out, float* output, const Kernels& kernels) {
    const ColumnFiller filler(in, spec, out, kernels);
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
                kernels.gemm(args);
            }
        }
    }
}

// groups == 1 and small output planes: the columns of `chunk` samples side by side, one GEMM
// into a [M, chunk * plane] buffer, then each sample's planes copied to their place.
void convolution_folded(const float* input, const Tensor4Shape& in, const float* weight,
                        const float* bias, const float* slope, const Conv2dSpec& spec,
                        const Tensor4Shape& out, float* output, const Kernels& kernels) {
    const bool one_by_one = spec.kernel_h == 1 && spec.kernel_w == 1 && spec.stride_h == 1 &&
                            spec.stride_w == 1 && spec.pad_h == 0 && spec.pad_w == 0;
    const ColumnFiller filler(in, spec, out, kernels);
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
        kernels.gemm(
            GemmArgs{weight, columns, bias, result, out.c, depth, cols, cols, cols, slope});
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
               const Kernels& kernels) {
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
            kernels.gemm(args);
        }
    }
}

}  // namespace

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
    const Kernels& kernels = kernels_for(simd_level());
    const bool depthwise = spec.groups == input_shape.c && spec.out_channels == input_shape.c &&
                           spec.kernel_h == 3 && spec.kernel_w == 3;
    const bool one_by_one = spec.kernel_h == 1 && spec.kernel_w == 1 && spec.stride_h == 1 &&
                            spec.stride_w == 1 && spec.pad_h == 0 && spec.pad_w == 0;
    if (depthwise) {
        depthwise3x3(input, input_shape, weight, bias, slope, spec, out, output, kernels);
    } else if (spec.groups == 1 && input_shape.n > 1 && out.plane() < kFoldPlane) {
        convolution_folded(input, input_shape, weight, bias, slope, spec, out, output, kernels);
    } else if (one_by_one) {
        pointwise(input, input_shape, weight, bias, slope, spec, out, output, kernels);
    } else {
        convolution_im2col(input, input_shape, weight, bias, slope, spec, out, output, kernels);
    }
}

}  // namespace masksegx
