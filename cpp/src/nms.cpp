#include "masksegx/nms.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace masksegx {

std::int64_t nms(const float* boxes, const float* scores, std::int64_t n, double threshold,
                 OverlapMode mode, std::int64_t* keep) {
    if (n < 0) throw std::invalid_argument("nms: negative box count");
    std::vector<std::int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [scores](std::int64_t a, std::int64_t b) { return scores[a] > scores[b]; });

    // Boxes in score order, one array per coordinate, so the suppression pass over all later
    // boxes is a branch-free loop the compiler can vectorise.
    std::vector<double> x1(n), y1(n), x2(n), y2(n), area(n);
    for (std::int64_t r = 0; r < n; ++r) {
        const float* box = boxes + 4 * order[r];
        x1[r] = box[0];
        y1[r] = box[1];
        x2[r] = box[2];
        y2[r] = box[3];
        area[r] = (x2[r] - x1[r] + 1.0) * (y2[r] - y1[r] + 1.0);
    }
    std::vector<unsigned char> suppressed(n, 0);
    std::int64_t kept = 0;
    for (std::int64_t r = 0; r < n; ++r) {
        if (suppressed[r]) continue;
        keep[kept++] = order[r];
        for (std::int64_t s = r + 1; s < n; ++s) {
            const double w = std::max(0.0, std::min(x2[r], x2[s]) - std::max(x1[r], x1[s]) + 1.0);
            const double h = std::max(0.0, std::min(y2[r], y2[s]) - std::max(y1[r], y1[s]) + 1.0);
            const double inter = w * h;
            const double denominator =
                mode == OverlapMode::Min ? std::min(area[r], area[s]) : area[r] + area[s] - inter;
            suppressed[s] |= static_cast<unsigned char>(inter / denominator > threshold);
        }
    }
    return kept;
}

}  // namespace masksegx
