"""Depthwise-separable MTCNN training code (needs torch: skipped where it is not installed) and
the shipped ds_mtcnn ONNX files (onnxruntime only)."""

from pathlib import Path

import numpy as np
import pytest

from masksegx.boxes import iou_inclusive

MODELS = Path(__file__).resolve().parent.parent / "python" / "masksegx" / "models"
ONNX_CASES = [
    ("pnet", (2, 3, 12, 12), {"reg": (2, 4, 1, 1), "prob": (2, 2, 1, 1)}),
    # floor((H - 4) / 2) - 3: the reference's 14 rows on odd H = 37 less its partial last one
    ("pnet", (1, 3, 37, 50), {"reg": (1, 4, 13, 20), "prob": (1, 2, 13, 20)}),
    ("rnet", (3, 3, 24, 24), {"reg": (3, 4), "prob": (3, 2)}),
    ("onet", (2, 3, 48, 48), {"reg": (2, 4), "landmarks": (2, 10), "prob": (2, 2)}),
    ("lnet", (3, 3, 48, 48), {"landmarks": (3, 10)}),
]


@pytest.mark.parametrize("stage, shape, outputs", ONNX_CASES)
def test_shipped_onnx_names_and_shapes(stage, shape, outputs):
    path = MODELS / f"ds_mtcnn_{stage}.onnx"
    if not path.is_file():
        pytest.skip(f"{path.name} not shipped")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    names = [o.name for o in session.get_outputs()]
    assert names == list(outputs)
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    results = dict(zip(names, session.run(names, {"input": x})))
    for name, expected in outputs.items():
        assert results[name].shape == expected
    if "prob" in results:
        np.testing.assert_allclose(results["prob"].sum(axis=1), 1.0, atol=1e-5)


# --- torch-only tests below -------------------------------------------------------------------


@pytest.fixture(scope="module")
def nets():
    pytest.importorskip("torch")
    from masksegx.training import nets

    return nets


@pytest.mark.parametrize("separable", [True, False])
@pytest.mark.parametrize("side", [12, 13, 20, 37, 64])
def test_pnet_is_fully_convolutional_with_reference_output_size(nets, separable, side):
    import torch

    net = nets.build("pnet", separable).eval()
    with torch.no_grad():
        reg, prob = net(torch.zeros(2, 3, side, side + 5))
    expected = (nets.pnet_output_side(side, separable), nets.pnet_output_side(side + 5, separable))
    if not separable or side % 2 == 0:  # ours drops the standard layout's partial last window
        assert expected[0] == int(np.ceil((side - 2) / 2)) - 4
    assert reg.shape == (2, 4) + expected
    assert prob.shape == (2, 2) + expected


@pytest.mark.parametrize("stage, outputs", [
    ("rnet", [(4,), (2,)]), ("onet", [(4,), (10,), (2,)]),
])
@pytest.mark.parametrize("batch", [1, 5])
def test_rnet_onet_output_shapes(nets, stage, outputs, batch):
    import torch

    side = nets.INPUT_SIZE[stage]
    with torch.no_grad():
        results = nets.build(stage).eval()(torch.rand(batch, 3, side, side))
    assert [tuple(r.shape) for r in results] == [(batch,) + o for o in outputs]
    torch.testing.assert_close(results[-1].sum(dim=1), torch.ones(batch))


def test_separable_nets_use_depthwise_convs(nets):
    from torch import nn

    convs = [m for m in nets.build("onet").modules() if isinstance(m, nn.Conv2d)]
    depthwise = [m for m in convs if m.groups > 1]
    assert [m.groups for m in depthwise] == [32, 64]
    assert all(m.groups == m.in_channels == m.out_channels for m in depthwise)


def test_landmark_net_output_and_size(nets):
    import torch

    with torch.no_grad():
        (landmarks,) = nets.build("lnet").eval()(torch.rand(4, 3, 48, 48))
    assert landmarks.shape == (4, 10)
    # Separable blocks 32 -> 64 and 64 -> 96 after a full-resolution 3x3 stem.
    _, macs = nets.count_parameters_and_macs(nets.build("lnet"), (3, 48, 48))
    onet = nets.count_parameters_and_macs(nets.build("onet"), (3, 48, 48))
    standard = nets.count_parameters_and_macs(nets.build("onet", False), (3, 48, 48))
    assert onet[1] < macs < standard[1] / 3
    with pytest.raises(ValueError, match="lnet"):
        nets.build("qnet")


