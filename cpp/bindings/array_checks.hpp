// Argument checks shared by the binding files: every array that reaches a kernel has the
// dtype, rank, channel count and layout the kernel assumes, or Python gets a clear error.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "masksegx/color.hpp"

namespace masksegx::bindings {

namespace py = pybind11;

// Largest image side accepted by any kernel; protects int32 label maps and index math.
constexpr py::ssize_t kMaxSide = 1 << 15;

template <class T>
const char* dtype_name();
template <> inline const char* dtype_name<std::uint8_t>() { return "uint8"; }
template <> inline const char* dtype_name<float>() { return "float32"; }
template <> inline const char* dtype_name<double>() { return "float64"; }
template <> inline const char* dtype_name<std::int32_t>() { return "int32"; }
template <> inline const char* dtype_name<std::int64_t>() { return "int64"; }
template <> inline const char* dtype_name<bool>() { return "bool"; }

// Returns `obj` as an array of exactly dtype T (no silent casts), C-contiguous,
// with ndim in [min_ndim, max_ndim]; `name` is the argument name used in messages.
template <class T>
py::array_t<T, py::array::c_style> require_array(const py::handle& obj, const char* name,
                                                 int min_ndim, int max_ndim) {
    if (!py::isinstance<py::array>(obj)) {
        throw py::type_error(std::string(name) + ": expected a numpy array, got " +
                             std::string(py::str(py::type::of(obj).attr("__name__"))));
    }
    auto arr = py::reinterpret_borrow<py::array>(obj);
    // Equality, not identity: equal dtype objects (e.g. from np.frombuffer) are distinct objects.
    if (!arr.dtype().equal(py::dtype::of<T>())) {
        throw py::type_error(std::string(name) + ": expected dtype " + dtype_name<T>() + ", got " +
                             std::string(py::str(arr.dtype())));
    }
    if (arr.ndim() < min_ndim || arr.ndim() > max_ndim) {
        throw py::value_error(std::string(name) + ": expected " + std::to_string(min_ndim) +
                              (min_ndim == max_ndim ? "" : " to " + std::to_string(max_ndim)) +
                              " dimensions, got " + std::to_string(arr.ndim()));
    }
    if (!(arr.flags() & py::array::c_style)) {
        throw py::value_error(std::string(name) +
                              ": expected a C-contiguous array (use numpy.ascontiguousarray)");
    }
    for (py::ssize_t d = 0; d < arr.ndim(); ++d) {
        if (arr.shape(d) == 0) {
            throw py::value_error(std::string(name) + ": array is empty");
        }
    }
    return py::array_t<T, py::array::c_style>::ensure(arr);
}

// An HxW or HxWxC image with side lengths within kMaxSide.
template <class T>
py::array_t<T, py::array::c_style> require_image(const py::handle& obj, const char* name,
                                                 int channels) {
    auto arr = require_array<T>(obj, name, channels == 0 ? 2 : 3, channels == 0 ? 2 : 3);
    if (channels > 0 && arr.shape(2) != channels) {
        throw py::value_error(std::string(name) + ": expected " + std::to_string(channels) +
                              " channels, got " + std::to_string(arr.shape(2)));
    }
    if (arr.shape(0) > kMaxSide || arr.shape(1) > kMaxSide) {
        throw py::value_error(std::string(name) + ": image side exceeds " +
                              std::to_string(kMaxSide) + " pixels");
    }
    return arr;
}

// A 2-D mask with the same height and width as a reference image.
template <class T>
py::array_t<T, py::array::c_style> require_mask_like(const py::handle& obj, const char* name,
                                                     py::ssize_t height, py::ssize_t width) {
    auto arr = require_array<T>(obj, name, 2, 2);
    if (arr.shape(0) != height || arr.shape(1) != width) {
        throw py::value_error(std::string(name) + ": expected shape (" + std::to_string(height) +
                              ", " + std::to_string(width) + "), got (" +
                              std::to_string(arr.shape(0)) + ", " + std::to_string(arr.shape(1)) +
                              ")");
    }
    return arr;
}

// The `order` argument of colour kernels: which end of the pixel holds blue.
inline ChannelOrder parse_order(const std::string& order) {
    if (order == "bgr") return ChannelOrder::BGR;
    if (order == "rgb") return ChannelOrder::RGB;
    throw py::value_error("order: expected 'bgr' or 'rgb', got '" + order + "'");
}

}  // namespace masksegx::bindings
