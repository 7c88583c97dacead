"""Fastest Python-side implementations we know of, timed beside the C++ kernels.

Unlike tests/reference.py (float64, written to be obviously right) these use float32 and
OpenCV where it helps, so the ratios in docs/speed.md compare against a fair opponent.
"""

from __future__ import annotations

import cv2
import numpy as np


def spectral_maps_numpy(image: np.ndarray):
    """HSI + NBRI + NMRI in float32 numpy (hue via arctan2)."""
    img = image.astype(np.float32)
    b, g, r = img[..., 0], img[..., 1], img[..., 2]
    total = b + g + r
    intensity = total * np.float32(1 / 765)
    safe_total = np.where(total > 0, total, 1)
    saturation = np.where(total > 0, 1 - 3 * np.minimum(np.minimum(r, g), b) / safe_total, 0)
    hue = np.arctan2(np.sqrt(np.float32(3)) * (g - b), 2 * r - g - b) / np.float32(2 * np.pi)
    hue = np.where(hue < 0, hue + 1, hue)
    br = b + r
    nbri = np.where(br > 0, (b - r) / np.where(br > 0, br, 1), 0)
    si = saturation + intensity
    nmri = np.where(si > 0, (saturation - intensity) / np.where(si > 0, si, 1), 0)
    return hue, saturation, intensity, nbri, nmri


def spectral_maps_opencv(image: np.ndarray):
    """OpenCV's HSV conversion stands in for HSI; the indices still need numpy."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV_FULL)
    b, _, r = cv2.split(image.astype(np.float32))
    nbri = cv2.divide(b - r, b + r + 1e-6)
    s = hsv[..., 1].astype(np.float32) * np.float32(1 / 255)
    v = hsv[..., 2].astype(np.float32) * np.float32(1 / 255)
    nmri = cv2.divide(s - v, s + v + 1e-6)
    return hsv, nbri, nmri


# --- compensate (region = bool HxW, BGR images) ------------------------------------------


def _power_table(t: float) -> np.ndarray:
    """v ** t for every uint8 value: turns per-pixel powers into one lookup."""
    return np.arange(256, dtype=np.float64) ** t


def blue_suppression_numpy(image: np.ndarray, region: np.ndarray, mu: float = 0.8):
    out = image.copy()
    blue = image[..., 0]
    scaled = np.clip(np.rint(blue * mu), 0, 255).astype(np.uint8)
    out[..., 0] = np.where(region, scaled, blue)
    return out


def blue_suppression_opencv(image: np.ndarray, region: np.ndarray, mu: float = 0.8):
    channels = list(cv2.split(image))
    # convertScaleAbs = saturate(round(|mu * B|)), exactly eq. 18 for mu >= 0.
    scaled = cv2.convertScaleAbs(channels[0], alpha=mu)
    channels[0] = cv2.copyTo(scaled, region.view(np.uint8), channels[0])
    return cv2.merge(channels)


def minkowski_illuminant_numpy(image: np.ndarray, region: np.ndarray, t: float = 6.0):
    if t == 1.0:
        return image[region].mean(axis=0)
    return _power_table(t)[image[region]].mean(axis=0) ** (1.0 / t)


def minkowski_illuminant_opencv(image: np.ndarray, region: np.ndarray, t: float = 6.0):
    mask = region.view(np.uint8)
    if t == 1.0:
        return np.array(cv2.mean(image, mask)[:3])
    powered = cv2.LUT(image, _power_table(t))
    return np.array(cv2.mean(powered, mask)[:3]) ** (1.0 / t)


def gray_world_minkowski_numpy(image: np.ndarray, region: np.ndarray, t: float = 6.0):
    gain = minkowski_illuminant_numpy(image, ~region, t) / minkowski_illuminant_numpy(image, region, t)
    out = image.copy()
    out[region] = np.clip(np.rint(image[region] * gain), 0, 255)
    return out


def gray_world_minkowski_opencv(image: np.ndarray, region: np.ndarray, t: float = 6.0):
    mask = region.view(np.uint8)
    powered = cv2.LUT(image, _power_table(t))
    inside = np.array(cv2.mean(powered, mask)[:3])
    outside = np.array(cv2.mean(powered, 1 - mask)[:3])
    gain = (outside / inside) ** (1.0 / t)
    corrected = cv2.multiply(image, (*gain, 0.0))
    return cv2.copyTo(corrected, mask, image.copy())


def compensate_region_numpy(image: np.ndarray, region: np.ndarray, mu: float = 0.8, t: float = 6.0):
    return gray_world_minkowski_numpy(blue_suppression_numpy(image, region, mu), region, t)


def compensate_region_opencv(image: np.ndarray, region: np.ndarray, mu: float = 0.8, t: float = 6.0):
    return gray_world_minkowski_opencv(blue_suppression_opencv(image, region, mu), region, t)


# --- filters -----------------------------------------------------------------------------


def local_variance_numpy(values: np.ndarray, window: int = 5):
    """Summed-area tables of x and x^2 in float64 over the reflect-101 padded map."""
    radius = window // 2
    padded = np.pad(values.astype(np.float64), radius, mode="reflect")
    h, w = values.shape

    def box_sums(x):
        table = np.zeros((x.shape[0] + 1, x.shape[1] + 1))
        np.cumsum(np.cumsum(x, axis=0), axis=1, out=table[1:, 1:])
        return (table[window:, window:] - table[:h, window:]
                - table[window:, :w] + table[:h, :w])

    n = window * window
    mean = box_sums(padded) / n
    variance = box_sums(padded * padded) / n - mean * mean
    return np.maximum(variance, 0).astype(np.float32)


def local_variance_opencv(values: np.ndarray, window: int = 5):
    """cv2.boxFilter / cv2.sqrBoxFilter straight to float32, then in-place arithmetic."""
    box = dict(ddepth=cv2.CV_32F, ksize=(window, window), borderType=cv2.BORDER_REFLECT_101)
    mean = cv2.boxFilter(values, **box)
    mean_sq = cv2.sqrBoxFilter(values, **box)
    cv2.multiply(mean, mean, dst=mean)
    cv2.subtract(mean_sq, mean, dst=mean_sq)
    return np.maximum(mean_sq, 0, out=mean_sq)


def otsu_mask(image: np.ndarray) -> np.ndarray:
    """Realistic binary mask for the region benchmarks: Otsu threshold of the grey image."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    _, mask = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return mask.astype(bool)