@pytest.mark.parametrize("stage", ["pnet", "rnet", "onet"])
def test_separable_nets_are_smaller_than_standard(nets, stage):
    side = nets.INPUT_SIZE[stage]
    ours = nets.count_parameters_and_macs(nets.build(stage, True), (3, side, side))
    standard = nets.count_parameters_and_macs(nets.build(stage, False), (3, side, side))
    assert ours[0] < standard[0]
    assert ours[1] < standard[1]


def test_count_parameters_and_macs_by_hand(nets):
    # Standard P-net on one 12x12 window: conv 3->10 (10x10 out), pool to 5x5, conv 10->16
    # (3x3 out), conv 16->32 (1x1 out), heads 32->2 and 32->4.
    weights = [27 * 10, 90 * 16, 144 * 32, 32 * 2, 32 * 4]
    pixels = [100, 9, 1, 1, 1]
    biases = 10 + 16 + 32 + 2 + 4
    parameters, macs = nets.count_parameters_and_macs(nets.build("pnet", False), (3, 12, 12))
    assert parameters == sum(weights) + biases
    assert macs == sum(w * p for w, p in zip(weights, pixels))


def test_samples_are_labelled_by_iou(nets):
    from masksegx.training import samples

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    face = np.array([50.0, 30.0, 89.0, 69.0])  # 40x40, inclusive
    collected = samples._Collector(24, rng)
    for label in (samples.LABEL_POSITIVE, samples.LABEL_PART):
        for x, y, side in samples._face_crops(face, face[None], label, 40, rng):
            collected.add(image, x, y, side, label, face)
    for x, y, side in samples._negative_crops(image.shape, face[None], 40, rng):
        collected.add(image, x, y, side, samples.LABEL_NEGATIVE)
    data = collected.result()
    assert data.counts() == {"positive": 40, "part": 40, "negative": 40, "landmark": 0}
    assert data.images.shape == (120, 24, 24, 3)
    # Offsets map each crop back onto the face: face = crop + offset * side.
    for offsets, label in zip(data.offsets, data.labels):
        assert (label == samples.LABEL_NEGATIVE) == (not offsets.any())
    x, y, side = samples._face_crops(face, face[None], samples.LABEL_POSITIVE, 1, rng)[0]
    crop = samples.crop_box(x, y, side)
    overlap = iou_inclusive(crop[None], face[None])[0, 0]
    assert overlap >= samples.POSITIVE_IOU
    np.testing.assert_allclose(crop + samples.box_offsets(face, crop) * side, face, atol=1e-4)


def test_iou_labels_and_crop_geometry(nets):
    from masksegx.training import samples

    face = np.array([[10.0, 10.0, 19.0, 19.0]])
    assert iou_inclusive(face, face)[0, 0] == 1.0
    # Shifting a 10x10 box by 2 px: overlap 8x10 of union 120.
    assert iou_inclusive([[12.0, 10.0, 21.0, 19.0]], face)[0, 0] == pytest.approx(80 / 120)
    assert samples.label_for(0.65) == samples.LABEL_POSITIVE
    assert samples.label_for(0.5) == samples.LABEL_PART
    assert samples.label_for(0.35) is None
    assert samples.label_for(0.1) == samples.LABEL_NEGATIVE
    image = np.full((20, 20, 3), 200, np.uint8)
    patch = samples.crop_square(image, -5, -5, 10, 10)
    assert (patch[:5, :5] == 0).all() and (patch[5:, 5:] == 200).all()
    # Landmarks: l = (p - x) / S for a crop at x; the cascade crops box [x1, ...] from pixel
    # x1 - 1, so its p = x1 + S l - 1 gives p back.
    points = np.array([[12.0, 14.0]] * 5)
    fractions = samples.landmark_fractions(points, samples.crop_box(10, 10, 10))
    np.testing.assert_allclose(fractions, [0.2] * 5 + [0.4] * 5)


