#include "array_checks.hpp"
#include "masksegx/nms.hpp"

#include <cmath>
#include <string>

namespace py = pybind11;
using masksegx::bindings::require_array;

namespace {

masksegx::OverlapMode parse_mode(const std::string& mode) {
    if (mode == "union") return masksegx::OverlapMode::Union;
    if (mode == "min") return masksegx::OverlapMode::Min;
    throw py::value_error("mode: expected 'union' or 'min', got '" + mode + "'");
}

py::array_t<std::int64_t> nms(const py::handle& boxes_obj, const py::handle& scores_obj,
                              double iou_threshold, const std::string& mode_name) {
    const auto mode = parse_mode(mode_name);
    auto boxes = require_array<float>(boxes_obj, "boxes", 2, 2);
    auto scores = require_array<float>(scores_obj, "scores", 1, 1);
    if (boxes.shape(1) != 4) {
        throw py::value_error("boxes: expected shape (N, 4), got (" +
                              std::to_string(boxes.shape(0)) + ", " +
                              std::to_string(boxes.shape(1)) + ")");
    }
    if (scores.shape(0) != boxes.shape(0)) {
        throw py::value_error("scores: expected " + std::to_string(boxes.shape(0)) +
                              " scores (one per box), got " + std::to_string(scores.shape(0)));
    }
    if (!std::isfinite(iou_threshold)) {
        throw py::value_error("iou_threshold: must be a finite number");
    }
    const std::int64_t n = boxes.shape(0);
    py::array_t<std::int64_t> keep(n);
    const float* box_data = boxes.data();
    const float* score_data = scores.data();
    std::int64_t* keep_data = keep.mutable_data();
    std::int64_t kept = 0;
    {
        py::gil_scoped_release release;
        kept = masksegx::nms(box_data, score_data, n, iou_threshold, mode, keep_data);
    }
    keep.resize({kept});
    return keep;
}

}  // namespace

void register_nms(py::module_& m) {
    m.def("nms", &nms, py::arg("boxes"), py::arg("scores"), py::arg("iou_threshold"),
          py::arg("mode") = "union",
          "Greedy NMS of float32 (N, 4) x1, y1, x2, y2 boxes (+1 pixel convention); returns "
          "the int64 indices kept, best score first.");
}
