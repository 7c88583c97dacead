// Fuzzy c-means clustering (Bezdek) of per-pixel feature vectors, paper section 3 step (3).
#pragma once
#include <cstdint>

namespace masksegx {

struct FcmSettings {
    int clusters = 2;          // k, 1 <= k <= n_points
    double fuzziness = 2.0;    // m > 1
    double tolerance = 1e-4;   // stop once every centre moved less than this (Euclidean)
    int max_iterations = 100;  // >= 1
};

struct FcmSummary {
    int iterations = 0;      // centre updates performed
    double objective = 0.0;  // sum_ij u_ij^m |x_i - c_j|^2 for the returned centres/memberships
};

// Deterministic k-means++ seeding from a splitmix64 stream r1, r2, ...: the first centre is
// point r % n; each next one is drawn with probability proportional to its squared distance
// D_i to the nearest chosen centre, as the first point (index order) whose running sum of D_i
// (double) exceeds (r >> 11) * 2^-53 * sum D; when every D_i is 0, point r % n. Writes k*dims.
void fcm_seed_centers(const float* features, std::int64_t n_points, int dims, int clusters,
                      std::uint64_t seed, float* centers);

// Runs FCM from the k*dims `centers` (overwritten with the result). Each iteration computes
// u_ij = 1 / sum_l (d_ij / d_il)^(2/(m-1)) and moves every centre to sum_i u_ij^m x_i /
// sum_i u_ij^m (a centre whose weights are all 0 stays put); it stops when the largest centre
// move is < tolerance or after max_iterations. A point at distance 0 from some centres shares
// membership 1 equally among them. The final centres are sorted by their first feature
// (ascending, ties broken by the next features) and `memberships` (n_points*k, row per
// point) is computed from them. std::invalid_argument on bad settings or sizes.
FcmSummary fuzzy_cmeans(const float* features, std::int64_t n_points, int dims,
                        const FcmSettings& settings, float* centers, float* memberships);

}  // namespace masksegx