def test_mirrored_crops_keep_box_and_landmarks_on_the_face(nets):
    from masksegx.training import samples

    rng = np.random.default_rng(2)
    image = np.zeros((100, 100, 3), np.uint8)
    face = np.array([20.0, 25.0, 59.0, 74.0])  # 40x50, off-centre in every crop below
    image[25:75, 20:60] = 100
    points = np.array([[30, 40], [50, 42], [41, 55], [33, 66], [52, 65]], dtype=np.float64)
    for x, y in points.astype(int):
        image[y, x] = 255
    side = 60
    collected = samples._Collector(side, rng)  # crop side == sample side: no resizing
    for x in range(8, 18):
        collected.add(image, x, 18, side, samples.LABEL_POSITIVE, face, points)
    data = collected.result()
    mirrored = 0
    for x, patch, offsets, fractions in zip(range(8, 18), data.images, data.offsets,
                                            data.landmarks):
        mirrored += not np.array_equal(patch, samples.crop_square(image, x, 18, side, side))
        # Offsets give the face in crop pixels: exactly the grey (or landmark) rectangle.
        x1, y1, x2, y2 = np.rint(offsets * side + [0, 0, side - 1, side - 1]).astype(int)
        inside = np.zeros((side, side), bool)
        inside[y1 : y2 + 1, x1 : x2 + 1] = True
        assert ((patch[..., 0] > 0) == inside).all()
        # Landmarks land on the white dots, the eyes and the mouth corners left to right.
        columns = np.rint(side * fractions[:5]).astype(int)
        rows = np.rint(side * fractions[5:]).astype(int)
        assert (patch[rows, columns, 0] == 255).all()
        assert columns[0] < columns[1] and columns[3] < columns[4]
    assert 0 < mirrored < 10


def test_landmark_crops_keep_all_points_inside(nets):
    from masksegx.training import samples

    rng = np.random.default_rng(1)
    face = np.array([20.0, 20.0, 79.0, 79.0])
    points = np.array([[35, 40], [65, 40], [50, 55], [38, 70], [62, 70]], dtype=np.float64)
    crops = samples._face_crops(face, face[None], samples.LABEL_POSITIVE, 30, rng, points)
    assert len(crops) == 30
    for x, y, side in crops:
        fractions = samples.landmark_fractions(points, samples.crop_box(x, y, side))
        assert (fractions > 0).all() and (fractions <= 1).all()


def test_onet_reads_back_from_its_onnx_export(nets, tmp_path):
    pytest.importorskip("onnx")
    import torch

    from masksegx.training.train_detector import export_onnx
    from masksegx.training.tune_onet_landmarks import load_onnx_onet

    torch.manual_seed(0)
    net = nets.build("onet").eval()
    with torch.no_grad():  # PReLU slopes off their default, so a mix-up would show
        for module in net.modules():
            if isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(0.05, 0.5)
    path = tmp_path / "onet.onnx"
    export_onnx(net, "onet", path)
    back = load_onnx_onet(path)
    x = torch.rand(3, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        for expected, got in zip(net(x), back(x)):
            torch.testing.assert_close(got, expected)


def test_augment_kinds_parse_and_key_the_sample_cache(nets):
    import argparse

    from masksegx.training import samples, train_detector

    assert train_detector._augmentations("photometric") == ("photometric",)
    assert train_detector._augmentations("zoom, photometric") == ("zoom", "photometric")
    for bad in ("", "zoom,blur"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected kinds from zoom, photo"):
            train_detector._augmentations(bad)
    # Each kind keys only its own settings, so a zoom-only cache is not a photometric one.
    assert set(train_detector.augmentation_settings(["zoom"])) == {"zoom_in", "zoom_in_range"}
    assert set(train_detector.augmentation_settings(["photometric"])) == {"photometric"}
    # --augment alone: the kinds (and cache keys) of the runs before "border" existed.
    before = train_detector.augmentation_settings(samples.DEFAULT_AUGMENTATIONS)
    assert set(before) == {"zoom_in", "zoom_in_range", "photometric"}
    # Cards of runs made before the kinds existed stored ``true`` for all of them.
    assert train_detector._augment_kinds({"pnet": {"augment": True}}) == ["zoom", "photometric"]
    assert train_detector._augment_kinds(
        {"pnet": {"augment": []}, "onet": {"augment": ["photometric"]}}
    ) == ["photometric"]
    assert train_detector._augment_lines([]) == []
    assert "Zoom-in" in train_detector._augment_lines(["zoom"])[0]


def test_border_negatives_overhang_the_image_and_miss_the_faces(nets):
    from masksegx.training import samples

    rng = np.random.default_rng(3)
    faces = np.array([[40.0, 30.0, 79.0, 69.0], [120.0, 20.0, 149.0, 49.0]])
    crops = samples._border_negative_crops((100, 160, 3), faces, 50, rng)
    assert len(crops) == 50
    sides = np.array([side for _, _, side in crops])
    assert sides.max() > 100  # larger than the image's shorter side, as P-net boxes can be
    for x, y, side in crops:
        assert x < 0 or y < 0 or x + side > 160 or y + side > 100
        overlap = iou_inclusive(samples.crop_box(x, y, side)[None], faces).max()
        assert overlap < samples.NEGATIVE_IOU


def test_frame_negatives_hold_the_whole_photo_and_miss_the_faces(nets):
    from masksegx.training import samples, train_detector

    rng = np.random.default_rng(4)
    faces = np.array([[10.0, 10.0, 29.0, 29.0], [120.0, 60.0, 139.0, 79.0]])
    crops = samples._frame_negative_crops((100, 160, 3), faces, 40, rng)
    assert len(crops) == 40
    for x, y, side in crops:
        assert 100 <= side <= 200  # one to two times the shorter side
        centre = np.array([x + side / 2, y + side / 2])
        assert (np.abs(centre - [80, 50]) <= samples.FRAME_NEGATIVE_SHIFT * side + 1).all()
        overlap = iou_inclusive(samples.crop_box(x, y, side)[None], faces).max()
        assert overlap < samples.NEGATIVE_IOU
    assert set(train_detector.augmentation_settings(["frame"])) == {
        "frame_negatives", "frame_largest", "frame_shift"}
    assert "Frame negatives" in train_detector._augment_lines(["frame"])[0]


def test_miners_come_from_their_onnx_files_not_the_cache(nets, tmp_path):
    """--miners: the earlier stages load from DIR's ONNX files even where the cache holds
    weights of its own (load_net without a cache)."""
    pytest.importorskip("onnx")
    import torch

    from masksegx.training.train_detector import load_net

    cache = tmp_path / "cache"
    cache.mkdir()
    torch.manual_seed(1)
    torch.save(nets.build("rnet").state_dict(), cache / "rnet.pt")
    x = torch.rand(2, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        from_cache = load_net("rnet", cache, MODELS)(x)
        from_onnx = load_net("rnet", None, MODELS)(x)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(MODELS / "ds_mtcnn_rnet.onnx"),
                                           providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in session.get_outputs()],
                        session.run(None, {"input": x.numpy()})))
    np.testing.assert_allclose(from_onnx[1].numpy(), expected["prob"], atol=1e-5)
    assert not np.allclose(from_cache[1].numpy(), expected["prob"], atol=1e-3)
    with pytest.raises(SystemExit, match="train onet first"):
        load_net("onet", None, None)


