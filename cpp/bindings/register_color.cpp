#include "array_checks.hpp"
#include "masksegx/color.hpp"

#include <string>

namespace py = pybind11;
using masksegx::bindings::parse_order;
using masksegx::bindings::require_image;

namespace {

py::tuple spectral_maps(const py::handle& image_obj, const std::string& order_name, bool with_hsi) {
    const auto order = parse_order(order_name);
    auto image = require_image<std::uint8_t>(image_obj, "image", 3);
    const py::ssize_t h = image.shape(0), w = image.shape(1);
    py::array_t<float> hue, saturation, intensity;
    if (with_hsi) {
        hue = py::array_t<float>({h, w});
        saturation = py::array_t<float>({h, w});
        intensity = py::array_t<float>({h, w});
    }
    py::array_t<float> nbri({h, w}), nmri({h, w});
    masksegx::SpectralOutputs out;
    if (with_hsi) {
        out.hue = hue.mutable_data();
        out.saturation = saturation.mutable_data();
        out.intensity = intensity.mutable_data();
    }
    out.nbri = nbri.mutable_data();
    out.nmri = nmri.mutable_data();
    const std::uint8_t* pixels = image.data();
    {
        py::gil_scoped_release release;
        masksegx::spectral_maps(pixels, static_cast<std::int64_t>(h) * w, order, out);
    }
    if (!with_hsi) return py::make_tuple(py::none(), py::none(), py::none(), nbri, nmri);
    return py::make_tuple(hue, saturation, intensity, nbri, nmri);
}

py::array_t<float> rgb_to_hsi(const py::handle& image_obj, const std::string& order_name) {
    const auto order = parse_order(order_name);
    auto image = require_image<std::uint8_t>(image_obj, "image", 3);
    const py::ssize_t h = image.shape(0), w = image.shape(1);
    py::array_t<float> hsi({h, w, static_cast<py::ssize_t>(3)});
    const std::uint8_t* pixels = image.data();
    masksegx::SpectralOutputs out;
    out.hue = hsi.mutable_data();
    out.saturation = out.hue + 1;
    out.intensity = out.hue + 2;
    out.hsi_stride = 3;
    {
        py::gil_scoped_release release;
        masksegx::spectral_maps(pixels, static_cast<std::int64_t>(h) * w, order, out);
    }
    return hsi;
}

}  // namespace

void register_color(py::module_& m) {
    m.def("spectral_maps", &spectral_maps, py::arg("image"), py::arg("order") = "bgr",
          py::arg("with_hsi") = true,
          "One pass over a uint8 HxWx3 image: (hue, saturation, intensity, nbri, nmri) as "
          "float32 HxW maps; the HSI maps are None when with_hsi is False.");
    m.def("rgb_to_hsi", &rgb_to_hsi, py::arg("image"), py::arg("order") = "bgr",
          "uint8 HxWx3 image to float32 HxWx3 HSI (hue in [0,1), saturation and intensity in "
          "[0,1]).");
}
