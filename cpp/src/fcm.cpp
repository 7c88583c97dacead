#include "masksegx/fcm.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace masksegx {
namespace {

// Points are processed in blocks kept in planar (feature-major) buffers, so every inner loop
// runs over contiguous floats of one block and vectorises whatever k and D are.
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

// Sum of a[p] * b[p] in eight independent lanes: a fixed association order the compiler can
// map onto SIMD registers without -ffast-math.
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

double squared_distance(const float* a, const float* b, int dims) {
    double s = 0.0;
    for (int f = 0; f < dims; ++f) {
        const double d = static_cast<double>(a[f]) - static_cast<double>(b[f]);
        s += d * d;
    }
    return s;
}

// Squared distances, memberships and membership weights u^m of one block of points.
class BlockMemberships {
  public:
    BlockMemberships(int dims, int clusters, double fuzziness)
        : dims_(dims),
          clusters_(clusters),
          fuzziness_(static_cast<float>(fuzziness)),
          exponent_(static_cast<float>(1.0 / (fuzziness - 1.0))),
          squared_(fuzziness == 2.0),
          points_(static_cast<std::size_t>(dims) * kBlock),
          distances_(static_cast<std::size_t>(clusters) * kBlock),
          memberships_(static_cast<std::size_t>(clusters) * kBlock),
          nearest_(kBlock),
          weight_total_(kBlock),
          weights_(kBlock) {}

    // Points [first, first + count) of the row-major n x dims `features`.
    void compute(const float* features, std::int64_t first, int count, const float* centers) {
        count_ = count;
        const float* __restrict rows = features + first * dims_;
        for (int f = 0; f < dims_; ++f) {
            float* __restrict column = points_.data() + f * kBlock;
            for (int p = 0; p < count; ++p) column[p] = rows[p * dims_ + f];
        }
        float* __restrict nearest = nearest_.data();
        for (int j = 0; j < clusters_; ++j) {
            float* __restrict d2 = distances_.data() + j * kBlock;
            std::fill(d2, d2 + count, 0.f);
            for (int f = 0; f < dims_; ++f) {
                const float* __restrict column = points_.data() + f * kBlock;
                const float c = centers[j * dims_ + f];
                for (int p = 0; p < count; ++p) {
                    const float diff = column[p] - c;
                    d2[p] += diff * diff;
                }
            }
            if (j == 0) {
                std::copy(d2, d2 + count, nearest);
            } else {
                for (int p = 0; p < count; ++p) nearest[p] = std::min(nearest[p], d2[p]);
            }
        }
        // u_ij = w_ij / sum_l w_il with w_ij = (d2_min / d2_ij)^(1/(m-1)): the textbook ratio
        // form scaled by the nearest distance, so nothing overflows; w = 1 at the nearest centre.
        // A point on a centre (d2_min = 0) gets w = 1 on every centre it touches, 0 elsewhere.
        float* __restrict sum = weight_total_.data();
        std::fill(sum, sum + count, 0.f);
        for (int j = 0; j < clusters_; ++j) {
            const float* __restrict d2 = distances_.data() + j * kBlock;
            float* __restrict u = memberships_.data() + j * kBlock;
            for (int p = 0; p < count; ++p) {
                const float safe = d2[p] > 0.f ? d2[p] : 1.f;
                const float ratio =
                    nearest[p] > 0.f ? nearest[p] / safe : (d2[p] == 0.f ? 1.f : 0.f);
                u[p] = squared_ ? ratio : std::pow(ratio, exponent_);
                sum[p] += u[p];
            }
        }
        for (int p = 0; p < count; ++p) sum[p] = 1.f / sum[p];
        for (int j = 0; j < clusters_; ++j) {
            float* __restrict u = memberships_.data() + j * kBlock;
            for (int p = 0; p < count; ++p) u[p] *= sum[p];
        }
    }

    // u_ij^m of cluster j, valid until the next call.
    const float* weights(int j) {
        const float* __restrict u = membership(j);
        float* __restrict w = weights_.data();
        if (squared_) {
            for (int p = 0; p < count_; ++p) w[p] = u[p] * u[p];
        } else {
            for (int p = 0; p < count_; ++p) w[p] = std::pow(u[p], fuzziness_);
        }
        return w;
    }