def test_the_card_names_the_stages_of_options_not_every_stage_used(nets):
    from masksegx.training import train_detector

    results = {
        "pnet": {"augment": True, "teacher": True},
        "rnet": {"augment": [], "teacher": True},
        "onet": {"augment": ["zoom", "border"], "common_boxes": True, "teacher": True},
    }
    text = " ".join(train_detector._partial_options_lines(results))
    assert "zoom augmentation (pnet, onet)" in text
    assert "photometric augmentation (pnet)" in text
    assert "border augmentation (onet)" in text
    assert "one box convention (onet)" in text
    assert "teacher set" not in text  # every stage used them
    results["onet"]["teacher"] = ["ilc2021"]  # a run with one set
    text = " ".join(train_detector._partial_options_lines(results))
    assert "teacher set ilc2021" not in text
    assert "teacher set rwmfd (pnet, rnet)" in text
    every = {stage: {"augment": ["zoom"]} for stage in ("pnet", "rnet", "onet")}
    assert train_detector._partial_options_lines(every) == []


def test_the_card_counts_the_close_up_nets_with_the_cascade(nets):
    """rnet_closeup and onet_closeup entries (the close-up pass's nets, from other runs): their
    teacher sets reach the card's data and license lines, their options the per-stage bullet,
    and each file is named."""
    from masksegx.training import train_detector

    results = {stage: {"augment": [], "teacher": False} for stage in ("pnet", "rnet", "onet")}
    assert train_detector._teacher_sets(results) == []
    assert train_detector._close_up_lines(results) == []
    results["rnet_closeup"] = {"augment": ["zoom"], "teacher": ["rwmfd"]}
    results["onet_closeup"] = {"augment": ["border"], "teacher": False}
    assert train_detector._teacher_sets(results) == ["rwmfd"]
    assert "RWMFD" in " ".join(train_detector._license_lines(train_detector._teacher_sets(results)))
    text = " ".join(" ".join(train_detector._partial_options_lines(results)).split())
    assert "teacher set rwmfd (rnet_closeup)" in text and "zoom augmentation (rnet_closeup)" in text
    assert "border augmentation (onet_closeup)" in text
    paragraph = " ".join(train_detector._close_up_lines(results))
    assert "`ds_mtcnn_rnet_closeup.onnx`" in paragraph and "`ds_mtcnn_onet_closeup.onnx`" in paragraph


