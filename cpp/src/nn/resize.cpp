// Area resampling of boxes (OpenCV's INTER_AREA): the MTCNN cascade's crops and pyramid levels.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "nn_internal.hpp"

namespace masksegx {

using namespace nn_detail;

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
// channels `reverse ? C - 1 - c : c`; outputs are scale * mean + offset.
template <class T>
struct AreaSource {
    const T* data;
    std::int64_t channels, height, width;
    bool interleaved, reverse;
    float scale, offset;
};

// The vertical pass (see Kernels::weighted_rows_f32), by source element type.
void weighted_rows(const Kernels& kernels, const float* src, i64 stride, const float* weight,
                   i64 count, i64 length, float* dst) {
    kernels.weighted_rows_f32(src, stride, weight, count, length, dst);
}

void weighted_rows(const Kernels& kernels, const std::uint8_t* src, i64 stride, const float* weight,
                   i64 count, i64 length, float* dst) {
    kernels.weighted_rows_u8(src, stride, weight, count, length, dst);
}

template <class T>
void resize_area(const AreaSource<T>& source, const std::int64_t* boxes, std::int64_t count,
                 std::int64_t out_h, std::int64_t out_w, float* output) {
    const std::int64_t channels = source.channels, width = source.width;
    require(channels >= 1 && source.height >= 1 && width >= 1 && out_h >= 1 && out_w >= 1,
            "resize_area_boxes: every dimension must be at least 1");
    require_spatial(std::max(out_h, out_w), "resize_area_boxes: output side");
    const Kernels& kernels = kernels_for(simd_level());
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
                weighted_rows(kernels, plane + ys.first[oy] * width * step, width * step,
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

void upsample_linear2x(const float* input, std::int64_t planes, std::int64_t height,
                       std::int64_t width, float* output) {
    require(planes >= 1 && height >= 1 && width >= 1, "upsample_linear2x: empty input");
    // Output row 2i + 1 lies 1/4 of the way from input row i to row i + 1, row 2i 1/4 of the way
    // from row i to row i - 1 (clamped at the edges); columns likewise. Rows are blended first
    // into `blend`, then each blended row is spread to twice its width.
    std::vector<float> blend(static_cast<std::size_t>(width));
    float* __restrict b = blend.data();
    const std::int64_t out_w = 2 * width;
    for (std::int64_t p = 0; p < planes; ++p) {
        const float* plane = input + p * height * width;
        float* out_plane = output + p * 4 * height * width;
        for (std::int64_t oy = 0; oy < 2 * height; ++oy) {
            const std::int64_t i = oy / 2;
            const std::int64_t j =
                oy % 2 ? std::min(i + 1, height - 1) : std::max(i - 1, std::int64_t{0});
            const float* __restrict near_row = plane + i * width;
            const float* __restrict far_row = plane + j * width;
            for (std::int64_t x = 0; x < width; ++x)
                b[x] = 0.75f * near_row[x] + 0.25f * far_row[x];
            float* __restrict dst = out_plane + oy * out_w;
            dst[0] = b[0];
            for (std::int64_t x = 1; x < width; ++x) {
                dst[2 * x] = 0.75f * b[x] + 0.25f * b[x - 1];
                dst[2 * x - 1] = 0.75f * b[x - 1] + 0.25f * b[x];
            }
            dst[out_w - 1] = b[width - 1];
        }
    }
}

}  // namespace masksegx
