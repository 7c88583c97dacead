#include "array_checks.hpp"
#include "masksegx/regions.hpp"

#include <cstdint>

namespace py = pybind11;
using masksegx::bindings::require_image;
using masksegx::bindings::require_mask_like;

namespace {

// numpy bools are one byte each, 0 or 1: the kernels read them as bytes.
const std::uint8_t* mask_bytes(const py::array_t<bool, py::array::c_style>& mask) {
    return reinterpret_cast<const std::uint8_t*>(mask.data());
}

py::tuple label_components(const py::handle& mask_obj, int connectivity) {
    auto mask = require_image<bool>(mask_obj, "mask", 0);
    const py::ssize_t h = mask.shape(0), w = mask.shape(1);
    py::array_t<std::int32_t> labels({h, w});
    std::int32_t* out = labels.mutable_data();
    const std::uint8_t* pixels = mask_bytes(mask);
    std::int32_t count = 0;
    {
        py::gil_scoped_release release;
        const auto components = masksegx::find_components(pixels, h, w, connectivity);
        masksegx::write_components(components, nullptr, out, nullptr);
        count = components.count;
    }
    return py::make_tuple(labels, count);
}

py::tuple analyze_components(const py::handle& mask_obj, const py::handle& variance_obj,
                             int connectivity) {
    auto mask = require_image<bool>(mask_obj, "mask", 0);
    const py::ssize_t h = mask.shape(0), w = mask.shape(1);
    py::array_t<float, py::array::c_style> variance;
    const float* variance_data = nullptr;
    if (!variance_obj.is_none()) {
        variance = require_mask_like<float>(variance_obj, "variance", h, w);
        variance_data = variance.data();
    }
    const std::uint8_t* pixels = mask_bytes(mask);
    masksegx::RunComponents components;
    {
        py::gil_scoped_release release;
        components = masksegx::find_components(pixels, h, w, connectivity);
    }
    const py::ssize_t n = components.count;
    py::array_t<std::int32_t> labels({h, w});
    py::array_t<std::int64_t> area(n);
    py::array_t<std::int32_t> bbox({n, static_cast<py::ssize_t>(4)});
    py::array_t<double> diagonal(n), mi(n), mean_variance(n), po(n);
    masksegx::ComponentStats stats;
    stats.area = area.mutable_data();
    stats.bbox = bbox.mutable_data();
    stats.diagonal = diagonal.mutable_data();
    stats.mi = mi.mutable_data();
    stats.mean_variance = mean_variance.mutable_data();
    stats.po = po.mutable_data();
    std::int32_t* out = labels.mutable_data();
    {
        py::gil_scoped_release release;
        masksegx::write_components(components, variance_data, out, &stats);
    }
    return py::make_tuple(labels, area, bbox, diagonal, mi, mean_variance, po);
}

py::array_t<bool> fill_holes(const py::handle& mask_obj) {
    auto mask = require_image<bool>(mask_obj, "mask", 0);
    const py::ssize_t h = mask.shape(0), w = mask.shape(1);
    py::array_t<bool> filled({h, w});
    auto* out = reinterpret_cast<std::uint8_t*>(filled.mutable_data());
    const std::uint8_t* pixels = mask_bytes(mask);
    {
        py::gil_scoped_release release;
        masksegx::fill_holes(pixels, h, w, out);
    }
    return filled;
}

}  // namespace

void register_regions(py::module_& m) {
    m.def("label_components", &label_components, py::arg("mask"), py::arg("connectivity") = 8,
          "bool HxW mask -> (int32 HxW labels, count); components numbered 1..count in raster "
          "order of their first pixel, 0 = background.");
    m.def("analyze_components", &analyze_components, py::arg("mask"),
          py::arg("variance") = py::none(), py::arg("connectivity") = 8,
          "bool HxW mask (+ optional float32 HxW variance) -> (labels, area, bbox, diagonal, mi, "
          "mean_variance, po), one labelling pass and one measuring pass.");
    m.def("fill_holes", &fill_holes, py::arg("mask"),
          "bool HxW mask with every 4-connected background region not touching the border set.");
}