def test_teacher_sets_are_chosen_by_name_and_named_on_the_card(nets):
    import argparse

    from masksegx.training import samples, train_detector

    assert train_detector._teacher_sources("ilc2021") == ("ilc2021",)
    with pytest.raises(argparse.ArgumentTypeError, match="expected sets from ilc2021, rwmfd"):
        train_detector._teacher_sources("ilc2021,imdb")
    # All sets keep the cache key of the runs before the sets could be chosen.
    assert train_detector._teacher_key(samples.TEACHER_SOURCES) is True
    assert train_detector._teacher_key(["ilc2021"]) == ["ilc2021"]
    assert train_detector._teacher_sets({"pnet": {"teacher": True}}) == list(samples.TEACHER_SOURCES)
    assert train_detector._teacher_sets(
        {"pnet": {"teacher": False}, "onet": {"teacher": ["utkface", "ilc2021"]}}
    ) == ["ilc2021", "utkface"]
    ilc_only = " ".join(train_detector._teacher_data_lines(["ilc2021"]))
    assert "det/ilc2021" in ilc_only and "rwmfd" not in ilc_only
    rwmfd_only = " ".join(train_detector._teacher_data_lines(["rwmfd"]))
    assert "rwmfd" in rwmfd_only and "det/ilc2021" not in rwmfd_only
    assert "UTKFace" not in " ".join(train_detector._license_lines(["ilc2021"]))
    assert "teacher" not in " ".join(train_detector._license_lines([]))


def test_no_negative_is_cut_from_a_doubtful_teacher_face(nets):
    """--doubtful-score: a mined detection on an ignored region (a face the teacher scored
    below its threshold) gives no negative; one on the background does, and so does a face."""
    from masksegx.training import samples

    image = np.zeros((120, 200, 3), np.uint8)
    faces = np.array([[10.0, 10.0, 49.0, 49.0]])
    ignored = np.array([[100.0, 10.0, 139.0, 49.0]])
    detections = np.array([[100.0, 10.0, 139.0, 49.0, 0.9],   # the ignored region
                           [150.0, 70.0, 189.0, 109.0, 0.9],  # background
                           [10.0, 10.0, 49.0, 49.0, 0.9]])    # the face
    collector = samples._Collector(24, np.random.default_rng(0))
    samples._add_detections(collector, image, faces, ignored, detections, 3,
                            np.random.default_rng(0))
    assert sorted(collector.labels) == [samples.LABEL_NEGATIVE, samples.LABEL_POSITIVE]
    without = samples._Collector(24, np.random.default_rng(0))
    samples._add_detections(without, image, faces, ignored[:0], detections, 3,
                            np.random.default_rng(0))
    assert sorted(without.labels).count(samples.LABEL_NEGATIVE) == 2
    # Random negatives keep clear of ignored regions as of faces.
    crops = samples._negative_crops(image.shape, np.concatenate([faces, ignored]), 40,
                                    np.random.default_rng(1))
    for x, y, side in crops:
        assert iou_inclusive(samples.crop_box(x, y, side)[None], ignored).max() < samples.NEGATIVE_IOU
    from masksegx.training import train_detector

    assert train_detector._doubtful_lines({"onet": {"doubtful_score": None}}) == []
    assert "from 0.3 up to" in " ".join(
        train_detector._doubtful_lines({"onet": {"doubtful_score": 0.3}}))


