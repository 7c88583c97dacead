#include "array_checks.hpp"
#include "masksegx/nn.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace py = pybind11;
using masksegx::bindings::kMaxSide;
using masksegx::bindings::require_array;

namespace {

using Pair = std::pair<std::int64_t, std::int64_t>;
using F32 = py::array_t<float, py::array::c_style>;

masksegx::Tensor4Shape shape_of(const F32& x) {
    return {x.shape(0), x.shape(1), x.shape(2), x.shape(3)};
}

// The result array: a fresh one, or `out` (float32, C-contiguous, exactly that shape; callers
// that run the same layer again and again pass it to skip allocating and faulting new pages).
F32 output_array(const py::object& out_obj, std::vector<py::ssize_t> shape) {
    if (out_obj.is_none()) return F32(shape);
    auto out = require_array<float>(out_obj, "out", 1, 4);
    bool same = out.ndim() == static_cast<py::ssize_t>(shape.size());
    for (py::ssize_t d = 0; same && d < out.ndim(); ++d) same = out.shape(d) == shape[d];
    if (!same) throw py::value_error("out: the shape does not match the result");
    if (!out.writeable()) throw py::value_error("out: array is read-only");
    return out;
}

void require_vector(const F32& v, const char* name, py::ssize_t length, const char* what) {
    if (v.ndim() != 1 || v.shape(0) != length) {
        throw py::value_error(std::string(name) + ": expected shape (" + std::to_string(length) +
                              ",) to match " + what);
    }
}

// An optional 1-D float32 argument of the given length; null when None.
const float* optional_vector(const py::object& obj, F32& holder, const char* name,
                             py::ssize_t length, const char* what) {
    if (obj.is_none()) return nullptr;
    holder = require_array<float>(obj, name, 1, 1);
    require_vector(holder, name, length, what);
    return holder.data();
}

py::array_t<float> conv2d(const py::handle& x_obj, const py::handle& weight_obj,
                          const py::object& bias_obj, Pair stride, Pair padding,
                          std::int64_t groups, const py::object& slope_obj,
                          const py::object& out_obj) {
    auto x = require_array<float>(x_obj, "x", 4, 4);
    auto weight = require_array<float>(weight_obj, "weight", 4, 4);
    if (groups < 1 || x.shape(1) % groups != 0) {
        throw py::value_error("groups: must be at least 1 and divide the " +
                              std::to_string(x.shape(1)) + " input channels, got " +
                              std::to_string(groups));
    }
    if (weight.shape(1) * groups != x.shape(1)) {
        throw py::value_error("weight: expected shape[1] == channels / groups == " +
                              std::to_string(x.shape(1) / groups) + ", got " +
                              std::to_string(weight.shape(1)));
    }
    F32 bias_holder;
    const float* bias =
        optional_vector(bias_obj, bias_holder, "bias", weight.shape(0), "weight.shape[0]");
    F32 slope_holder;
    const float* slope =
        optional_vector(slope_obj, slope_holder, "slope", weight.shape(0), "weight.shape[0]");
    masksegx::Conv2dSpec spec;
    spec.out_channels = weight.shape(0);
    spec.kernel_h = weight.shape(2);
    spec.kernel_w = weight.shape(3);
    spec.stride_h = stride.first;
    spec.stride_w = stride.second;
    spec.pad_h = padding.first;
    spec.pad_w = padding.second;
    spec.groups = groups;
    const auto in = shape_of(x);
    // std::invalid_argument -> ValueError
    const auto out = masksegx::conv2d_output_shape(in, spec);
    F32 result = output_array(out_obj, {out.n, out.c, out.h, out.w});
    const float* x_data = x.data();
    const float* w_data = weight.data();
    float* out_data = result.mutable_data();
    {
        py::gil_scoped_release release;
        masksegx::conv2d(x_data, in, w_data, bias, spec, out_data, slope);
    }
    return result;
}

py::array_t<float> max_pool2d(const py::handle& x_obj, Pair kernel, Pair stride,
                              const py::object& out_obj) {
    auto x = require_array<float>(x_obj, "x", 4, 4);
    const masksegx::Pool2dSpec spec{kernel.first, kernel.second, stride.first, stride.second};
    const auto in = shape_of(x);
    const auto out = masksegx::max_pool2d_output_shape(in, spec);
    F32 result = output_array(out_obj, {out.n, out.c, out.h, out.w});
    const float* x_data = x.data();
    float* out_data = result.mutable_data();
    {
        py::gil_scoped_release release;
        masksegx::max_pool2d(x_data, in, spec, out_data);
    }
    return result;
}

// Returns `x` itself when inplace, else a fresh copy to work on.
F32 target_array(const F32& x, bool inplace) {
    if (inplace) return x;
    F32 copy(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    std::copy(x.data(), x.data() + x.size(), copy.mutable_data());
    return copy;
}

py::array_t<float> upsample_linear2x(const py::handle& x_obj) {
    auto x = require_array<float>(x_obj, "x", 4, 4);
    const auto in = shape_of(x);
    if (in.n < 1 || in.c < 1 || in.h < 1 || in.w < 1 || 2 * std::max(in.h, in.w) > kMaxSide) {
        throw py::value_error(
            "x: expected a non-empty [N, C, H, W] array with 2 H and 2 W at most " +
            std::to_string(kMaxSide));
    }
    F32 result({in.n, in.c, 2 * in.h, 2 * in.w});
    const float* x_data = x.data();
    float* out_data = result.mutable_data();
    {
        py::gil_scoped_release release;
        masksegx::upsample_linear2x(x_data, in.n * in.c, in.h, in.w, out_data);
    }
    return result;
}

F32 prelu(const py::handle& x_obj, const py::handle& slope_obj, bool inplace) {
    auto x = require_array<float>(x_obj, "x", 2, 4);
    auto slope = require_array<float>(slope_obj, "slope", 1, 1);
    require_vector(slope, "slope", x.shape(1), "the channels x.shape[1]");
    F32 out = target_array(x, inplace);
    float* data = out.mutable_data();
    const std::int64_t n = x.shape(0), c = x.shape(1), plane = x.size() / (n * c);
    const float* s = slope.data();
    {
        py::gil_scoped_release release;
        masksegx::prelu(data, n, c, plane, s);
    }
    return out;
}

F32 relu(const py::handle& x_obj, bool inplace) {
    auto x = require_array<float>(x_obj, "x", 1, 4);
    F32 out = target_array(x, inplace);
    float* data = out.mutable_data();
    const std::int64_t count = x.size();
    {
        py::gil_scoped_release release;
        masksegx::relu(data, count);
    }
    return out;
}

py::array_t<float> fully_connected(const py::handle& x_obj, const py::handle& weight_obj,
                                   const py::object& bias_obj) {
    auto x = require_array<float>(x_obj, "x", 2, 2);
    auto weight = require_array<float>(weight_obj, "weight", 2, 2);
    if (weight.shape(1) != x.shape(1)) {
        throw py::value_error("weight: expected shape (M, " + std::to_string(x.shape(1)) +
                              ") to match x.shape[1], got shape[1] " +
                              std::to_string(weight.shape(1)));
    }
    F32 bias_holder;
    const float* bias =
        optional_vector(bias_obj, bias_holder, "bias", weight.shape(0), "weight.shape[0]");
    const std::int64_t n = x.shape(0), k = x.shape(1), m = weight.shape(0);
    py::array_t<float> result({n, m});
    const float* x_data = x.data();
    const float* w_data = weight.data();
    float* out_data = result.mutable_data();
    {
        py::gil_scoped_release release;
        masksegx::fully_connected(x_data, n, k, w_data, m, bias, out_data);
    }
    return result;
}

F32 softmax(const py::handle& x_obj, int axis) {
    auto x = require_array<float>(x_obj, "x", 1, 4);
    const int ndim = static_cast<int>(x.ndim());
    if (axis < -ndim || axis >= ndim) {
        throw py::value_error("axis: " + std::to_string(axis) + " is out of range for " +
                              std::to_string(ndim) + " dimensions");
    }
    if (axis < 0) axis += ndim;
    std::int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= x.shape(d);
    for (int d = axis + 1; d < ndim; ++d) inner *= x.shape(d);
    const std::int64_t axis_len = x.shape(axis);
    F32 result(std::vector<py::ssize_t>(x.shape(), x.shape() + ndim));
    const float* x_data = x.data();
    float* out_data = result.mutable_data();
    {
        py::gil_scoped_release release;
        masksegx::softmax(x_data, outer, axis_len, inner, out_data);
    }
    return result;
}

// Checked before the output is allocated: (65535, 65535) for a few boxes is tens of gigabytes.
void require_output_size(Pair size) {
    if (size.first < 1 || size.second < 1 || size.first > kMaxSide || size.second > kMaxSide) {
        throw py::value_error("size: expected (height, width) in [1, " + std::to_string(kMaxSide) +
                              "], got (" + std::to_string(size.first) + ", " +
                              std::to_string(size.second) + ")");
    }
}

// Integer crop boxes (x0, y0, x1, y1) as an (N, 4) int64 array.
auto require_boxes(const py::handle& boxes_obj) {
    auto boxes = require_array<std::int64_t>(boxes_obj, "boxes", 2, 2);
    if (boxes.shape(1) != 4) {
        throw py::value_error("boxes: expected shape (N, 4), got (" +
                              std::to_string(boxes.shape(0)) + ", " +
                              std::to_string(boxes.shape(1)) + ")");
    }
    return boxes;
}

py::array_t<float> resize_area_boxes(const py::handle& image_obj, const py::handle& boxes_obj,
                                     Pair size, const py::object& out_obj) {
    auto image = require_array<float>(image_obj, "image", 3, 3);
    auto boxes = require_boxes(boxes_obj);
    require_output_size(size);
    const std::int64_t c = image.shape(0), h = image.shape(1), w = image.shape(2);
    const std::int64_t n = boxes.shape(0);
    F32 result = output_array(out_obj, {n, c, size.first, size.second});
    const float* image_data = image.data();
    const std::int64_t* box_data = boxes.data();
    float* out_data = result.mutable_data();
    {
        py::gil_scoped_release release;
        masksegx::resize_area_boxes(image_data, c, h, w, box_data, n, size.first, size.second,
                                    out_data);
    }
    return result;
}

py::array_t<float> resize_area_boxes_u8(const py::handle& image_obj, const py::handle& boxes_obj,
                                        Pair size, bool reverse_channels, float scale, float offset,
                                        const py::object& out_obj) {
    auto image = require_array<std::uint8_t>(image_obj, "image", 3, 3);
    auto boxes = require_boxes(boxes_obj);
    require_output_size(size);
    const std::int64_t h = image.shape(0), w = image.shape(1), c = image.shape(2);
    const std::int64_t n = boxes.shape(0);
    F32 result = output_array(out_obj, {n, c, size.first, size.second});
    const std::uint8_t* image_data = image.data();
    const std::int64_t* box_data = boxes.data();
    float* out_data = result.mutable_data();
    {
        py::gil_scoped_release release;
        masksegx::resize_area_boxes_u8(image_data, h, w, c, reverse_channels, scale, offset,
                                       box_data, n, size.first, size.second, out_data);
    }
    return result;
}

}  // namespace

void register_nn(py::module_& m) {
    m.def("conv2d", &conv2d, py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(),
          py::arg("stride") = Pair{1, 1}, py::arg("padding") = Pair{0, 0}, py::arg("groups") = 1,
          py::arg("slope") = py::none(), py::arg("out") = py::none(),
          "float32 NCHW convolution with ONNX weights [M, C/groups, kh, kw] -> [N, M, Ho, Wo];\n"
          "slope [M]: PReLU fused into the convolution.");
    m.def("resize_area_boxes", &resize_area_boxes, py::arg("image"), py::arg("boxes"),
          py::arg("size"), py::arg("out") = py::none(),
          "Area resampling of int64 boxes [N, 4] (x0, y0, x1, y1, end exclusive) of a planar\n"
          "float32 image [C, H, W] to size (height, width) -> float32 [N, C, height, width].");
    m.def("resize_area_boxes_u8", &resize_area_boxes_u8, py::arg("image"), py::arg("boxes"),
          py::arg("size"), py::arg("reverse_channels") = false, py::arg("scale") = 1.0f,
          py::arg("offset") = 0.0f, py::arg("out") = py::none(),
          "The same from an interleaved uint8 image [H, W, C] (channels reversed on request),\n"
          "each output scale * mean + offset -> planar float32 [N, C, height, width].");
    m.def("max_pool2d", &max_pool2d, py::arg("x"), py::arg("kernel"), py::arg("stride"),
          py::arg("out") = py::none(),
          "float32 NCHW max pooling, ceil mode, no padding (windows clipped to the input).");
    m.def("upsample_linear2x", &upsample_linear2x, py::arg("x"),
          "Bilinear 2x enlargement of float32 [N, C, H, W] (half-pixel centres, clamped edges).");
    m.def("prelu", &prelu, py::arg("x"), py::arg("slope"), py::arg("inplace") = false,
          "x > 0 ? x : slope[c] * x over channel axis 1 of a 2- to 4-D float32 array.");
    m.def("relu", &relu, py::arg("x"), py::arg("inplace") = false, "max(x, 0) for float32 x.");
    m.def("fully_connected", &fully_connected, py::arg("x"), py::arg("weight"),
          py::arg("bias") = py::none(),
          "x [N, K] @ weight[M, K].T + bias [M] (ONNX Gemm, transB=1) -> float32 [N, M].");
    m.def("softmax", &softmax, py::arg("x"), py::arg("axis") = 1,
          "Softmax of a 1- to 4-D float32 array along `axis`.");
    m.def(
        "simd_level", [] { return std::string(masksegx::simd_level_name(masksegx::simd_level())); },
        "Instruction set the nn kernels use now: 'avx512', 'avx2', 'neon' or 'scalar'.");
    m.def("set_simd", &masksegx::set_simd_enabled, py::arg("enabled"),
          "Enable (default) or disable the SIMD paths of the nn kernels, process-wide.");
}
