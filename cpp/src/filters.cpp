#include "masksegx/filters.hpp"

#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace masksegx {
namespace {

// Largest window accepted: twice the largest image side the bindings allow, so every
// window that can matter works while the padded row buffers stay small.
constexpr std::int64_t kMaxWindow = 65535;

// Windows up to this size sum their columns directly, fully unrolled and vectorised; larger
// ones use scalar running sums (two operations per pixel, whatever the size).
constexpr std::int64_t kMaxDirectWindow = 15;

// OpenCV's borderInterpolate(BORDER_REFLECT_101) for any offset: period 2 (n - 1).
std::int64_t reflect_101(std::int64_t i, std::int64_t n) {
    if (n == 1) return 0;
    const std::int64_t period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

template <class In, class Acc>
void add_row(const In* __restrict row, std::int64_t width, Acc* __restrict sum,
             Acc* __restrict sum_sq) {
    for (std::int64_t x = 0; x < width; ++x) {
        const Acc v = row[x];
        sum[x] += v;
        sum_sq[x] += v * v;
    }
}

// Slides the vertical window down one row: `enter` comes in, `leave` goes out.
template <class In, class Acc>
void slide_rows(const In* __restrict enter, const In* __restrict leave, std::int64_t width,
                Acc* __restrict sum, Acc* __restrict sum_sq) {
    for (std::int64_t x = 0; x < width; ++x) {
        const Acc a = enter[x];
        const Acc b = leave[x];
        sum[x] += a - b;
        sum_sq[x] += a * a - b * b;
    }
}

// E[x^2] - E[x]^2 from a window's sums, as (n * sum_sq - sum^2) / n^2: exact for integer
// sums below 2^53 and exactly 0 for flat windows. Rounding can leave tiny negatives: (v + |v|) / 2
// clamps them to 0 without a comparison, which would keep the loops from vectorising
// under the default -ftrapping-math.
template <class Acc>
inline float variance_of(Acc sum, Acc sum_sq, double n, double inv_n2) {
    const double m = static_cast<double>(sum);
    const double variance = (n * static_cast<double>(sum_sq) - m * m) * inv_n2;
    return static_cast<float>(0.5 * (variance + std::fabs(variance)));
}

// One output row from padded column sums (the window of pixel x starts at index x), for a
// window size known at compile time: sums stay in registers, no stores between the adds.
template <int kWindow, class Acc>
void direct_row(const Acc* __restrict sum, const Acc* __restrict sum_sq, std::int64_t width,
                float* __restrict out) {
    constexpr double n = double(kWindow) * kWindow;
    constexpr double inv_n2 = 1.0 / (n * n);
    // uint8 sums: n * sum_sq - sum^2 <= 255^2 * n^2 is an exact int32 up to window 13, and
    // never negative; one float rounding of it is far cheaper than the double arithmetic.
    constexpr bool kInt32Numerator = std::is_integral_v<Acc> && kWindow <= 13;
    for (std::int64_t x = 0; x < width; ++x) {
        Acc s = sum[x];
        Acc s2 = sum_sq[x];
        for (int k = 1; k < kWindow; ++k) {
            s += sum[x + k];
            s2 += sum_sq[x + k];
        }
        if constexpr (kInt32Numerator) {
            out[x] =
                static_cast<float>(kWindow * kWindow * s2 - s * s) * static_cast<float>(inv_n2);
        } else {
            out[x] = variance_of(s, s2, n, inv_n2);
        }
    }
}

// direct_row for any window: running sums into scratch rows, then a vectorised finish.
template <class Acc>
void running_row(const Acc* __restrict sum, const Acc* __restrict sum_sq, std::int64_t width,
                 std::int64_t window, Acc* __restrict scratch, Acc* __restrict scratch_sq,
                 float* __restrict out) {
    Acc s = 0, s2 = 0;
    for (std::int64_t k = 0; k < window; ++k) {
        s += sum[k];
        s2 += sum_sq[k];
    }
    scratch[0] = s;
    scratch_sq[0] = s2;
    for (std::int64_t x = 1; x < width; ++x) {
        s += sum[x + window - 1] - sum[x - 1];
        s2 += sum_sq[x + window - 1] - sum_sq[x - 1];
        scratch[x] = s;
        scratch_sq[x] = s2;
    }
    const double n = static_cast<double>(window) * static_cast<double>(window);
    const double inv_n2 = 1.0 / (n * n);
    for (std::int64_t x = 0; x < width; ++x) {
        out[x] = variance_of(scratch[x], scratch_sq[x], n, inv_n2);
    }
}

template <class Acc>
void finish_row(const Acc* sum, const Acc* sum_sq, std::int64_t width, std::int64_t window,
                Acc* scratch, Acc* scratch_sq, float* out) {
    static_assert(kMaxDirectWindow == 15, "one case per direct window size");
    switch (window) {
        case 1: return direct_row<1>(sum, sum_sq, width, out);
        case 3: return direct_row<3>(sum, sum_sq, width, out);
        case 5: return direct_row<5>(sum, sum_sq, width, out);
        case 7: return direct_row<7>(sum, sum_sq, width, out);
        case 9: return direct_row<9>(sum, sum_sq, width, out);
        case 11: return direct_row<11>(sum, sum_sq, width, out);
        case 13: return direct_row<13>(sum, sum_sq, width, out);
        case 15: return direct_row<15>(sum, sum_sq, width, out);
        default: return running_row(sum, sum_sq, width, window, scratch, scratch_sq, out);
    }
}

// In: uint8 or float. Acc: int32 when every sum of squares fits, else double (exact for
// uint8 sums below 2^53, and the precision float input needs).
template <class In, class Acc>
void box_variance(const In* values, std::int64_t height, std::int64_t width, std::int64_t window,
                  float* out) {
    const std::int64_t radius = window / 2;
    // Column sums over the rows of the current window, with `radius` reflected entries
    // on each side so that every horizontal window reads plain memory.
    std::vector<Acc> sum_buffer(width + 2 * radius), sum_sq_buffer(width + 2 * radius);
    Acc* sum = sum_buffer.data() + radius;
    Acc* sum_sq = sum_sq_buffer.data() + radius;
    const std::int64_t scratch_size = window > kMaxDirectWindow ? width : 0;
    std::vector<Acc> window_sum(scratch_size), window_sum_sq(scratch_size);

    for (std::int64_t k = -radius; k <= radius; ++k) {
        add_row(values + reflect_101(k, height) * width, width, sum, sum_sq);
    }
    for (std::int64_t y = 0; y < height; ++y) {
        if (y > 0) {
            slide_rows(values + reflect_101(y + radius, height) * width,
                       values + reflect_101(y - radius - 1, height) * width, width, sum, sum_sq);
        }
        for (std::int64_t j = 1; j <= radius; ++j) {
            const std::int64_t left = reflect_101(-j, width);
            const std::int64_t right = reflect_101(width - 1 + j, width);
            sum[-j] = sum[left];
            sum_sq[-j] = sum_sq[left];
            sum[width - 1 + j] = sum[right];
            sum_sq[width - 1 + j] = sum_sq[right];
        }
        finish_row(sum - radius, sum_sq - radius, width, window, window_sum.data(),
                   window_sum_sq.data(), out + y * width);
    }
    if constexpr (std::is_floating_point_v<In>) {
        // Every row entered the column sums once, and NaN or inf never leaves a running sum.
        for (std::int64_t x = 0; x < width; ++x) {
            if (!std::isfinite(sum[x])) {
                throw std::invalid_argument("values: contains NaN or infinity");
            }
        }
    }
}

void check_arguments(std::int64_t height, std::int64_t width, std::int64_t window) {
    if (height < 1 || width < 1) {
        throw std::invalid_argument("values: empty map");
    }
    if (window < 1 || window % 2 == 0 || window > kMaxWindow) {
        throw std::invalid_argument("window: expected an odd size in [1, " +
                                    std::to_string(kMaxWindow) + "], got " +
                                    std::to_string(window));
    }
}

}  // namespace

void local_variance(const std::uint8_t* values, std::int64_t height, std::int64_t width,
                    std::int64_t window, float* out) {
    check_arguments(height, width, window);
    // int32 holds 255^2 * window^2 up to window 181.
    if (window <= 181) {
        box_variance<std::uint8_t, std::int32_t>(values, height, width, window, out);
    } else {
        box_variance<std::uint8_t, double>(values, height, width, window, out);
    }
}

void local_variance(const float* values, std::int64_t height, std::int64_t width,
                    std::int64_t window, float* out) {
    check_arguments(height, width, window);
    box_variance<float, double>(values, height, width, window, out);
}

}  // namespace masksegx