def test_realzoom_cuts_real_single_face_photos_to_the_face_without_negatives(nets, tmp_path,
                                                                             monkeypatch):
    import cv2

    from masksegx.training import samples

    monkeypatch.setattr(samples, "ZOOM_IN_FRACTION", 1.0)  # zoom every photo it may
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (160, 240, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), image)
    single = samples.FaceImage(path, np.array([[80.0, 40.0, 139.0, 99.0]]))
    crowd = samples.FaceImage(path, np.array([[80.0, 40.0, 139.0, 99.0], [10.0, 10.0, 49.0, 49.0]]))
    quota = samples.Quota(positive=20, part=20, negative=40, landmark=0)

    def negatives(images, augment):
        made = samples.generate(images, [], 24, quota, 0, augment=augment)
        return int((made.labels == samples.LABEL_NEGATIVE).sum()), made

    assert negatives([single], ())[0] > 0
    count, zoomed = negatives([single], ("realzoom",))
    assert count == 0 and (zoomed.labels == samples.LABEL_POSITIVE).sum() > 0
    assert negatives([crowd], ("realzoom",))[0] > 0  # only single-face photos are zoomed
    assert negatives([single], ("zoom",))[0] > 0  # "zoom" alone keeps to the zoomable images


def test_doubtful_score_needs_the_ilc_teacher_set(nets, capsys):
    from masksegx.training import train_detector

    for extra in ([], ["--teacher", "rwmfd"]):
        with pytest.raises(SystemExit):
            train_detector.main(["--out", "unused", "--doubtful-score", "0.3", *extra])
        assert "needs --teacher with ilc2021" in capsys.readouterr().err


def test_distillation_targets_are_the_ensembles_mean_face_probability(nets, tmp_path):
    """``--distill``: the targets are the mean (or max) ``prob[:, 1]`` of the nets on the crops;
    with 0/1 targets the soft cross-entropy is the plain one, and a sample trained towards a
    teacher's 0.5 costs log 2 at p = 0.5."""
    pytest.importorskip("onnx")
    import torch
    import torch.nn.functional as F

    from masksegx.training import samples
    from masksegx.training.cascade import normalise
    from masksegx.training.train_detector import (
        ensemble_targets,
        export_onnx,
        multitask_losses,
    )

    torch.manual_seed(0)
    paths = []
    for k in range(2):
        path = tmp_path / f"rnet{k}.onnx"
        export_onnx(nets.build("rnet").eval(), "rnet", path)
        paths.append(path)
    rng = np.random.default_rng(0)
    count = 5
    data = samples.SampleSet(
        images=rng.integers(0, 256, (count, 24, 24, 3), dtype=np.uint8),
        labels=np.array([1, 0, -1, 1, 0], np.int8),
        offsets=np.zeros((count, 4), np.float32),
        landmarks=np.zeros((count, 10), np.float32),
        has_landmarks=np.zeros(count, bool),
    )
    import onnxruntime

    each = np.array([
        onnxruntime.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(
            ["prob"], {"input": normalise(data.images).numpy()})[0][:, 1]
        for p in paths
    ])
    assert np.abs(each[0] - each[1]).max() > 1e-3  # two different nets
    np.testing.assert_allclose(ensemble_targets(paths, data), each.mean(axis=0), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(ensemble_targets(paths, data, "max"), each.max(axis=0),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="rule"):
        ensemble_targets(paths, data, "median")

    logits = torch.randn(count, 2)
    labels = torch.from_numpy(data.labels)
    no_landmarks = torch.zeros(count, dtype=torch.bool)
    args = (torch.zeros(count, 4), torch.zeros(count, 10), no_landmarks)
    cls, _, _ = multitask_losses((logits, torch.zeros(count, 4)), labels, *args,
                                 labels.float(), ohem=False)
    classified = labels >= 0
    torch.testing.assert_close(cls, F.cross_entropy(logits[classified], labels[classified].long()))
    even = torch.zeros(count, 2)
    cls, _, _ = multitask_losses((even, torch.zeros(count, 4)), labels, *args,
                                 torch.full((count,), 0.5), ohem=False)
    torch.testing.assert_close(cls, torch.tensor(np.log(2.0), dtype=torch.float32))


def test_the_card_names_the_distillation_teachers_of_a_stage(nets, capsys, tmp_path):
    from masksegx.training import train_detector

    results = {"pnet": {}, "onet": {"distill": ["models/ds_mtcnn_onet.onnx",
                                                "../data/models/mtcnn_onet.onnx"]}}
    text = " ".join(train_detector._distill_lines(results))
    assert "Distillation (onet" in text
    assert "`ds_mtcnn_onet.onnx`, `mtcnn_onet.onnx`" in text
    assert train_detector._distill_lines({"onet": {"distill": []}}) == []
    with pytest.raises(SystemExit):
        train_detector.main(["--out", str(tmp_path), "--stage", "onet",
                             "--distill", str(tmp_path / "missing.onnx")])
    assert "--distill: no such ONNX file" in capsys.readouterr().err