    int count() const { return count_; }
    const float* feature(int f) const { return points_.data() + f * kBlock; }
    const float* distance(int j) const { return distances_.data() + j * kBlock; }
    const float* membership(int j) const { return memberships_.data() + j * kBlock; }

  private:
    int dims_;
    int clusters_;
    float fuzziness_;
    float exponent_;
    bool squared_;  // m == 2: both powers reduce to plain arithmetic
    int count_ = 0;
    std::vector<float> points_, distances_, memberships_, nearest_, weight_total_, weights_;
};

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
    const int k = settings.clusters;
    check_sizes(n_points, dims, k);
    if (!(settings.fuzziness > 1.0) || !std::isfinite(settings.fuzziness)) {
        throw std::invalid_argument("fcm: fuzziness m must be finite and > 1");
    }
    if (!(settings.tolerance >= 0.0) || !std::isfinite(settings.tolerance)) {
        throw std::invalid_argument("fcm: tolerance must be finite and >= 0");
    }
    if (settings.max_iterations < 0) {
        throw std::invalid_argument("fcm: max_iterations must be >= 0");
    }

    BlockMemberships block(dims, k, settings.fuzziness);
    std::vector<double> weight_sum(k), weighted_points(static_cast<std::size_t>(k) * dims);
    FcmSummary summary;
    while (summary.iterations < settings.max_iterations) {
        // Memberships only feed the centre sums here, so they are never stored.
        std::fill(weight_sum.begin(), weight_sum.end(), 0.0);
        std::fill(weighted_points.begin(), weighted_points.end(), 0.0);
        for (std::int64_t first = 0; first < n_points; first += kBlock) {
            const int count = static_cast<int>(std::min<std::int64_t>(kBlock, n_points - first));
            block.compute(features, first, count, centers);
            for (int j = 0; j < k; ++j) {
                const float* w = block.weights(j);
                weight_sum[j] += total(w, count);
                for (int f = 0; f < dims; ++f) {
                    weighted_points[j * dims + f] += dot(w, block.feature(f), count);
                }
            }
        }
        double largest_move = 0.0;
        for (int j = 0; j < k; ++j) {
            if (!(weight_sum[j] > 0.0)) continue;  // no weight at all: keep the centre
            double move = 0.0;
            for (int f = 0; f < dims; ++f) {
                const float updated =
                    static_cast<float>(weighted_points[j * dims + f] / weight_sum[j]);
                const double step = static_cast<double>(updated) - centers[j * dims + f];
                move += step * step;
                centers[j * dims + f] = updated;
            }
            largest_move = std::max(largest_move, move);
        }
        ++summary.iterations;
        if (std::sqrt(largest_move) < settings.tolerance) break;
    }

    // Stable order for callers: ascending first feature, ties broken by the next features.
    std::vector<int> order(k);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return std::lexicographical_compare(centers + a * dims, centers + (a + 1) * dims,
                                            centers + b * dims, centers + (b + 1) * dims);
    });
    std::vector<float> sorted(static_cast<std::size_t>(k) * dims);
    for (int j = 0; j < k; ++j) {
        std::copy(centers + order[j] * dims, centers + (order[j] + 1) * dims,
                  sorted.begin() + j * dims);
    }
    std::copy(sorted.begin(), sorted.end(), centers);

    double objective = 0.0;
    for (std::int64_t first = 0; first < n_points; first += kBlock) {
        const int count = static_cast<int>(std::min<std::int64_t>(kBlock, n_points - first));
        block.compute(features, first, count, centers);
        for (int j = 0; j < k; ++j) {
            const float* u = block.membership(j);
            float* out = memberships + first * k + j;
            for (int p = 0; p < count; ++p) out[p * k] = u[p];
            objective += dot(block.weights(j), block.distance(j), count);
        }
    }
    summary.objective = objective;
    return summary;
}

}  // namespace masksegx
