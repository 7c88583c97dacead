#include "array_checks.hpp"
#include "masksegx/fcm.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

namespace py = pybind11;
using masksegx::bindings::require_array;

namespace {

void check_clusters(int clusters, py::ssize_t n_points) {
    if (clusters < 1 || clusters > n_points) {
        throw py::value_error("k: expected 1 <= k <= number of points (" +
                              std::to_string(n_points) + "), got " + std::to_string(clusters));
    }
}

py::tuple fuzzy_cmeans(const py::handle& features_obj, int clusters, double fuzziness,
                       double tolerance, int max_iterations, std::uint64_t seed,
                       const py::handle& init_centers_obj) {
    auto features = require_array<float>(features_obj, "features", 2, 2);
    const py::ssize_t n = features.shape(0), dims = features.shape(1);
    check_clusters(clusters, n);
    py::array_t<float> centers({static_cast<py::ssize_t>(clusters), dims});
    float* center_data = centers.mutable_data();
    const bool seeded = init_centers_obj.is_none();
    if (!seeded) {
        auto init = require_array<float>(init_centers_obj, "init_centers", 2, 2);
        if (init.shape(0) != clusters || init.shape(1) != dims) {
            throw py::value_error("init_centers: expected shape (" + std::to_string(clusters) +
                                  ", " + std::to_string(dims) + ")");
        }
        std::copy(init.data(), init.data() + clusters * dims, center_data);
    }
    py::array_t<float> memberships({n, static_cast<py::ssize_t>(clusters)});
    float* membership_data = memberships.mutable_data();
    const float* points = features.data();
    masksegx::FcmSettings settings;
    settings.clusters = clusters;
    settings.fuzziness = fuzziness;
    settings.tolerance = tolerance;
    settings.max_iterations = max_iterations;
    masksegx::FcmSummary summary;
    {
        py::gil_scoped_release release;
        if (seeded) {
            masksegx::fcm_seed_centers(points, n, static_cast<int>(dims), clusters, seed,
                                       center_data);
        }
        summary = masksegx::fuzzy_cmeans(points, n, static_cast<int>(dims), settings, center_data,
                                         membership_data);
    }
    return py::make_tuple(centers, memberships, summary.iterations, summary.objective);
}

py::array_t<float> fcm_seed_centers(const py::handle& features_obj, int clusters,
                                    std::uint64_t seed) {
    auto features = require_array<float>(features_obj, "features", 2, 2);
    const py::ssize_t n = features.shape(0), dims = features.shape(1);
    check_clusters(clusters, n);
    py::array_t<float> centers({static_cast<py::ssize_t>(clusters), dims});
    float* center_data = centers.mutable_data();
    const float* points = features.data();
    {
        py::gil_scoped_release release;
        masksegx::fcm_seed_centers(points, n, static_cast<int>(dims), clusters, seed, center_data);
    }
    return centers;
}

}  // namespace

void register_fcm(py::module_& m) {
    m.def("fuzzy_cmeans", &fuzzy_cmeans, py::arg("features"), py::arg("k"), py::arg("m") = 2.0,
          py::arg("tol") = 1e-4, py::arg("max_iter") = 100, py::arg("seed") = 0,
          py::arg("init_centers") = py::none(),
          "float32 [N, D] features -> (centers float32 [k, D] sorted by first feature, "
          "memberships float32 [N, k], iterations, objective).");
    m.def("fcm_seed_centers", &fcm_seed_centers, py::arg("features"), py::arg("k"),
          py::arg("seed") = 0,
          "The k-means++ centres fuzzy_cmeans starts from for this seed (float32 [k, D]).");
}
