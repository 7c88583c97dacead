// masksegx._core: the compiled kernels. Each concept registers itself from its own file.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_color(py::module_& m);
void register_compensate(py::module_& m);
void register_filters(py::module_& m);
void register_regions(py::module_& m);
void register_fcm(py::module_& m);
void register_nn(py::module_& m);
void register_nms(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "masksegx compiled kernels (private; use the masksegx.* wrappers).";
    register_color(m);
    register_compensate(m);
    register_filters(m);
    register_regions(m);
    register_fcm(m);
    register_nn(m);
    register_nms(m);
}