def local_variance(image: np.ndarray, size: int = 5) -> np.ndarray:
    """float32 local variance of grey levels in a size x size window (the texture map)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    mean = cv2.blur(grey, (size, size))
    return np.maximum(cv2.blur(grey * grey, (size, size)) - mean * mean, 0)


def analyze_opencv(mask: np.ndarray, variance: np.ndarray):
    """Labels, stats and the eq. 23-24 scores with OpenCV's labeller plus numpy.

    CCL_BBDT: OpenCV's fastest algorithm on our masks (about 25% ahead of its default)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        mask.view(np.uint8), 8, cv2.CV_32S, cv2.CCL_BBDT
    )
    area = stats[1:, cv2.CC_STAT_AREA]
    width = stats[1:, cv2.CC_STAT_WIDTH].astype(np.float64)
    height = stats[1:, cv2.CC_STAT_HEIGHT].astype(np.float64)
    diagonal_sq = width * width + height * height
    # Foreground pixels only: bincount with weights costs ~3x more over the whole image.
    eps = np.bincount(labels[mask], weights=variance[mask], minlength=count)[1:] / area
    mi = diagonal_sq / area
    po = area.max(initial=0) / area * eps
    return labels, area, stats[1:, :4], np.sqrt(diagonal_sq), mi, eps, po


def label_opencv(mask: np.ndarray):
    """cv2.connectedComponents with CCL_BBDT, OpenCV's fastest algorithm on our masks."""
    count, labels = cv2.connectedComponentsWithAlgorithm(
        mask.view(np.uint8), 8, cv2.CV_32S, cv2.CCL_BBDT
    )
    return labels, count - 1


