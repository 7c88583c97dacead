"""Plain-numpy reference implementations of every C++ kernel.

Tests compare the kernels against these; the benchmark suites time them as the numpy peers.
They favour being obviously right over being fast.
"""

from __future__ import annotations

import numpy as np


def spectral_maps_ref(image: np.ndarray, order: str = "bgr"):
    """(hue, saturation, intensity, nbri, nmri) with the textbook acos form of HSI hue."""
    img = image.astype(np.float64)
    if order == "bgr":
        b, g, r = img[..., 0], img[..., 1], img[..., 2]
    else:
        r, g, b = img[..., 0], img[..., 1], img[..., 2]
    total = r + g + b
    intensity = total / 765.0
    with np.errstate(divide="ignore", invalid="ignore"):
        saturation = np.where(total > 0, 1.0 - 3.0 * np.minimum(np.minimum(r, g), b) / total, 0.0)
        num = 0.5 * ((r - g) + (r - b))
        den = np.sqrt((r - g) ** 2 + (r - b) * (g - b))
        theta = np.arccos(np.clip(num / den, -1.0, 1.0))
        hue = np.where(b > g, 2 * np.pi - theta, theta) / (2 * np.pi)
        hue = np.where((saturation > 0) & (den > 0), hue, 0.0)
        hue = np.where(hue >= 1.0, 0.0, hue)
        nbri = np.where(b + r > 0, (b - r) / (b + r), 0.0)
        sum_si = saturation + intensity
        nmri = np.where(sum_si > 0, (saturation - intensity) / sum_si, 0.0)
    return hue, saturation, intensity, nbri, nmri


def _blue_index(order: str) -> int:
    return 0 if order == "bgr" else 2


