#include "array_checks.hpp"
#include "masksegx/filters.hpp"

#include <string>

namespace py = pybind11;
using masksegx::bindings::require_image;

namespace {

template <class T>
py::array_t<float> local_variance_of(const py::handle& values_obj, std::int64_t window) {
    auto values = require_image<T>(values_obj, "values", 0);
    const py::ssize_t h = values.shape(0), w = values.shape(1);
    py::array_t<float> out({h, w});
    const T* src = values.data();
    float* dst = out.mutable_data();
    {
        py::gil_scoped_release release;
        masksegx::local_variance(src, h, w, window, dst);
    }
    return out;
}

py::array_t<float> local_variance(const py::handle& values_obj, std::int64_t window) {
    if (py::isinstance<py::array>(values_obj)) {
        const auto dtype = py::reinterpret_borrow<py::array>(values_obj).dtype();
        if (dtype.is(py::dtype::of<std::uint8_t>())) {
            return local_variance_of<std::uint8_t>(values_obj, window);
        }
        if (!dtype.is(py::dtype::of<float>())) {
            throw py::type_error("values: expected dtype uint8 or float32, got " +
                                 std::string(py::str(dtype)));
        }
    }
    return local_variance_of<float>(values_obj, window);
}

}  // namespace

void register_filters(py::module_& m) {
    m.def("local_variance", &local_variance, py::arg("values"), py::arg("window") = 5,
          "Variance of the window x window box around each pixel of a uint8 or float32 HxW "
          "map (reflect-101 borders), float32 HxW.");
}
