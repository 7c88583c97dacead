#include "masksegx/regions.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace masksegx {
namespace {

#if (defined(__GNUC__) || defined(__clang__)) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr bool kWordScan = true;
inline int lowest_byte(std::uint64_t flags) { return __builtin_ctzll(flags) >> 3; }
#else
constexpr bool kWordScan = false;
inline int lowest_byte(std::uint64_t) { return 0; }
#endif

// High bit set in each byte of `v` that is zero. Only the lowest flag is exact (a borrow can
// flag a 0x01 byte above a zero byte), which is all the scan needs.
inline std::uint64_t zero_byte_flags(std::uint64_t v) {
    constexpr std::uint64_t kOnes = 0x0101010101010101ull;
    constexpr std::uint64_t kHighs = 0x8080808080808080ull;
    return (v - kOnes) & ~v & kHighs;
}

// First column >= x whose pixel is nonzero (kNonzero) or zero, or `width` if none. Masks have
// long runs, so eight pixels are tested per step.
template <bool kNonzero>
inline std::int64_t scan_to(const std::uint8_t* row, std::int64_t x, std::int64_t width) {
    if constexpr (kWordScan) {
        for (; x + 8 <= width; x += 8) {
            std::uint64_t v;
            std::memcpy(&v, row + x, 8);
            const std::uint64_t flags = kNonzero ? v : zero_byte_flags(v);
            if (flags != 0) return x + lowest_byte(flags);
        }
    }
    for (; x < width; ++x) {
        if ((row[x] != 0) == kNonzero) return x;
    }
    return width;
}

template <bool kForeground>
void collect_runs(const std::uint8_t* mask, std::int64_t height, std::int64_t width,
                  RunComponents& out) {
    out.row_start.resize(static_cast<std::size_t>(height) + 1);
    for (std::int64_t y = 0; y < height; ++y) {
        out.row_start[y] = static_cast<std::int64_t>(out.runs.size());
        const std::uint8_t* row = mask + y * width;
        std::int64_t x = scan_to<kForeground>(row, 0, width);
        while (x < width) {
            const std::int64_t end = scan_to<!kForeground>(row, x + 1, width);
            out.runs.push_back({static_cast<std::int32_t>(x), static_cast<std::int32_t>(end)});
            x = scan_to<kForeground>(row, end + 1 < width ? end + 1 : width, width);
        }
    }
    out.row_start[height] = static_cast<std::int64_t>(out.runs.size());
}

// Union-find over run indices. The smaller index always becomes the root, so a root is the
// component's first run in raster order and parent[i] <= i holds throughout.
inline std::int32_t find_root(std::int32_t* parent, std::int32_t i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];  // path halving
        i = parent[i];
    }
    return i;
}

inline void unite(std::int32_t* parent, std::int32_t a, std::int32_t b) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a < b) {
        parent[b] = a;
    } else if (b < a) {
        parent[a] = b;
    }
}

// Sum of a float row segment in double, four accumulators to hide the add latency.
inline double sum_segment(const float* values, std::int64_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    std::int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += values[i];
        s1 += values[i + 1];
        s2 += values[i + 2];
        s3 += values[i + 3];
    }
    for (; i < n; ++i) s0 += values[i];
    return (s0 + s1) + (s2 + s3);
}

}  // namespace

RunComponents find_components(const std::uint8_t* mask, std::int64_t height, std::int64_t width,
                              int connectivity, bool foreground) {
    if (connectivity != 4 && connectivity != 8) {
        throw std::invalid_argument("find_components: connectivity must be 4 or 8");
    }
    // Run ends are int32 and get widened by one column when runs are compared.
    if (height <= 0 || width <= 0 || width >= std::numeric_limits<std::int32_t>::max()) {
        throw std::invalid_argument("find_components: invalid image size");
    }
    RunComponents out;
    out.height = height;
    out.width = width;
    if (foreground) {
        collect_runs<true>(mask, height, width, out);
    } else {
        collect_runs<false>(mask, height, width, out);
    }
    if (out.runs.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
        throw std::invalid_argument("find_components: too many runs");
    }
    const auto n_runs = static_cast<std::int32_t>(out.runs.size());
    std::vector<std::int32_t> parent(n_runs);
    for (std::int32_t i = 0; i < n_runs; ++i) parent[i] = i;

    // Runs of consecutive rows touch when their column spans overlap, widened by one column
    // for diagonal neighbours under 8-connectivity.
    const std::int32_t reach = connectivity == 8 ? 1 : 0;
    const Run* runs = out.runs.data();
    for (std::int64_t y = 1; y < height; ++y) {
        std::int64_t above = out.row_start[y - 1];
        const std::int64_t above_end = out.row_start[y];
        const std::int64_t row_end = out.row_start[y + 1];
        for (std::int64_t r = above_end; r < row_end && above < above_end; ++r) {
            const Run run = runs[r];
            while (above < above_end && runs[above].end + reach <= run.begin) ++above;
            for (std::int64_t a = above; a < above_end && runs[a].begin < run.end + reach; ++a) {
                unite(parent.data(), static_cast<std::int32_t>(r), static_cast<std::int32_t>(a));
            }
        }
    }

    // parent[i] <= i and shares i's component, so one forward sweep numbers the roots in
    // raster order and hands every other run its root's number.
    out.run_label.resize(n_runs);
    std::int32_t count = 0;
    for (std::int32_t i = 0; i < n_runs; ++i) {
        out.run_label[i] = parent[i] == i ? ++count : out.run_label[parent[i]];
    }
    out.count = count;
    return out;
}

