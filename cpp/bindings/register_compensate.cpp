#include "array_checks.hpp"
#include "masksegx/compensate.hpp"

#include <string>

namespace py = pybind11;
using masksegx::bindings::parse_order;
using masksegx::bindings::require_image;
using masksegx::bindings::require_mask_like;

namespace {

// An image and its region mask, checked against each other.
struct ImageAndRegion {
    py::array_t<std::uint8_t, py::array::c_style> image;
    py::array_t<bool, py::array::c_style> region;
    py::ssize_t height, width;

    ImageAndRegion(const py::handle& image_obj, const py::handle& region_obj)
        : image(require_image<std::uint8_t>(image_obj, "image", 3)),
          region(require_mask_like<bool>(region_obj, "region", image.shape(0), image.shape(1))),
          height(image.shape(0)),
          width(image.shape(1)) {}

    const std::uint8_t* pixels() const { return image.data(); }
    // numpy bools are single 0/1 bytes, the layout the kernels take.
    const std::uint8_t* mask() const {
        return reinterpret_cast<const std::uint8_t*>(region.data());
    }
    std::int64_t n_pixels() const { return static_cast<std::int64_t>(height) * width; }
    py::array_t<std::uint8_t> new_image() const {
        return py::array_t<std::uint8_t>({height, width, py::ssize_t(3)});
    }
};

py::array_t<double> vector3(const double values[3]) {
    py::array_t<double> out(3);
    for (int c = 0; c < 3; ++c) out.mutable_at(c) = values[c];
    return out;
}

py::array_t<std::uint8_t> blue_suppression(const py::handle& image_obj,
                                           const py::handle& region_obj, double mu,
                                           const std::string& order_name) {
    const auto order = parse_order(order_name);
    const ImageAndRegion in(image_obj, region_obj);
    auto out = in.new_image();
    std::uint8_t* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
        masksegx::blue_suppression(in.pixels(), in.mask(), in.n_pixels(), order, mu, dst);
    }
    return out;
}

py::array_t<double> minkowski_illuminant(const py::handle& image_obj, const py::handle& region_obj,
                                         double t, double scale) {
    const ImageAndRegion in(image_obj, region_obj);
    double illuminant[3];
    {
        py::gil_scoped_release release;
        masksegx::minkowski_illuminant(in.pixels(), in.mask(), in.n_pixels(), t, scale, illuminant);
    }
    return vector3(illuminant);
}

py::array_t<std::uint8_t> gray_world_minkowski(const py::handle& image_obj,
                                               const py::handle& region_obj, double t) {
    const ImageAndRegion in(image_obj, region_obj);
    auto out = in.new_image();
    std::uint8_t* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
        masksegx::gray_world_minkowski(in.pixels(), in.mask(), in.n_pixels(), t, dst);
    }
    return out;
}

py::tuple compensate_region(const py::handle& image_obj, const py::handle& region_obj, double mu,
                            double t, double strength, const std::string& order_name) {
    const auto order = parse_order(order_name);
    const ImageAndRegion in(image_obj, region_obj);
    auto out = in.new_image();
    std::uint8_t* dst = out.mutable_data();
    masksegx::CompensationStats stats;
    {
        py::gil_scoped_release release;
        stats = masksegx::compensate_region(in.pixels(), in.mask(), in.n_pixels(), order, mu, t,
                                            strength, dst);
    }
    return py::make_tuple(out, vector3(stats.gain), vector3(stats.illuminant_region),
                          vector3(stats.illuminant_background));
}

}  // namespace

void register_compensate(py::module_& m) {
    m.def("blue_suppression", &blue_suppression, py::arg("image"), py::arg("region"),
          py::arg("mu") = 0.8, py::arg("order") = "bgr",
          "Eq. 18: copy of a uint8 HxWx3 image whose blue channel inside the bool HxW region "
          "is mu * B, rounded (ties to even) and saturated.");
    m.def("minkowski_illuminant", &minkowski_illuminant, py::arg("image"), py::arg("region"),
          py::arg("t") = 6.0, py::arg("scale") = 1.0,
          "Eq. 19-20: per-channel scale * mean(v^t)^(1/t) over the region, float64 (3,) in the "
          "image's channel order; t = inf gives the maximum.");
    m.def("gray_world_minkowski", &gray_world_minkowski, py::arg("image"), py::arg("region"),
          py::arg("t") = 6.0,
          "Eq. 21: region pixels times l(background) / l(region) per channel, uint8 HxWx3.");
    m.def("compensate_region", &compensate_region, py::arg("image"), py::arg("region"),
          py::arg("mu") = 0.8, py::arg("t") = 6.0, py::arg("strength") = 1.0,
          py::arg("order") = "bgr",
          "Blue suppression then Minkowski gray world of the region (gains raised to strength): "
          "(image, gain, illuminant_region, illuminant_background), the last three float64 (3,).");
}