def fill_holes_opencv(mask: np.ndarray) -> np.ndarray:
    """Flood the 4-connected background from outside a one-pixel frame; the rest is filled."""
    framed = cv2.copyMakeBorder(mask.view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    cv2.floodFill(framed, None, (0, 0), 2, flags=4)
    return framed[1:-1, 1:-1] != 2


def fuzzy_cmeans_numpy(features: np.ndarray, centers: np.ndarray, max_iter: int = 30):
    """Vectorised float32 FCM, m = 2, fixed iteration count. Planar (k, N) buffers reused in
    place and BLAS dot products: the fastest numpy layout we found (the (N, k, D) broadcast
    and the |x|^2 - 2 x.c + |c|^2 expansion are 10-30x slower here, the latter also loses
    digits). Distances are floored at a tiny value instead of the exact on-centre rule."""
    columns = np.ascontiguousarray(features.T)  # (D, N)
    dims, count = columns.shape
    k = len(centers)
    centers = centers.astype(np.float32)
    u = np.empty((k, count), np.float32)
    scratch = np.empty(count, np.float32)
    tiny = np.float32(1e-30)

    def memberships(c):
        for j in range(k):
            np.subtract(columns[0], c[j, 0], out=u[j])
            np.square(u[j], out=u[j])
            for f in range(1, dims):
                np.subtract(columns[f], c[j, f], out=scratch)
                np.square(scratch, out=scratch)
                u[j] += scratch
        np.maximum(u, tiny, out=u)
        np.reciprocal(u, out=u)
        np.divide(u, u.sum(0), out=u)
        return u

    for _ in range(max_iter):
        weights = np.square(memberships(centers), out=u)
        sums = weights.sum(1)
        centers = np.array(
            [[np.dot(weights[j], columns[f]) / sums[j] for f in range(dims)] for j in range(k)],
            np.float32,
        )
    centers = centers[np.argsort(centers[:, 0], kind="stable")]
    return centers, memberships(centers).T.copy()


# --- nn (float32 NCHW) and nms -------------------------------------------------------------


def conv2d_numpy(x, weight, bias, stride=(1, 1), padding=(0, 0), groups=1):
    """Convolution as numpy does it fastest: the cheapest formulation per layer kind."""
    m, cg, kh, kw = weight.shape
    if padding != (0, 0):
        x = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    if kh == kw == 1 and stride == (1, 1) and groups == 1:
        n, c, h, w = x.shape  # pointwise: one matmul per image
        out = np.matmul(weight.reshape(m, c), x.reshape(n, c, h * w)).reshape(n, m, h, w)
    elif groups == x.shape[1] == m:  # depthwise: one multiply-add per tap over all channels
        ho = (x.shape[2] - kh) // stride[0] + 1
        wo = (x.shape[3] - kw) // stride[1] + 1
        out = np.zeros((x.shape[0], m, ho, wo), np.float32)
        for i in range(kh):
            for j in range(kw):
                tap = x[:, :, i : i + stride[0] * (ho - 1) + 1 : stride[0],
                        j : j + stride[1] * (wo - 1) + 1 : stride[1]]
                out += tap * weight[None, :, 0, i, j, None, None]
    else:  # dense (groups == 1): sliding windows contracted with tensordot
        windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
        windows = windows[:, :, :: stride[0], :: stride[1]]
        out = np.tensordot(windows, weight, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    return out + bias[None, :, None, None]


def max_pool2d_numpy(x, kernel, stride):
    """Ceil-mode max pooling: pad the far edges with -inf, then strided window maxima."""
    n, c, h, w = x.shape
    ho = -(-(h - kernel[0]) // stride[0]) + 1
    wo = -(-(w - kernel[1]) // stride[1]) + 1
    ho -= (ho - 1) * stride[0] >= h
    wo -= (wo - 1) * stride[1] >= w
    pad_h = max(0, (ho - 1) * stride[0] + kernel[0] - h)
    pad_w = max(0, (wo - 1) * stride[1] + kernel[1] - w)
    x = np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), constant_values=-np.inf)
    out = None
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            tap = x[:, :, i : i + stride[0] * (ho - 1) + 1 : stride[0],
                    j : j + stride[1] * (wo - 1) + 1 : stride[1]]
            out = tap.copy() if out is None else np.maximum(out, tap, out=out)
    return out


def prelu_numpy(x, slope):
    return np.where(x > 0, x, x * slope.reshape(1, -1, *([1] * (x.ndim - 2))))


def fully_connected_numpy(x, weight, bias):
    return x @ weight.T + bias


def softmax_numpy(x, axis=1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def nms_numpy(boxes, scores, threshold, mode="union"):
    """facenet-pytorch's vectorised greedy NMS (+1 pixel areas), ties by lower index."""
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.array(keep, dtype=np.int64)


def onnxruntime_node(op_type, inputs, initializers, output_rank, **attributes):
    """A single-threaded onnxruntime session running one ONNX node, as a callable taking the
    non-initializer inputs; None when the `onnx` package (not a dependency) is missing."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    import onnxruntime as ort

    graph_inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape))
        for name, value in inputs.items()
    ]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * output_rank)
    node = helper.make_node(op_type, list(inputs) + list(initializers), ["y"], **attributes)
    graph = helper.make_graph(
        [node], op_type, graph_inputs, [output],
        [numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feeds = list(inputs)
    return lambda *arrays: session.run(None, dict(zip(feeds, arrays)))[0]


# --- side by side: the whole package beside the detectors people would pick instead ---------

#: Environment variable naming the folder of the reference detectors' models.
REFERENCE_MODELS_ENV = "MASKSEGX_REFERENCE_MODELS"
#: Rows of the side-by-side comparison whose ratios the README reports; see side_by_side().
DETECTION = "masksegx detection"
DETECTION_THREADS_2 = "masksegx detection, threads=2"
DETECTION_ONE_PASS = "masksegx detection, close_ups=False"
PIPELINE = "masksegx whole pipeline (fused)"
PIPELINE_NATIVE = "masksegx whole pipeline, every net native"
PIPELINE_THREADS_2 = "masksegx whole pipeline, threads=2"
RFB = "Ultra-Light RFB-320 (onnxruntime)"
RETINAFACE = "RetinaFace mnet0.25 (onnxruntime)"
YUNET = "YuNet-n (OpenCV FaceDetectorYN)"
STANDARD_MTCNN = "standard MTCNN weights (onnxruntime)"
#: Rows that run on more than one thread (the others run on one).
MULTI_THREADED = (DETECTION_THREADS_2, PIPELINE_THREADS_2)


def reference_models_dir(option=None):
    """The reference models folder: ``option``, else $MASKSEGX_REFERENCE_MODELS, else
    ``../shared/data/models`` beside the repository when it exists (None otherwise)."""
    import os

    if option:
        return option
    if os.environ.get(REFERENCE_MODELS_ENV):
        return os.environ[REFERENCE_MODELS_ENV]
    default = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "models")
    return os.path.normpath(default) if os.path.isdir(default) else None


def side_by_side(models_dir):
    """The contenders timed on the multi-face example: name -> callable on a BGR image, or the
    reason (a string) why it cannot run. OpenCV should be set to one thread by the caller."""
    import os

    from masksegx import FaceDetector, FaceMaskSegmenter
    from masksegx.eval.reference_detectors import (
        STANDARD_MTCNN_MODELS,
        DetectorUnavailable,
        make_detector,
        mtcnn_detector,
    )

    rows = {
        DETECTION: FaceDetector(),
        DETECTION_THREADS_2: FaceDetector(threads=2),
        DETECTION_ONE_PASS: FaceDetector(close_ups=False),
        PIPELINE: FaceMaskSegmenter(threads=1),
        PIPELINE_NATIVE: FaceMaskSegmenter(threads=1, backend="native"),
        PIPELINE_THREADS_2: FaceMaskSegmenter(threads=2),
    }
    references = {
        RFB: lambda folder: make_detector("ultralight", folder, threads=1),
        RETINAFACE: lambda folder: make_detector("retinaface", folder, threads=1),
        YUNET: lambda folder: make_detector("yunet", folder),
        STANDARD_MTCNN: lambda folder: mtcnn_detector(
            "onnxruntime", [os.path.join(folder, name) for name in STANDARD_MTCNN_MODELS], threads=1
        ),
    }
    for name, build in references.items():
        if models_dir is None or not os.path.isdir(models_dir):
            where = "none given" if models_dir is None else f"{models_dir!r} is not a folder"
            rows[name] = (f"no reference models ({where}; pass --reference-models or set "
                          f"${REFERENCE_MODELS_ENV})")
            continue
        try:
            rows[name] = build(models_dir)
        except DetectorUnavailable as error:
            rows[name] = str(error)
    return rows
