#include "masksegx/fcm.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace masksegx {
namespace {

// Points are processed in blocks kept in planar (feature-major) buffers, so every inner loop
// runs over contiguous floats of one block and vectorises.
constexpr int kBlock = 256;

// splitmix64 (Steele, Lea, Flood 2014): tiny, and the same stream on every platform.
class SplitMix64 {
  public:
    explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    std::int64_t below(std::int64_t n) {  // modulo bias < n / 2^64: negligible
        return static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(n));
    }

  private:
    std::uint64_t state_;
};

// Sums in eight independent lanes: a fixed association order the compiler maps onto SIMD
// registers without -ffast-math.
inline float dot(const float* __restrict a, const float* __restrict b, int n) {
    float lanes[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    int p = 0;
    for (; p + 8 <= n; p += 8) {
        for (int l = 0; l < 8; ++l) lanes[l] += a[p + l] * b[p + l];
    }
    for (; p < n; ++p) lanes[0] += a[p] * b[p];
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
           ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

inline float total(const float* __restrict a, int n) {
    float lanes[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    int p = 0;
    for (; p + 8 <= n; p += 8) {
        for (int l = 0; l < 8; ++l) lanes[l] += a[p + l];
    }
    for (; p < n; ++p) lanes[0] += a[p];
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
           ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

inline float from_bits(std::uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

inline std::uint32_t to_bits(float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

// log2(x) for x > 0, absolute error ~1e-7 (+ rounding of the result): exponent bits plus
// 2/ln2 * atanh((z - 1) / (z + 1)) for the mantissa z in [sqrt(1/2), sqrt(2)), whose series
// to t^9 is exact to 2e-9. Tiny and subnormal x are scaled by 2^64 first.
inline float log2_positive(float x) {
    constexpr std::uint32_t kSqrtHalfBits = 0x3F3504F3u;  // sqrt(1/2)
    const bool tiny = x < 0x1p-64f;
    const std::uint32_t shifted = to_bits(tiny ? x * 0x1p64f : x) - kSqrtHalfBits;
    const float exponent = static_cast<float>(static_cast<std::int32_t>(shifted) >> 23);
    const float mantissa = from_bits((shifted & 0x007FFFFFu) + kSqrtHalfBits);
    const float t = (mantissa - 1.f) / (mantissa + 1.f);
    const float t2 = t * t;
    const float series =
        t * (1.f + t2 * (1.f / 3 + t2 * (1.f / 5 + t2 * (1.f / 7 + t2 * (1.f / 9)))));
    return exponent + 2.88539008f * series - (tiny ? 64.f : 0.f);
}

// 2^y for y <= 0 (0 below -126, NaN for NaN): 2^round(y) from exponent bits times a
// degree-7 Taylor polynomial of 2^f, |f| <= 1/2 (truncation 5e-9). The clamp runs before the
// integer conversion, which is undefined behaviour for NaN or out-of-range values.
inline float exp2_nonpositive(float y) {
    const float clamped = y >= -126.f ? (y < 0.f ? y : 0.f) : -126.f;
    const int whole = static_cast<int>(clamped - 0.5f);  // nearest integer, as clamped <= 0
    const float z = (clamped - static_cast<float>(whole)) * 0.693147181f;
    // clang-format off: Horner's scheme reads better as written
    const float fraction =
        1.f + z * (1.f + z * (1.f / 2 + z * (1.f / 6 + z * (1.f / 24 + z * (1.f / 120 +
        z * (1.f / 720 + z * (1.f / 5040)))))));
    // clang-format on
    const float result = fraction * from_bits(static_cast<std::uint32_t>(whole + 127) << 23);
    return y >= -126.f ? result : (y == y ? 0.f : y);
}

// x^y for x in [0, 1] and y > 0: relative error < 1e-5 (1e-7 near 1), exact at 0 and 1.
// Unlike std::pow it inlines and vectorises (the conditions become selects under
// -fno-trapping-math), which makes the general-m path several times faster.
inline float power_unit(float x, float y) {
    return x > 0.f ? exp2_nonpositive(y * log2_positive(x)) : 0.f;
}

double squared_distance(const float* a, const float* b, int dims) {
    double s = 0.0;
    for (int f = 0; f < dims; ++f) {
        const double d = static_cast<double>(a[f]) - static_cast<double>(b[f]);
        s += d * d;
    }
    return s;
}

// FCM passes over all points for any k, feature count and m, in several vectorised loops per
// block. kSquared: m == 2, where both powers reduce to plain arithmetic.
template <bool kSquared>
class FcmPasses {
  public:
    FcmPasses(const float* features, std::int64_t n_points, int dims, int clusters,
              double fuzziness)
        : features_(features),
          n_points_(n_points),
          dims_(dims),
          clusters_(clusters),
          fuzziness_(static_cast<float>(fuzziness)),
          exponent_(static_cast<float>(1.0 / (fuzziness - 1.0))),
          points_(static_cast<std::size_t>(dims_) * kBlock),
          distances_(static_cast<std::size_t>(clusters) * kBlock),
          weights_(static_cast<std::size_t>(clusters) * kBlock),
          nearest_(kBlock),
          inverse_total_(kBlock),
          weight_(kBlock) {}

    // sum_i u_ij^m and sum_i u_ij^m x_i for every centre j (memberships are not stored).
    void centre_sums(const float* centers, double* weight_sum, double* weighted_points) {
        std::fill(weight_sum, weight_sum + clusters_, 0.0);
        std::fill(weighted_points, weighted_points + clusters_ * dims_, 0.0);
        for (std::int64_t first = 0; first < n_points_; first += kBlock) {
            const int count = load(first);
            weigh(centers, count);
            for (int j = 0; j < clusters_; ++j) {
                const float* weight = power_weights(j, count);
                weight_sum[j] += total(weight, count);
                for (int f = 0; f < dims_; ++f) {
                    const float* column = points_.data() + f * kBlock;
                    weighted_points[j * dims_ + f] += dot(weight, column, count);
                }
            }
        }
    }

    // Writes the n x k memberships; returns the objective sum_ij u_ij^m d2_ij.
    double memberships(const float* centers, float* out) {
        double objective = 0.0;
        for (std::int64_t first = 0; first < n_points_; first += kBlock) {
            const int count = load(first);
            weigh(centers, count);
            float* rows = out + first * clusters_;
            for (int j = 0; j < clusters_; ++j) {
                const float* __restrict w = weights_.data() + j * kBlock;
                const float* __restrict inverse = inverse_total_.data();
                for (int p = 0; p < count; ++p) rows[p * clusters_ + j] = w[p] * inverse[p];
                objective += dot(power_weights(j, count), distances_.data() + j * kBlock, count);
            }
        }
        return objective;
    }

  private:
    float power_m(float u) const { return kSquared ? u * u : power_unit(u, fuzziness_); }

    // Copies the next block of row-major points into planar columns; returns its size.
    int load(std::int64_t first) {
        const int count = static_cast<int>(std::min<std::int64_t>(kBlock, n_points_ - first));
        const float* __restrict rows = features_ + first * dims_;
        float* __restrict columns = points_.data();
        for (int p = 0; p < count; ++p) {
            for (int f = 0; f < dims_; ++f) columns[f * kBlock + p] = rows[p * dims_ + f];
        }
        return count;
    }

    // Unnormalised memberships w_ij (weights_) and 1 / sum_j w_ij (inverse_total_), so that
    // u_ij = w_ij / sum_j w_ij; squared distances stay in distances_.
    void weigh(const float* centers, int count) {
        const float* __restrict x = points_.data();
        for (int j = 0; j < clusters_; ++j) {
            float* __restrict d2 = distances_.data() + j * kBlock;
            const float* c = centers + j * dims_;
            for (int p = 0; p < count; ++p) {
                float sum = 0.f;
                for (int f = 0; f < dims_; ++f) {
                    const float diff = x[f * kBlock + p] - c[f];
                    sum += diff * diff;
                }
                d2[p] = sum;
            }
        }
        ratio_weights(count);
    }

    // w_ij = (d2_min / d2_ij)^(1/(m-1)): the textbook ratio form scaled by the nearest
    // distance, so nothing overflows (w = 1 at the nearest centre). A point on a centre
    // (d2_min = 0) gets w = 1 on every centre it touches and 0 elsewhere.
    void ratio_weights(int count) {
        float* __restrict nearest = nearest_.data();
        const float* __restrict first = distances_.data();
        for (int p = 0; p < count; ++p) nearest[p] = first[p];
        for (int j = 1; j < clusters_; ++j) {
            const float* __restrict d2 = distances_.data() + j * kBlock;
            for (int p = 0; p < count; ++p) nearest[p] = std::min(nearest[p], d2[p]);
        }
        float* __restrict inverse = inverse_total_.data();
        for (int p = 0; p < count; ++p) inverse[p] = 0.f;
        for (int j = 0; j < clusters_; ++j) {
            const float* __restrict d2 = distances_.data() + j * kBlock;
            float* __restrict w = weights_.data() + j * kBlock;
            // No branch around the division, so the loop vectorises: on a centre (d2 = 0) the
            // divisor becomes 1, d2_min = 0 makes the quotient 0 and the on-centre term is 1.
            for (int p = 0; p < count; ++p) {
                const float on_centre = d2[p] == 0.f ? 1.f : 0.f;
                w[p] = nearest[p] / (d2[p] + on_centre) + on_centre;
            }
            if (!kSquared) {
                for (int p = 0; p < count; ++p) w[p] = power_unit(w[p], exponent_);
            }
            for (int p = 0; p < count; ++p) inverse[p] += w[p];
        }
        for (int p = 0; p < count; ++p) inverse[p] = 1.f / inverse[p];
    }

    // u_ij^m of cluster j for the block's points, in weight_.
    const float* power_weights(int j, int count) {
        const float* __restrict w = weights_.data() + j * kBlock;
        const float* __restrict inverse = inverse_total_.data();
        float* __restrict out = weight_.data();
        for (int p = 0; p < count; ++p) out[p] = power_m(w[p] * inverse[p]);
        return out;
    }

    const float* features_;
    std::int64_t n_points_;
    int dims_;
    int clusters_;
    float fuzziness_;
    float exponent_;
    std::vector<float> points_, distances_, weights_, nearest_, inverse_total_, weight_;
};

// The m = 2 centre sums for the usual 2-5 clusters of 1-4 features, in one loop per block
// whose per-point values stay in registers, which makes it faster than FcmPasses. Each of kLanes
// consecutive points runs the same code, so the compiler maps the lanes onto SIMD registers.
constexpr int kLanes = 4;

// Adds one block's per-lane sums of u^2 and u^2 x to the accumulators. kProducts: take
// w_j = prod_{l != j} d2_l, so that u_j = w_j / sum_l w_l costs one division per point instead
// of k + 1; returns how many points had sum_l w_l outside [1e-30, 1e30] (a point on a
// centre, or extreme distances), for which the caller redoes the block with the ratio form
// w_j = d2_min / d2_j of FcmPasses.
template <int K, int D, bool kProducts>
int fused_block(const float (&x)[D][kBlock], const float (&valid)[kBlock], int count,
                const float* centers, float (&weight_sums)[K][kLanes],
                float (&point_sums)[K][D][kLanes]) {
    // Locals, so that no store can alias the centres and everything stays in registers.
    float c[K][D];
    for (int j = 0; j < K; ++j) {
        for (int f = 0; f < D; ++f) c[j][f] = centers[j * D + f];
    }
    float weight_lanes[K][kLanes] = {};
    float point_lanes[K][D][kLanes] = {};
    int out_of_range = 0;
    // The last block is padded to whole lanes with points of zero `valid` weight.
    for (int p = 0; p < count; p += kLanes) {
        for (int l = 0; l < kLanes; ++l) {
            float d2[K];
            for (int j = 0; j < K; ++j) {
                float sum = 0.f;
                for (int f = 0; f < D; ++f) {
                    const float diff = x[f][p + l] - c[j][f];
                    sum += diff * diff;
                }
                d2[j] = sum;
            }
            float w[K];
            float total = 0.f;
            if (kProducts) {
                float prefix = 1.f;
                for (int j = 0; j < K; ++j) {
                    w[j] = prefix;
                    prefix *= d2[j];
                }
                float suffix = 1.f;
                for (int j = K - 1; j >= 0; --j) {
                    w[j] *= suffix;
                    suffix *= d2[j];
                    total += w[j];
                }
                out_of_range += (total >= 1e-30f) & (total <= 1e30f) ? 0 : 1;  // no branch
            } else {
                float nearest = d2[0];
                for (int j = 1; j < K; ++j) nearest = std::min(nearest, d2[j]);
                for (int j = 0; j < K; ++j) {
                    const float on_centre = d2[j] == 0.f ? 1.f : 0.f;
                    w[j] = nearest / (d2[j] + on_centre) + on_centre;
                    total += w[j];
                }
            }
            const float inverse = 1.f / total;
            for (int j = 0; j < K; ++j) {
                const float u = w[j] * inverse;
                const float weight = u * u * valid[p + l];
                weight_lanes[j][l] += weight;
                for (int f = 0; f < D; ++f) point_lanes[j][f][l] += weight * x[f][p + l];
            }
        }
    }
    std::copy(&weight_lanes[0][0], &weight_lanes[0][0] + K * kLanes, &weight_sums[0][0]);
    std::copy(&point_lanes[0][0][0], &point_lanes[0][0][0] + K * D * kLanes, &point_sums[0][0][0]);
    return out_of_range;
}

using CentreSums = void (*)(const float* features, std::int64_t n_points, const float* centers,
                            double* weight_sum, double* weighted_points);

template <int K, int D>
void fused_centre_sums(const float* features, std::int64_t n_points, const float* centers,
                       double* weight_sum, double* weighted_points) {
    std::fill(weight_sum, weight_sum + K, 0.0);
    std::fill(weighted_points, weighted_points + K * D, 0.0);
    float x[D][kBlock];
    float valid[kBlock];
    std::fill(valid, valid + kBlock, 1.f);
    float weight_lanes[K][kLanes];
    float point_lanes[K][D][kLanes];
    for (std::int64_t first = 0; first < n_points; first += kBlock) {
        const int count = static_cast<int>(std::min<std::int64_t>(kBlock, n_points - first));
        const float* rows = features + first * D;
        for (int p = 0; p < count; ++p) {
            for (int f = 0; f < D; ++f) x[f][p] = rows[p * D + f];
        }
        // Pad the last block to whole lanes with copies of its first point, weighted 0.
        for (int p = count; p % kLanes != 0; ++p) {
            for (int f = 0; f < D; ++f) x[f][p] = x[f][0];
            valid[p] = 0.f;
        }
        if (fused_block<K, D, true>(x, valid, count, centers, weight_lanes, point_lanes) != 0) {
            fused_block<K, D, false>(x, valid, count, centers, weight_lanes, point_lanes);
        }
        for (int j = 0; j < K; ++j) {
            for (int l = 0; l < kLanes; ++l) {
                weight_sum[j] += weight_lanes[j][l];
                for (int f = 0; f < D; ++f) weighted_points[j * D + f] += point_lanes[j][f][l];
            }
        }
    }
}

template <int K>
CentreSums fused_for_dims(int dims) {
    switch (dims) {
        case 1: return &fused_centre_sums<K, 1>;
        case 2: return &fused_centre_sums<K, 2>;
        case 3: return &fused_centre_sums<K, 3>;
        case 4: return &fused_centre_sums<K, 4>;
        default: return nullptr;
    }
}

// The fused m = 2 centre sums for k clusters of `dims` features, or null when not covered.
CentreSums fused_for(int clusters, int dims) {
    switch (clusters) {
        case 2: return fused_for_dims<2>(dims);
        case 3: return fused_for_dims<3>(dims);
        case 4: return fused_for_dims<4>(dims);
        case 5: return fused_for_dims<5>(dims);
        default: return nullptr;
    }
}

// Moves each centre to its weighted mean (a centre with no weight stays); returns the largest
// Euclidean move.
double move_centers(const std::vector<double>& weight_sum,
                    const std::vector<double>& weighted_points, int dims, float* centers) {
    double largest_move = 0.0;
    for (std::size_t j = 0; j < weight_sum.size(); ++j) {
        if (!(weight_sum[j] > 0.0)) continue;
        double move = 0.0;
        for (int f = 0; f < dims; ++f) {
            float& centre = centers[j * dims + f];
            const float updated = static_cast<float>(weighted_points[j * dims + f] / weight_sum[j]);
            const double step = static_cast<double>(updated) - centre;
            move += step * step;
            centre = updated;
        }
        largest_move = std::max(largest_move, move);
    }
    return std::sqrt(largest_move);
}

// Stable order for callers: ascending first feature, ties broken by the next features.
void sort_centers(int clusters, int dims, float* centers) {
    std::vector<int> order(clusters);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return std::lexicographical_compare(centers + a * dims, centers + (a + 1) * dims,
                                            centers + b * dims, centers + (b + 1) * dims);
    });
    std::vector<float> sorted(static_cast<std::size_t>(clusters) * dims);
    for (int j = 0; j < clusters; ++j) {
        std::copy(centers + order[j] * dims, centers + (order[j] + 1) * dims,
                  sorted.begin() + j * dims);
    }
    std::copy(sorted.begin(), sorted.end(), centers);
}

template <bool kSquared>
FcmSummary run_fcm(const float* features, std::int64_t n_points, int dims,
                   const FcmSettings& settings, float* centers, float* memberships) {
    const int k = settings.clusters;
    FcmPasses<kSquared> passes(features, n_points, dims, k, settings.fuzziness);
    const CentreSums fused = kSquared ? fused_for(k, dims) : nullptr;
    std::vector<double> weight_sum(k), weighted_points(static_cast<std::size_t>(k) * dims);
    FcmSummary summary;
    while (summary.iterations < settings.max_iterations) {
        if (fused) {
            fused(features, n_points, centers, weight_sum.data(), weighted_points.data());
        } else {
            passes.centre_sums(centers, weight_sum.data(), weighted_points.data());
        }
        const double move = move_centers(weight_sum, weighted_points, dims, centers);
        ++summary.iterations;
        if (move < settings.tolerance) break;
    }
    sort_centers(k, dims, centers);
    summary.objective = passes.memberships(centers, memberships);
    return summary;
}

void check_sizes(std::int64_t n_points, int dims, int clusters) {
    if (n_points < 1 || dims < 1) {
        throw std::invalid_argument("fcm: need at least one point and one feature");
    }
    if (clusters < 1 || clusters > n_points) {
        throw std::invalid_argument("fcm: clusters must be in [1, n_points]");
    }
}

}  // namespace

void fcm_seed_centers(const float* features, std::int64_t n_points, int dims, int clusters,
                      std::uint64_t seed, float* centers) {
    check_sizes(n_points, dims, clusters);
    SplitMix64 rng(seed);
    std::int64_t pick = rng.below(n_points);
    std::copy(features + pick * dims, features + (pick + 1) * dims, centers);
    // Squared distance from each point to its nearest chosen centre, in double and summed in
    // index order so the draw is reproducible.
    std::vector<double> nearest(static_cast<std::size_t>(n_points));
    for (std::int64_t i = 0; i < n_points; ++i) {
        nearest[i] = squared_distance(features + i * dims, centers, dims);
    }
    for (int c = 1; c < clusters; ++c) {
        const double sum = std::accumulate(nearest.begin(), nearest.end(), 0.0);
        if (sum > 0.0) {
            const double target = rng.uniform() * sum;
            double cumulative = 0.0;
            pick = -1;
            for (std::int64_t i = 0; i < n_points; ++i) {
                if (nearest[i] <= 0.0) continue;
                pick = i;  // rounding can leave target >= the full sum: keep the last candidate
                cumulative += nearest[i];
                if (cumulative > target) break;
            }
        } else {
            pick = rng.below(n_points);
        }
        float* center = centers + static_cast<std::int64_t>(c) * dims;
        std::copy(features + pick * dims, features + (pick + 1) * dims, center);
        for (std::int64_t i = 0; i < n_points; ++i) {
            nearest[i] = std::min(nearest[i], squared_distance(features + i * dims, center, dims));
        }
    }
}

FcmSummary fuzzy_cmeans(const float* features, std::int64_t n_points, int dims,
                        const FcmSettings& settings, float* centers, float* memberships) {
    check_sizes(n_points, dims, settings.clusters);
    // The passes use m in float, where m = 1e39 would be inf and inf * log2(1) NaN; 1/(m-1)
    // is at most 1/DBL_EPSILON, always finite in float.
    if (!(settings.fuzziness > 1.0) || !(settings.fuzziness <= std::numeric_limits<float>::max())) {
        throw std::invalid_argument("fcm: fuzziness m must be > 1 and finite in float32");
    }
    if (!(settings.tolerance >= 0.0) || !std::isfinite(settings.tolerance)) {
        throw std::invalid_argument("fcm: tolerance must be finite and >= 0");
    }
    if (settings.max_iterations < 0) {
        throw std::invalid_argument("fcm: max_iterations must be >= 0");
    }
    if (settings.fuzziness == 2.0) {
        return run_fcm<true>(features, n_points, dims, settings, centers, memberships);
    }
    return run_fcm<false>(features, n_points, dims, settings, centers, memberships);
}

}  // namespace masksegx
