#include "masksegx/compensate.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

namespace masksegx {
namespace {

constexpr int kLevels = 256;
constexpr int kSideStride = 3 * kLevels;  // table entries per region side (3 channels)

// counts[side][channel][value] over the whole image; side 1 = inside the region.
// Every statistic here is a function of these 2 x 3 x 256 counts, so one counting pass
// replaces per-pixel powers: v^t is evaluated 256 times, not once per pixel.
struct ChannelCounts {
    std::int64_t counts[2][3][kLevels] = {};
    std::int64_t pixels(int side) const {
        std::int64_t n = 0;
        for (int v = 0; v < kLevels; ++v) n += counts[side][0][v];
        return n;
    }
};

// Region masks are mostly solid blobs, so most 8-pixel blocks lie wholly inside or outside.
constexpr std::int64_t kBlock = 8;

bool block_touches_region(const std::uint8_t* region) {
    std::uint64_t word;
    std::memcpy(&word, region, sizeof word);
    return word != 0;
}

// Calls visit(begin, end) on runs of 8-pixel blocks that hold region pixels (and on the
// last partial block); long runs keep the per-pixel loops long.
template <class Visit>
void for_region_runs(const std::uint8_t* region, std::int64_t n, Visit&& visit) {
    const std::int64_t blocks_end = n - n % kBlock;
    std::int64_t p = 0;
    while (p < blocks_end) {
        if (!block_touches_region(region + p)) {
            p += kBlock;
            continue;
        }
        std::int64_t end = p + kBlock;
        while (end < blocks_end && block_touches_region(region + end)) end += kBlock;
        visit(p, end);
        p = end;
    }
    if (blocks_end < n) visit(blocks_end, n);
}

// Adds pixels [begin, end) to two tables, fed by alternate pixels: neighbouring pixels often
// share a value, and two increments of one counter in a row would wait on each other.
inline void count_range(const std::uint8_t* __restrict pixels,
                        const std::uint8_t* __restrict region, std::int64_t begin, std::int64_t end,
                        std::uint32_t* __restrict even, std::uint32_t* __restrict odd) {
    std::int64_t p = begin;
    for (; p + 1 < end; p += 2) {
        const std::uint8_t* q = pixels + 3 * p;
        std::uint32_t* a = even + (region[p] != 0) * kSideStride;
        std::uint32_t* b = odd + (region[p + 1] != 0) * kSideStride;
        ++a[q[0]];
        ++a[kLevels + q[1]];
        ++a[2 * kLevels + q[2]];
        ++b[q[3]];
        ++b[kLevels + q[4]];
        ++b[2 * kLevels + q[5]];
    }
    if (p < end) {
        const std::uint8_t* q = pixels + 3 * p;
        std::uint32_t* a = even + (region[p] != 0) * kSideStride;
        for (int c = 0; c < 3; ++c) ++a[c * kLevels + q[c]];
    }
}

// Fills `out` for both sides, or with region_only for the region side alone (blocks without
// region pixels are skipped, the background counts of mixed blocks are partial).
void count_channels(const std::uint8_t* pixels, const std::uint8_t* region, std::int64_t n,
                    bool region_only, ChannelCounts& out) {
    // uint32 keeps both tables in L1; chunks keep every counter below 2^32.
    constexpr std::int64_t kChunk = std::int64_t(1) << 30;
    std::uint32_t even[2 * kSideStride];
    std::uint32_t odd[2 * kSideStride];
    for (std::int64_t begin = 0; begin < n; begin += kChunk) {
        const std::int64_t end = std::min(n, begin + kChunk);
        std::memset(even, 0, sizeof even);
        std::memset(odd, 0, sizeof odd);
        if (region_only) {
            // The closure copies pointers: the arrays themselves must not be copied.
            std::uint32_t* even_table = even;
            std::uint32_t* odd_table = odd;
            for_region_runs(region + begin, end - begin, [=](std::int64_t b, std::int64_t e) {
                count_range(pixels, region, begin + b, begin + e, even_table, odd_table);
            });
        } else {
            count_range(pixels, region, begin, end, even, odd);
        }
        std::int64_t* total = &out.counts[0][0][0];
        for (int i = 0; i < 2 * kSideStride; ++i) total[i] += std::int64_t(even[i]) + odd[i];
    }
}

bool is_integer_exponent(double t) { return t == std::floor(t) && t < 1e9; }

// x^t for integer t by squaring: as accurate as std::pow and far cheaper.
double integer_power(double x, long long t) {
    double result = 1.0;
    while (t > 0) {
        if (t & 1) result *= x;
        x *= x;
        t >>= 1;
    }
    return result;
}

// Eq. 19-20 for one channel from its value counts (scale 1); NaN for an empty set.
// Powers are taken of v / max(v) so that no t overflows and t -> inf tends to max(v).
double minkowski_from_counts(const std::int64_t* counts, double t) {
    std::int64_t total = 0;
    int v_max = -1;
    for (int v = 0; v < kLevels; ++v) {
        total += counts[v];
        if (counts[v] != 0) v_max = v;
    }
    if (total == 0) return std::numeric_limits<double>::quiet_NaN();
    if (v_max == 0) return 0.0;
    if (std::isinf(t)) return v_max;
    const bool integer_t = is_integer_exponent(t);
    const double inv_max = 1.0 / v_max;
    double weighted = 0.0;
    for (int v = 1; v <= v_max; ++v) {
        if (counts[v] == 0) continue;
        const double x = v * inv_max;
        const double power =
            integer_t ? integer_power(x, static_cast<long long>(t)) : std::pow(x, t);
        weighted += static_cast<double>(counts[v]) * power;
    }
    return v_max * std::pow(weighted / static_cast<double>(total), 1.0 / t);
}

std::uint8_t round_saturate(double x) {
    // nearbyint in the default rounding mode rounds ties to even; the clamp also absorbs inf.
    return static_cast<std::uint8_t>(std::nearbyint(std::min(std::max(x, 0.0), 255.0)));
}

void check_exponent(double t) {
    if (!(t >= 1.0)) {
        throw std::invalid_argument("t: Minkowski exponent must be >= 1 or inf, got " +
                                    std::to_string(t));
    }
}

void check_mu(double mu) {
    if (!(std::isfinite(mu) && mu >= 0.0)) {
        throw std::invalid_argument("mu: suppression factor must be finite and >= 0, got " +
                                    std::to_string(mu));
    }
}

int blue_index(ChannelOrder order) { return order == ChannelOrder::BGR ? 0 : 2; }

// Value maps for both sides: table[side * kSideStride + channel * kLevels + value].
// Side 0 (outside the region) starts as the identity; callers fill side 1.
struct SideTables {
    std::uint8_t table[2 * kSideStride];
    SideTables() {
        for (int i = 0; i < 2 * kSideStride; ++i) table[i] = static_cast<std::uint8_t>(i % kLevels);
    }
    std::uint8_t* region_channel(int c) { return table + kSideStride + c * kLevels; }
};

// Region pixels of [begin, end) through their side's tables (side 0 is the identity, so
// pixels outside the region need no branch).
inline void remap_range(const std::uint8_t* __restrict pixels,
                        const std::uint8_t* __restrict region, std::int64_t begin, std::int64_t end,
                        const std::uint8_t* __restrict table, std::uint8_t* __restrict out) {
    for (std::int64_t p = begin; p < end; ++p) {
        const std::uint8_t* t = table + (region[p] != 0) * kSideStride;
        const std::uint8_t* q = pixels + 3 * p;
        std::uint8_t* o = out + 3 * p;
        o[0] = t[q[0]];
        o[1] = t[kLevels + q[1]];
        o[2] = t[2 * kLevels + q[2]];
    }
}

// remap_range for tables that change channel c only: a third of the lookups.
inline void remap_channel_range(const std::uint8_t* __restrict pixels,
                                const std::uint8_t* __restrict region, std::int64_t begin,
                                std::int64_t end, int c, const std::uint8_t* __restrict table,
                                std::uint8_t* __restrict out) {
    const std::uint8_t* channel_table = table + c * kLevels;
    for (std::int64_t p = begin; p < end; ++p) {
        out[3 * p + c] = channel_table[(region[p] != 0) * kSideStride + pixels[3 * p + c]];
    }
}

// The only writing pass: a copy, then the blocks that touch the region through the tables;
// only_channel >= 0 says the tables change that channel alone.
void apply_tables(const std::uint8_t* pixels, const std::uint8_t* region, std::int64_t n,
                  const SideTables& tables, int only_channel, std::uint8_t* out) {
    std::memcpy(out, pixels, static_cast<std::size_t>(3 * n));
    // Captures by value: a uint8 store may alias anything, even a captured pointer.
    const std::uint8_t* table = tables.table;
    if (only_channel >= 0) {
        for_region_runs(region, n, [=](std::int64_t begin, std::int64_t end) {
            remap_channel_range(pixels, region, begin, end, only_channel, table, out);
        });
    } else {
        for_region_runs(region, n, [=](std::int64_t begin, std::int64_t end) {
            remap_range(pixels, region, begin, end, table, out);
        });
    }
}

void fill_scaled(std::uint8_t* table, double factor) {
    for (int v = 0; v < kLevels; ++v) table[v] = round_saturate(v * factor);
}

// Illuminants of both sides and the eq. 21 gains from the counts, raised to `strength`.
CompensationStats gray_world_stats(const ChannelCounts& counts, double t, double strength) {
    CompensationStats stats{};
    const bool both_sides = counts.pixels(0) > 0 && counts.pixels(1) > 0;
    for (int c = 0; c < 3; ++c) {
        stats.illuminant_background[c] = minkowski_from_counts(counts.counts[0][c], t);
        stats.illuminant_region[c] = minkowski_from_counts(counts.counts[1][c], t);
        const bool usable = both_sides && stats.illuminant_region[c] > 0.0;
        stats.gain[c] =
            usable ? std::pow(stats.illuminant_background[c] / stats.illuminant_region[c], strength)
                   : 1.0;
    }
    return stats;
}

}  // namespace

void blue_suppression(const std::uint8_t* pixels, const std::uint8_t* region, std::int64_t n_pixels,
                      ChannelOrder order, double mu, std::uint8_t* out) {
    check_mu(mu);
    SideTables tables;
    const int blue = blue_index(order);
    fill_scaled(tables.region_channel(blue), mu);
    apply_tables(pixels, region, n_pixels, tables, blue, out);
}

void minkowski_illuminant(const std::uint8_t* pixels, const std::uint8_t* region,
                          std::int64_t n_pixels, double t, double scale, double illuminant[3]) {
    check_exponent(t);
    if (!(std::isfinite(scale) && scale > 0.0)) {
        throw std::invalid_argument("scale: must be finite and > 0, got " + std::to_string(scale));
    }
    ChannelCounts counts;
    count_channels(pixels, region, n_pixels, /*region_only=*/true, counts);
    if (counts.pixels(1) == 0) {
        throw std::invalid_argument("region: no pixels inside the region");
    }
    for (int c = 0; c < 3; ++c) {
        illuminant[c] = scale * minkowski_from_counts(counts.counts[1][c], t);
    }
}

CompensationStats gray_world_minkowski(const std::uint8_t* pixels, const std::uint8_t* region,
                                       std::int64_t n_pixels, double t, std::uint8_t* out) {
    check_exponent(t);
    ChannelCounts counts;
    count_channels(pixels, region, n_pixels, /*region_only=*/false, counts);
    const CompensationStats stats = gray_world_stats(counts, t, 1.0);
    SideTables tables;
    for (int c = 0; c < 3; ++c) fill_scaled(tables.region_channel(c), stats.gain[c]);
    apply_tables(pixels, region, n_pixels, tables, /*only_channel=*/-1, out);
    return stats;
}

CompensationStats compensate_region(const std::uint8_t* pixels, const std::uint8_t* region,
                                    std::int64_t n_pixels, ChannelOrder order, double mu, double t,
                                    double strength, std::uint8_t* out) {
    check_mu(mu);
    check_exponent(t);
    if (!std::isfinite(strength)) {
        throw std::invalid_argument("strength: must be finite, got " + std::to_string(strength));
    }
    ChannelCounts counts;
    count_channels(pixels, region, n_pixels, /*region_only=*/false, counts);

    // Suppression maps each region blue value v to suppressed[v], so the suppressed image's
    // counts follow from the original ones without a pass over the pixels.
    const int blue = blue_index(order);
    std::uint8_t suppressed[kLevels];
    fill_scaled(suppressed, mu);
    std::int64_t* region_blue = counts.counts[1][blue];
    std::int64_t moved[kLevels] = {};
    for (int v = 0; v < kLevels; ++v) moved[suppressed[v]] += region_blue[v];
    std::copy(moved, moved + kLevels, region_blue);

    const CompensationStats stats = gray_world_stats(counts, t, strength);
    SideTables tables;
    for (int c = 0; c < 3; ++c) fill_scaled(tables.region_channel(c), stats.gain[c]);
    // Compose: suppress (rounded to uint8, as the two-step algorithm stores it), then correct.
    std::uint8_t* blue_table = tables.region_channel(blue);
    std::uint8_t corrected[kLevels];
    std::copy(blue_table, blue_table + kLevels, corrected);
    for (int v = 0; v < kLevels; ++v) blue_table[v] = corrected[suppressed[v]];
    apply_tables(pixels, region, n_pixels, tables, /*only_channel=*/-1, out);
    return stats;
}

}  // namespace masksegx