def _round_saturate(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def blue_suppression_ref(image, region, mu=0.8, order="bgr"):
    """Eq. 18: blue channel of region pixels times mu, rounded half to even, saturated."""
    out = image.copy()
    blue = _blue_index(order)
    out[region, blue] = _round_saturate(mu * image[region, blue].astype(np.float64))
    return out


def minkowski_illuminant_ref(image, region, t=6.0, scale=1.0):
    """Eq. 19-20: scale * mean(v ** t) ** (1 / t) per channel over region pixels (float64)."""
    values = image[region].astype(np.float64)
    if np.isinf(t):
        return scale * values.max(axis=0)
    return scale * np.mean(values**t, axis=0) ** (1.0 / t)


def gray_world_minkowski_ref(image, region, t=6.0):
    """Eq. 21; returns (image, gain, illuminant_region, illuminant_background)."""
    nan = np.full(3, np.nan)
    inside = minkowski_illuminant_ref(image, region, t) if region.any() else nan
    outside = minkowski_illuminant_ref(image, ~region, t) if (~region).any() else nan
    gain = np.ones(3)
    if region.any() and (~region).any():
        usable = inside > 0
        gain[usable] = outside[usable] / inside[usable]
    out = image.copy()
    out[region] = _round_saturate(image[region] * gain)
    return out, gain, inside, outside


def compensate_region_ref(image, region, mu=0.8, t=6.0, order="bgr"):
    """Blue suppression, then eq. 21 measured on the suppressed image."""
    return gray_world_minkowski_ref(blue_suppression_ref(image, region, mu, order), region, t)


def local_variance_ref(values, window=5):
    """Two-pass float64 variance of every window x window box, reflect-101 borders.

    numpy's "reflect" padding is OpenCV's BORDER_REFLECT_101 (edge not repeated), repeated
    for pads wider than the array, and repeats the only sample of a length-1 axis.
    """
    radius = window // 2
    padded = np.pad(values.astype(np.float64), radius, mode="reflect")
    boxes = np.lib.stride_tricks.sliding_window_view(padded, (window, window))
    return boxes.var(axis=(-2, -1))


def label_ref(mask: np.ndarray, connectivity: int = 8):
    """BFS flood fill; components numbered 1..n in raster order of their first pixel."""
    h, w = mask.shape
    if connectivity == 4:
        steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    else:
        steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    labels = np.zeros((h, w), np.int32)
    count = 0
    for y in range(h):
        for x in range(w):
            if not mask[y, x] or labels[y, x]:
                continue
            count += 1
            labels[y, x] = count
            queue = [(y, x)]
            while queue:
                cy, cx = queue.pop()
                for dy, dx in steps:
                    ny, nx = cy + dy, cx + dx
                    if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = count
                        queue.append((ny, nx))
    return labels, count


def component_stats_ref(labels: np.ndarray, count: int, variance=None):
    """(area, bbox x/y/w/h, K, Mi, eps, Po) per component, straight from the definitions."""
    area = np.zeros(count, np.int64)
    bbox = np.zeros((count, 4), np.int64)
    eps = np.zeros(count)
    for i in range(count):
        ys, xs = np.nonzero(labels == i + 1)
        area[i] = ys.size
        bbox[i] = xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        if variance is not None:
            eps[i] = variance[ys, xs].astype(np.float64).mean()
    diagonal = np.hypot(bbox[:, 2], bbox[:, 3]).astype(np.float64)
    mi = diagonal**2 / area
    po = (area.max(initial=0) / area) * eps if count else eps
    return area, bbox, diagonal, mi, eps, po


def fill_holes_ref(mask: np.ndarray) -> np.ndarray:
    """Background pixels not 4-connected to the border become foreground."""
    padded = np.pad(~mask.astype(bool), 1, constant_values=True)
    outside, _ = label_ref(padded, connectivity=4)
    return ~(outside[1:-1, 1:-1] == outside[0, 0])


def fcm_ref(features, init_centers, m=2.0, tol=1e-4, max_iter=100):
    """Bezdek fuzzy c-means in float64 from given centres, in the kernel's documented order:
    membership/centre updates until the largest centre move < tol, centres sorted by their
    features lexicographically, final memberships from the sorted centres."""
    x = np.asarray(features, np.float64)
    centers = np.asarray(init_centers, np.float64).copy()

    def memberships(c):
        d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        on_centre = d2 == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            u = 1.0 / ((d2[:, :, None] / d2[:, None, :]) ** (1.0 / (m - 1))).sum(-1)
        touching = on_centre.any(1)
        u[touching] = on_centre[touching] / on_centre[touching].sum(1, keepdims=True)
        return u, d2

    iterations = 0
    while iterations < max_iter:
        u, _ = memberships(centers)
        weights = u**m
        total = weights.sum(0)
        moved = centers.copy()
        has_weight = total > 0
        moved[has_weight] = (weights.T @ x)[has_weight] / total[has_weight, None]
        shift = np.sqrt(((moved - centers) ** 2).sum(1)).max()
        centers = moved
        iterations += 1
        if shift < tol:
            break
    centers = centers[np.lexsort(centers.T[::-1])]
    u, d2 = memberships(centers)
    return centers, u, iterations, float((u**m * d2).sum())


def splitmix64(seed: int):
    """The splitmix64 stream (Steele, Lea, Flood 2014) as Python integers."""
    mask = (1 << 64) - 1
    state = seed & mask
    while True:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        yield z ^ (z >> 31)


def seed_centers_ref(features, k: int, seed: int):
    """k-means++ seeding driven by splitmix64, as documented for the FCM kernel."""
    x = np.asarray(features, np.float64)
    stream = splitmix64(seed)
    picks = [next(stream) % len(x)]
    nearest = ((x - x[picks[0]]) ** 2).sum(1)
    for _ in range(1, k):
        total = float(sum(nearest))  # index order, like the kernel
        if total > 0:
            target = (next(stream) >> 11) * 2.0**-53 * total
            candidates = np.flatnonzero(nearest > 0)
            cumulative = np.cumsum(nearest[candidates])
            after = np.flatnonzero(cumulative > target)
            pick = candidates[after[0]] if after.size else candidates[-1]
        else:
            pick = next(stream) % len(x)
        picks.append(int(pick))
        nearest = np.minimum(nearest, ((x - x[pick]) ** 2).sum(1))
    return np.asarray(features, np.float32)[picks]


# --- nn (float32 NCHW kernels; references in float64) ----------------------------------------


def conv2d_ref(x, weight, bias=None, stride=(1, 1), padding=(0, 0), groups=1):
    """Direct cross-correlation, one kernel tap at a time (ONNX Conv semantics)."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    n, c, h, w = x.shape
    m, cg, kh, kw = weight.shape
    sh, sw = stride
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    mg = m // groups
    out = np.zeros((n, m, ho, wo))
    for g in range(groups):
        xg = x[:, g * cg : (g + 1) * cg]
        wg = weight[g * mg : (g + 1) * mg].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                patch = xg[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]
                out[:, g * mg : (g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, wg[:, :, i, j])
    if bias is not None:
        out += bias.astype(np.float64)[None, :, None, None]
    return out


def pool_output_side(size: int, kernel: int, stride: int) -> int:
    """Caffe ceil mode: ceil((size - kernel) / stride) + 1 windows, all starting inside."""
    out = -(-(size - kernel) // stride) + 1
    return out - 1 if (out - 1) * stride >= size else out


def max_pool2d_ref(x, kernel, stride):
    n, c, h, w = x.shape
    ho, wo = pool_output_side(h, kernel[0], stride[0]), pool_output_side(w, kernel[1], stride[1])
    out = np.empty((n, c, ho, wo))
    for oy in range(ho):
        for ox in range(wo):
            y0, x0 = oy * stride[0], ox * stride[1]
            out[:, :, oy, ox] = x[:, :, y0 : y0 + kernel[0], x0 : x0 + kernel[1]].max(axis=(2, 3))
    return out


def prelu_ref(x, slope):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x = x.astype(np.float64)
    return np.where(x > 0, x, x * slope.astype(np.float64).reshape(shape))


def fully_connected_ref(x, weight, bias=None):
    out = x.astype(np.float64) @ weight.astype(np.float64).T
    return out if bias is None else out + bias


def softmax_ref(x, axis=1):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def nms_ref(boxes, scores, threshold, mode="union"):
    """Greedy NMS with MTCNN's +1 pixel areas; stable descending-score order."""
    b = boxes.astype(np.float64)
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    order = list(np.argsort(-scores.astype(np.float64), kind="stable"))
    keep = []
    while order:
        i, rest = order[0], np.array(order[1:], dtype=np.int64)
        keep.append(i)
        w = np.maximum(0.0, np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]) + 1)
        h = np.maximum(0.0, np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = inter / denom
        order = [int(j) for j, o in zip(rest, overlap) if not o > threshold]
    return np.array(keep, dtype=np.int64)