void write_components(const RunComponents& components, const float* variance, std::int32_t* labels,
                      const ComponentStats* stats) {
    const std::int64_t width = components.width;
    const std::int32_t count = components.count;
    const bool measure = stats != nullptr;
    if (measure && (!stats->area || !stats->bbox || !stats->diagonal || !stats->mi ||
                    !stats->mean_variance || !stats->po)) {
        throw std::invalid_argument("write_components: set all six stats arrays");
    }
    // Indexed by label (1..count); slot 0 is unused so the run loop needs no offset.
    std::vector<std::int32_t> x_min, x_max, y_min, y_max;
    std::vector<std::int64_t> area;
    std::vector<double> variance_sum;
    if (measure) {
        x_min.assign(count + 1, std::numeric_limits<std::int32_t>::max());
        x_max.assign(count + 1, -1);
        y_min.assign(count + 1, std::numeric_limits<std::int32_t>::max());
        y_max.assign(count + 1, -1);
        area.assign(count + 1, 0);
        variance_sum.assign(count + 1, 0.0);
    }
    for (std::int64_t y = 0; y < components.height; ++y) {
        // Clearing the whole row first is faster than filling the gaps between runs one by
        // one: the row stays in L1 and half the short fills disappear.
        std::int32_t* row = labels + y * width;
        std::fill(row, row + width, 0);
        for (std::int64_t r = components.row_start[y]; r < components.row_start[y + 1]; ++r) {
            const Run run = components.runs[r];
            const std::int32_t label = components.run_label[r];
            std::fill(row + run.begin, row + run.end, label);
            if (measure) {
                area[label] += run.end - run.begin;
                x_min[label] = std::min(x_min[label], run.begin);
                x_max[label] = std::max(x_max[label], run.end - 1);
                y_min[label] = std::min(y_min[label], static_cast<std::int32_t>(y));
                y_max[label] = static_cast<std::int32_t>(y);  // rows arrive in order
                if (variance) {
                    variance_sum[label] +=
                        sum_segment(variance + y * width + run.begin, run.end - run.begin);
                }
            }
        }
    }
    if (!measure) return;

    const std::int64_t largest = count > 0 ? *std::max_element(area.begin() + 1, area.end()) : 0;
    for (std::int32_t label = 1; label <= count; ++label) {
        const std::int32_t i = label - 1;
        const std::int32_t box_w = x_max[label] - x_min[label] + 1;
        const std::int32_t box_h = y_max[label] - y_min[label] + 1;
        const double pixels = static_cast<double>(area[label]);
        const double diagonal_sq =
            static_cast<double>(box_w) * box_w + static_cast<double>(box_h) * box_h;
        const double eps = variance_sum[label] / pixels;
        stats->area[i] = area[label];
        stats->bbox[4 * i] = x_min[label];
        stats->bbox[4 * i + 1] = y_min[label];
        stats->bbox[4 * i + 2] = box_w;
        stats->bbox[4 * i + 3] = box_h;
        stats->diagonal[i] = std::sqrt(diagonal_sq);
        stats->mi[i] = diagonal_sq / pixels;
        stats->mean_variance[i] = eps;
        stats->po[i] = static_cast<double>(largest) / pixels * eps;
    }
}

void fill_holes(const std::uint8_t* mask, std::int64_t height, std::int64_t width,
                std::uint8_t* filled) {
    // Holes are the 4-connected zero regions; the foreground is thus 8-connected, the usual
    // dual pair, so a one-pixel diagonal gap in a ring does not leak.
    const RunComponents background = find_components(mask, height, width, 4, false);
    std::vector<std::uint8_t> reaches_border(background.count + 1, 0);
    for (std::int64_t y = 0; y < height; ++y) {
        const bool edge_row = y == 0 || y == height - 1;
        for (std::int64_t r = background.row_start[y]; r < background.row_start[y + 1]; ++r) {
            const Run run = background.runs[r];
            if (edge_row || run.begin == 0 || run.end == width) {
                reaches_border[background.run_label[r]] = 1;
            }
        }
    }
    for (std::int64_t y = 0; y < height; ++y) {
        std::uint8_t* row = filled + y * width;
        std::fill(row, row + width, std::uint8_t{1});
        for (std::int64_t r = background.row_start[y]; r < background.row_start[y + 1]; ++r) {
            if (reaches_border[background.run_label[r]]) {
                const Run run = background.runs[r];
                std::fill(row + run.begin, row + run.end, std::uint8_t{0});
            }
        }
    }
}

}  // namespace masksegx
