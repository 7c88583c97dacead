"""Generated test images: a skin-coloured face with a blue face mask over its lower half."""

import cv2
import numpy as np

BACKGROUND_BGR = (95, 125, 150)  # warm beige wall
SKIN_BGR = (125, 155, 205)
MASK_BGR = (200, 140, 60)  # surgical blue


def masked_face(height=120, width=100, seed=0):
    """Return (image uint8 HxWx3 BGR, truth bool HxW = the blue mask's pixels).

    Face: ellipse centred at (0.5 W, 0.45 H) with half-axes (0.32 W, 0.4 H); mask: the part of
    the face below 0.55 H. Gaussian noise (sigma 6) makes the statistics non-degenerate.
    """
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND_BGR
    centre = (width // 2, int(0.45 * height))
    axes = (int(0.32 * width), int(0.4 * height))
    face = np.zeros((height, width), np.uint8)
    cv2.ellipse(face, centre, axes, 0, 0, 360, 1, -1)
    image[face > 0] = SKIN_BGR
    for dx in (-0.12, 0.12):  # eyes
        cv2.circle(
            image,
            (int((0.5 + dx) * width), int(0.35 * height)),
            max(1, width // 30),
            (40, 40, 40),
            -1,
        )
    truth = face > 0
    truth[: int(0.55 * height)] = False
    image[truth] = MASK_BGR
    noise = np.random.default_rng(seed).normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), truth


def iou(pred, truth):
    union = np.count_nonzero(pred | truth)
    return 1.0 if union == 0 else np.count_nonzero(pred & truth) / union
