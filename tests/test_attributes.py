"""The attribute network's inference API (shipped model, bundled photos, generated arrays), its
marginals and wearing rule against numpy references, eval-attr on generated data, and the
training losses (when torch is installed). Never reads ../shared."""

import json

import cv2
import numpy as np
import pytest

import masksegx
from masksegx import AttributePredictor, FaceAttributes, predict_attributes
from masksegx.attributes import (
    DEFAULT_MODEL,
    METADATA_KEY,
    WEARING_STATES,
    expected_level,
    gender_marginals,
    level_marginals,
    wearing_state,
)
from masksegx.cli import main
from masksegx.detect import ModelNotFoundError
from masksegx.eval.detection import box_iou
from masksegx.examples import EXAMPLES
from onnx_builder import tiny_attribute_net

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="no shipped attribute model")


@pytest.fixture(scope="module")
def predictor():
    return AttributePredictor()


@pytest.fixture(scope="module")
def photo_faces():
    """(image, landmarks [N, 5, 2]) of the bundled photos, landmarks from the shipped detector,
    the annotated face first (other detections, such as false positives, after it)."""
    faces = []
    for example in EXAMPLES:
        image = cv2.imread(example.path)
        found = masksegx.detect_faces(image)
        assert len(found) >= 1
        overlaps = box_iou(np.array([example.face_box], np.float64), found.boxes)[0]
        order = np.argsort(-overlaps, kind="stable")
        assert overlaps[order[0]] > 0.4
        faces.append((image, found.landmarks[order]))
    return faces


def random_joint(rng, n=7):
    logits = rng.normal(0, 2, (n, 22))
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


# --- marginals and rule vs numpy references ----------------------------------------------------


def test_marginals_match_the_paper_equations(rng):
    joint = random_joint(rng)
    # eq. 11-13 with the paper's 1-based indices T_1..T_22.
    t = {i + 1: joint[:, i] for i in range(22)}
    female = sum(t[i] for i in range(1, 12))
    male = sum(t[i] for i in range(12, 23))
    np.testing.assert_allclose(gender_marginals(joint), np.stack([female, male], 1), rtol=1e-6)
    levels = np.stack([t[level + 1] + t[level + 12] for level in range(11)], 1)
    np.testing.assert_allclose(level_marginals(joint), levels, rtol=1e-6)
    np.testing.assert_allclose(
        expected_level(levels), (levels * np.arange(11)).sum(1), rtol=1e-6
    )


def test_wearing_rule_boundaries():
    assert wearing_state(0.49, (0.5, 4.5)) == "none"
    assert wearing_state(0.5, (0.5, 4.5)) == "incorrect"
    assert wearing_state(4.49, (0.5, 4.5)) == "incorrect"
    assert wearing_state(4.5, (0.5, 4.5)) == "correct"
    assert wearing_state(10.0, (0.5, 4.5)) == "correct"
    with pytest.raises(ValueError, match="thresholds"):
        wearing_state(1.0, (5.0, 1.0))


def test_attributes_follow_from_the_joint(predictor, rng):
    for joint in random_joint(rng, 20):
        face = predictor.attributes(joint)
        p_female, p_male = joint[:11].sum(), joint[11:].sum()
        assert face.gender == ("male" if p_male > p_female else "female")
        assert face.gender_prob == pytest.approx(float(p_male), rel=1e-5)
        levels = joint[:11] + joint[11:]
        np.testing.assert_allclose(face.coverage_probs, levels, rtol=1e-6)
        assert face.coverage == pytest.approx(float(levels @ np.arange(11)), rel=1e-5)
        assert face.wearing == wearing_state(face.coverage, predictor.wearing_thresholds)


# --- the shipped model -------------------------------------------------------------------------


def test_shipped_model_metadata(predictor):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(DEFAULT_MODEL), providers=["CPUExecutionProvider"])
    settings = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert settings["input_size"] == predictor.input_size
    assert session.get_inputs()[0].shape[1:] == [3, predictor.input_size, predictor.input_size]
    assert session.get_outputs()[0].shape[-1] == 22
    low, high = predictor.wearing_thresholds
    assert 0 <= low <= high <= 10
    assert predictor.has_wearing_head and not predictor.has_gender_head
    assert [o.name for o in session.get_outputs()] == ["probs", "wearing"]


def test_photos_give_valid_attributes(predictor, photo_faces):
    for image, landmarks in photo_faces:
        faces = predictor(image, landmarks)
        assert len(faces) == len(landmarks)
        for face in faces:
            assert isinstance(face, FaceAttributes)
            assert face.gender in ("female", "male")
            assert 0.0 <= face.gender_prob <= 1.0
            assert face.coverage_probs.shape == (11,) and face.coverage_probs.dtype == np.float32
            assert face.joint_probs.shape == (22,) and face.joint_probs.dtype == np.float32
            assert face.joint_probs.sum() == pytest.approx(1.0, abs=1e-4)
            assert 0.0 <= face.coverage <= 10.0
            assert face.wearing in ("none", "incorrect", "correct")


def test_masked_photos_read_as_masked(predictor, photo_faces):
    # Both bundled photos show a worn mask: the coverage must be well above an unmasked face's.
    for image, landmarks in photo_faces:
        best = predictor(image, landmarks[:1])[0]
        assert best.coverage > 2.0
        assert best.wearing != "none"


def test_batch_matches_single_faces(predictor, rng):
    image = rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)
    base = np.array([[70, 60], [110, 60], [90, 85], [74, 110], [106, 110]], float)
    batch = np.stack([base + rng.normal(0, 3, base.shape) for _ in range(4)])
    together = predictor.joint_probs(image, batch)
    for k in range(4):
        alone = predictor.joint_probs(image, batch[k])
        np.testing.assert_allclose(alone[0], together[k], rtol=1e-4, atol=1e-6)


def test_predict_attributes_shapes(photo_faces):
    image, landmarks = photo_faces[0]
    one = predict_attributes(image, landmarks[0])
    assert isinstance(one, FaceAttributes)
    many = predict_attributes(image, landmarks)
    assert isinstance(many, list) and len(many) == len(landmarks)
    np.testing.assert_allclose(many[0].joint_probs, one.joint_probs, rtol=1e-4, atol=1e-6)
    assert predict_attributes(image, np.zeros((0, 5, 2))) == []
    assert predict_attributes(image, landmarks[0].tolist()).gender == one.gender


def test_mirrored_face_keeps_gender_and_coverage(predictor, photo_faces):
    image, landmarks = photo_faces[0]
    points = landmarks[0]
    mirrored = np.ascontiguousarray(image[:, ::-1])
    flipped = points.copy()
    flipped[:, 0] = image.shape[1] - 1 - flipped[:, 0]
    flipped = flipped[[1, 0, 2, 4, 3]]  # left/right swap sides
    a, b = predictor(image, points)[0], predictor(mirrored, flipped)[0]
    assert abs(a.coverage - b.coverage) < 2.0


# --- the wearing head -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Random-weight attribute nets (one trunk): without heads, with a wearing head, a 4-class
    one, a gender head, a 3-class one, both heads."""
    folder = tmp_path_factory.mktemp("tiny_attributes")
    paths = {}
    for name, wearing, gender in (("plain", 0, 0), ("head", 3, 0), ("bad", 4, 0),
                                  ("gender", 0, 2), ("bad_gender", 0, 3), ("both", 3, 2)):
        paths[name] = folder / f"{name}.onnx"
        paths[name].write_bytes(tiny_attribute_net(np.random.default_rng(5), wearing_classes=wearing,
                                                   gender_classes=gender))
    return paths


@pytest.mark.parametrize("backend", ["native", "onnxruntime"])
def test_wearing_head_gives_the_wearing_state(tiny_models, photo_faces, backend):
    predictor = AttributePredictor(tiny_models["head"], backend=backend)
    assert predictor.has_wearing_head
    image, landmarks = photo_faces[0]
    faces = predictor(image, landmarks)
    # The head's probabilities are the mean over each crop and its mirror, like the joint's.
    crops = predictor.preprocess(image, landmarks)
    plain = predictor._net.run_all(crops)[1]
    mirrored = predictor._net.run_all(np.ascontiguousarray(crops[:, :, :, ::-1]))[1]
    expected = 0.5 * (plain + mirrored)
    for face, probs in zip(faces, expected):
        assert face.wearing_probs.shape == (3,) and face.wearing_probs.dtype == np.float32
        np.testing.assert_allclose(face.wearing_probs, probs, rtol=1e-4, atol=1e-6)
        assert face.wearing == WEARING_STATES[int(np.argmax(probs))]


def test_wearing_head_backends_agree(tiny_models, photo_faces):
    image, landmarks = photo_faces[1]
    native = AttributePredictor(tiny_models["head"], backend="native")(image, landmarks)
    reference = AttributePredictor(tiny_models["head"], backend="onnxruntime")(image, landmarks)
    for a, b in zip(native, reference):
        np.testing.assert_allclose(a.wearing_probs, b.wearing_probs, atol=1e-5)


def test_file_without_head_uses_the_thresholds(tiny_models, photo_faces):
    predictor = AttributePredictor(tiny_models["plain"])
    assert not predictor.has_wearing_head
    image, landmarks = photo_faces[0]
    for face in predictor(image, landmarks):
        assert face.wearing_probs is None
        assert face.wearing == wearing_state(face.coverage, predictor.wearing_thresholds)


def test_bad_wearing_heads(tiny_models, predictor, rng):
    with pytest.raises(ValueError, match="wearing"):
        AttributePredictor(tiny_models["bad"])
    joint = random_joint(rng, 1)[0]
    with pytest.raises(ValueError, match="wearing_probs"):
        predictor.attributes(joint, np.ones(4, np.float32) / 4)
    with pytest.raises(TypeError, match="wearing_probs"):
        predictor.attributes(joint, [0.2, 0.3, 0.5])
    face = predictor.attributes(joint, np.array([0.1, 0.7, 0.2], np.float32))
    assert face.wearing == "incorrect"
    assert predictor.attributes(joint).wearing_probs is None


# --- the gender head --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["native", "onnxruntime"])
@pytest.mark.parametrize("name", ["gender", "both"])
def test_gender_head_gives_the_gender(tiny_models, photo_faces, backend, name):
    predictor = AttributePredictor(tiny_models[name], backend=backend)
    assert predictor.has_gender_head and predictor.has_wearing_head == (name == "both")
    image, landmarks = photo_faces[0]
    faces = predictor(image, landmarks)
    # P(male) is the head's, averaged over each crop and its mirror; the joint is the trunk's.
    crops = predictor.preprocess(image, landmarks)
    index = predictor._net.output_names.index("gender")
    plain = predictor._net.run_all(crops)[index]
    mirrored = predictor._net.run_all(np.ascontiguousarray(crops[:, :, :, ::-1]))[index]
    expected = 0.5 * (plain + mirrored)
    without = AttributePredictor(tiny_models["plain"], backend=backend)(image, landmarks)
    for face, probs, bare in zip(faces, expected, without):
        assert face.gender_prob == pytest.approx(float(probs[1]), rel=1e-4, abs=1e-6)
        assert face.gender == ("male" if probs[1] > probs[0] else "female")
        np.testing.assert_allclose(face.joint_probs, bare.joint_probs, rtol=1e-5, atol=1e-7)
        assert face.coverage == pytest.approx(bare.coverage, rel=1e-5)
        assert (face.wearing_probs is not None) == (name == "both")
    assert predictor(image, np.zeros((0, 5, 2))) == []


def test_gender_head_backends_agree(tiny_models, photo_faces):
    image, landmarks = photo_faces[1]
    native = AttributePredictor(tiny_models["both"], backend="native")(image, landmarks)
    reference = AttributePredictor(tiny_models["both"], backend="onnxruntime")(image, landmarks)
    for a, b in zip(native, reference):
        assert a.gender_prob == pytest.approx(b.gender_prob, abs=1e-5)


def test_bad_gender_heads(tiny_models, predictor, rng):
    with pytest.raises(ValueError, match="gender"):
        AttributePredictor(tiny_models["bad_gender"])
    joint = random_joint(rng, 1)[0]
    with pytest.raises(ValueError, match="gender_probs"):
        predictor.attributes(joint, gender_probs=np.ones(3, np.float32) / 3)
    with pytest.raises(TypeError, match="gender_probs"):
        predictor.attributes(joint, gender_probs=[0.2, 0.8])
    face = predictor.attributes(joint, gender_probs=np.array([0.3, 0.7], np.float32))
    assert face.gender == "male" and face.gender_prob == pytest.approx(0.7)
    assert not AttributePredictor(tiny_models["head"]).has_gender_head


# --- bad input ---------------------------------------------------------------------------------


def test_bad_inputs_name_the_argument(predictor):
    image = np.zeros((50, 50, 3), np.uint8)
    points = np.array([[15, 20], [35, 20], [25, 28], [18, 38], [32, 38]], float)
    with pytest.raises(TypeError, match="image"):
        predictor(image.astype(np.float32), points)
    with pytest.raises(ValueError, match="image"):
        predictor(image[:, :, 0], points)
    with pytest.raises(ValueError, match="landmarks"):
        predictor(image, points[:4])
    with pytest.raises(ValueError, match="landmarks"):
        predictor(image, np.zeros((2, 3, 5, 2)))
    with pytest.raises(ValueError, match="landmarks"):
        predictor(image, np.full((5, 2), np.nan))
    with pytest.raises(TypeError, match="landmarks"):
        predictor(image, "eyes")
    with pytest.raises(ValueError, match="landmarks"):
        predictor(image, np.zeros((5, 2)))  # all points coincide
    with pytest.raises(TypeError, match="threads"):
        AttributePredictor(threads="1")
    with pytest.raises(ValueError, match="threads"):
        AttributePredictor(threads=0)
    with pytest.raises(TypeError, match="model"):
        AttributePredictor(3)


def test_missing_and_corrupt_models(tmp_path):
    with pytest.raises(ModelNotFoundError, match="model"):
        AttributePredictor(tmp_path / "none.onnx")
    with pytest.raises(FileNotFoundError):
        predict_attributes(np.zeros((8, 8, 3), np.uint8), np.zeros((5, 2)),
                           model=tmp_path / "none.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx file")
    with pytest.raises(ValueError, match="model"):
        AttributePredictor(corrupt)


# --- eval-attr on generated data ---------------------------------------------------------------


def write_mtfl(root, count=4):
    """An MTFL-format list over copies of a bundled photo (landmarks from the detector)."""
    image = cv2.imread(EXAMPLES[1].path)
    points = masksegx.detect_faces(image).landmarks[0]
    (root / "images").mkdir(parents=True)
    lines = []
    for k in range(count):
        cv2.imwrite(str(root / "images" / f"face{k}.jpg"), image)
        xs, ys = points[:, 0], points[:, 1]
        values = " ".join(f"{v:.2f}" for v in (*xs, *ys))
        lines.append(f"face{k}.jpg {values} {1 + k % 2} 1 2 3")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root / "list.txt", root / "images"


def test_eval_attr_cli_writes_json(tmp_path):
    annotations, images = write_mtfl(tmp_path / "mtfl", count=10)
    out = tmp_path / "attr.json"
    code = main(["eval-attr", "--annotations", str(annotations), "--images", str(images),
                 "--format", "mtfl", "--json", str(out)])
    assert code == 0
    record = json.loads(out.read_text())
    assert {"gender_acc", "gender_acc_female", "gender_acc_male", "n_images"} <= set(record)
    assert record["n_images"] == 10
    # Identical photos, half labelled male, half female: exactly one half is right.
    assert record["gender_acc"] == pytest.approx(0.5)
    out_val = tmp_path / "val.json"
    assert main(["eval-attr", "--annotations", str(annotations), "--images", str(images),
                 "--format", "mtfl", "--split", "val", "--json", str(out_val)]) == 0
    assert json.loads(out_val.read_text())["n_images"] == 1


def test_eval_attr_utk_names_and_detector(tmp_path):
    image = cv2.imread(EXAMPLES[1].path)
    folder = tmp_path / "utk"
    folder.mkdir()
    for name in ("30_0_0_20170101000000000.jpg.chip.jpg", "41_1_2_20170101000000001.jpg.chip.jpg",
                 "5_0_0_20170101000000002.jpg.chip.jpg", "61_3_20170109150557335.jpg.chip.jpg"):
        cv2.imwrite(str(folder / name), image)
    out = tmp_path / "utk.json"
    assert main(["eval-attr", "--annotations", str(folder), "--images", str(folder),
                 "--format", "utk", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["n_images"] == 2  # under 10 and gender-less names skipped
    assert record["n_detected"] == 2


def write_voc_faces(root, stems):
    """A det/ilc2021-style folder: copies of a bundled photo named ``<stem>.jpg``, each with a
    VOC file boxing its face (the detector's box) as ``mask_weared_incorrect``."""
    image = cv2.imread(EXAMPLES[1].path)
    x1, y1, x2, y2 = masksegx.detect_faces(image).boxes[0]
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for stem in stems:
        cv2.imwrite(str(root / "images" / f"{stem}.jpg"), image)
        (root / "annotations" / f"{stem}.xml").write_text(
            "<annotation><object><name>mask_weared_incorrect</name><bndbox>"
            f"<xmin>{x1:.0f}</xmin><ymin>{y1:.0f}</ymin><xmax>{x2:.0f}</xmax><ymax>{y2:.0f}</ymax>"
            "</bndbox></object></annotation>\n")
    return root


def test_eval_attr_ilc_wearing(tmp_path, capsys):
    """--ilc scores the wearing state on the ILC validation crops only (names ending in 0 or
    1) and prints their confusion table."""
    annotations, images = write_mtfl(tmp_path / "mtfl", count=2)
    ilc = write_voc_faces(tmp_path / "ilc", ["a0", "b1", "c2", "d9"])
    out = tmp_path / "ilc.json"
    assert main(["eval-attr", "--annotations", str(annotations), "--images", str(images),
                 "--format", "mtfl", "--ilc", str(ilc), "--json", str(out)]) == 0
    wearing = json.loads(out.read_text())["wearing_ilc"]
    assert wearing["n_faces"] + wearing["n_missed"] == 2
    assert sum(wearing["confusion"]["incorrect"].values()) == wearing["n_faces"]
    assert sum(sum(row.values()) for row in wearing["confusion"].values()) == wearing["n_faces"]
    assert wearing["wearing_acc"] == pytest.approx(
        wearing["confusion"]["incorrect"]["incorrect"] / max(wearing["n_faces"], 1))
    printed = capsys.readouterr().out
    assert "ILC validation crops" in printed and "truth" in printed


def test_eval_attr_errors(tmp_path, capsys):
    code = main(["eval-attr", "--annotations", str(tmp_path / "missing.txt"), "--images",
                 str(tmp_path), "--format", "mtfl"])
    assert code == 2
    assert "eval-attr: error" in capsys.readouterr().err


# --- training pieces (torch) -------------------------------------------------------------------


def test_losses_match_numpy(rng):
    torch = pytest.importorskip("torch")
    from masksegx.training.train_attributes import SIGMA, Variant, losses, total_loss

    joint = random_joint(rng, 6).astype(np.float64)
    gender = np.array([0, 1, -1, 1, -1, 0])
    level = np.array([0, 3, 7, -1, -1, 10])
    set_mask = np.zeros((6, 11), bool)
    set_mask[4, 5:] = True
    terms = losses(torch.tensor(np.log(joint), dtype=torch.float32), torch.tensor(gender),
                   torch.tensor(level), torch.tensor(set_mask))
    p_gender = np.stack([joint[:, :11].sum(1), joint[:, 11:].sum(1)], 1)
    p_level = joint[:, :11] + joint[:, 11:]
    has_g, has_l = gender >= 0, level >= 0
    ce = -np.log(p_gender[has_g, gender[has_g]]).mean()
    expected = p_level @ np.arange(11)
    l1 = np.abs(expected[has_l] - level[has_l]).mean()
    kls = []
    for k in np.flatnonzero(has_l):
        g = np.exp(-0.5 * ((np.arange(11) - level[k]) / SIGMA) ** 2)
        g /= g.sum()
        kls.append(np.sum(g * np.log(g / p_level[k])))
    set_nll = -np.log(p_level[4, 5:].sum())
    assert float(terms["ce_gender"]) == pytest.approx(ce, rel=1e-4)
    assert float(terms["l1"]) == pytest.approx(l1, rel=1e-4)
    assert float(terms["kl"]) == pytest.approx(np.mean(kls), rel=1e-4)
    assert float(terms["set"]) == pytest.approx(set_nll, rel=1e-4)
    eq15 = 0.4 * l1 + 0.6 * np.mean(kls) + 2.0 * ce + set_nll
    assert float(total_loss(terms, Variant("t", x=2.0))) == pytest.approx(eq15, rel=1e-4)


def test_soft_gender_targets():
    """A P(male) target t gives the cross-entropy -(t log P(male) + (1 - t) log P(female)); 0/1
    targets are the hard-label loss."""
    torch = pytest.importorskip("torch")
    from masksegx.training.train_attributes import losses

    joint = random_joint(np.random.default_rng(1), 3).astype(np.float64)
    p_male = joint[:, 11:].sum(1)
    target = np.array([0.8, 1.0, 0.0])
    terms = losses(torch.tensor(np.log(joint), dtype=torch.float32),
                   torch.tensor(target, dtype=torch.float32), torch.tensor([-1, -1, -1]),
                   torch.zeros(3, 11, dtype=torch.bool))
    ce = -(target * np.log(p_male) + (1 - target) * np.log(1 - p_male)).mean()
    assert float(terms["ce_gender"]) == pytest.approx(ce, rel=1e-4)


def test_consistency_pulls_the_masked_copy_towards_the_bare_face():
    """KL(bare || masked) of the gender marginals: 0 for equal ones, the closed form otherwise,
    gradient only into the masked version; the pairs join the batch as labelled samples."""
    torch = pytest.importorskip("torch")
    from masksegx.training.train_attributes import (
        PAIR_BARE,
        PAIR_MASKED,
        consistency,
        with_pairs,
    )

    joint = random_joint(np.random.default_rng(2), 2).astype(np.float64)
    bare = torch.tensor(np.log(joint), dtype=torch.float32, requires_grad=True)
    same = torch.tensor(np.log(joint), dtype=torch.float32, requires_grad=True)
    state = torch.tensor([PAIR_MASKED, PAIR_MASKED])
    assert float(consistency(bare, same, state).detach()) == pytest.approx(0.0, abs=1e-6)
    other = torch.tensor(np.log(joint[::-1].copy()), dtype=torch.float32, requires_grad=True)
    loss = consistency(bare, other, state)
    p, q = joint[:, 11:].sum(1), joint[::-1, 11:].sum(1)
    kl = (p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))).mean()
    assert float(loss.detach()) == pytest.approx(kl, rel=1e-4)
    loss.backward()
    assert float(bare.grad.abs().sum()) == 0 and float(other.grad.abs().sum()) > 0
    # The sample itself masked (its pair bare): the roles swap.
    swapped = consistency(other, bare, torch.tensor([PAIR_BARE, PAIR_BARE]))
    assert float(swapped.detach()) == pytest.approx(kl, rel=1e-4)

    images = {8: torch.zeros(3, 3, 8, 8, dtype=torch.uint8)}
    pairs = {8: torch.ones(3, 3, 8, 8, dtype=torch.uint8)}
    batch = (images, torch.tensor([1.0, 0.0, -1.0]), torch.tensor([0, 0, 5]),
             torch.zeros(3, 11, dtype=torch.bool))
    grown = with_pairs(batch, pairs, torch.tensor([6, 0, 0]), torch.tensor([0]))
    assert grown[0][8].shape[0] == 4 and int(grown[0][8][3].max()) == 1
    assert grown[1].tolist() == [1.0, 0.0, -1.0, 1.0] and grown[2].tolist() == [0, 0, 5, 6]
    assert with_pairs(batch, pairs, torch.zeros(3), torch.tensor([], dtype=torch.long)) is batch


def test_start_from_reproduces_an_exported_net(tmp_path):
    """--start-from loads an exported attributes.onnx (BatchNorm folded) into a fresh net that
    reproduces it, with its BatchNorm statistics frozen."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from masksegx.training.attr_net import AttributeNet, ExportWrapper
    from masksegx.training.export import write_onnx
    from masksegx.training.train_attributes import start_from

    torch.manual_seed(0)
    source = AttributeNet(0.25).train()
    with torch.no_grad():  # non-trivial BatchNorm statistics to fold
        source(torch.randn(8, 3, 32, 32))
    path = tmp_path / "net.onnx"
    write_onnx(ExportWrapper(source, mirror=False).eval(), (1, 3, 32, 32), path, ["probs"], 17,
               {"input": {0: "batch"}, "probs": {0: "batch"}})
    net = AttributeNet(0.25)
    start_from(net, path, 32)
    batchnorms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert batchnorms and not any(m.training for m in batchnorms)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(net.eval()(x).exp().numpy(), source.eval()(x).exp().numpy(),
                                   atol=1e-5)
    with pytest.raises(ValueError, match="joint head"):
        start_from(AttributeNet(0.25, "separate"), path, 32)
    with pytest.raises(ValueError, match="kernel"):
        start_from(AttributeNet(0.5), path, 32)


def test_pseudo_labels_keep_agreeing_confident_faces(tmp_path):
    """Only unmasked training faces without gender get teacher labels, and only where the
    teachers agree with a mean at least the margin away from 0.5."""
    pytest.importorskip("torch")
    from masksegx.training.train_attributes import pseudo_labels

    names = np.array(["a", "b", "c", "d", "e", "f"])
    meta = {
        "source": np.array(["cuhk"] * 4 + ["mtfl", "ilc"]), "name": names,
        "split": np.array([0, 0, 0, 1, 0, 0], np.int8),
        "gender": np.array([-1, -1, -1, -1, 1, -1], np.int8),
        "wearing": np.array([0, 0, 0, 0, 0, 2], np.int8),
        "level": np.array([0, 0, 0, 0, 0, -1], np.int8),
        "synth": np.array([True, True, True, True, True, False]),
    }
    meta["gender_target"] = meta["gender"].astype(np.float32)
    teachers = tmp_path / "teachers.npz"
    np.savez(teachers, source=meta["source"], name=names,
             p_one=np.array([0.95, 0.9, 0.1, 0.95, 0.9, 0.9], np.float32),
             p_two=np.array([0.85, 0.3, 0.1, 0.95, 0.9, 0.9], np.float32))
    counts = pseudo_labels(meta, teachers, ["one", "two"], margin=0.3)
    assert counts == {"cuhk": 2}
    np.testing.assert_allclose(meta["gender_target"], [0.9, -1, 0.1, -1, 1, -1], atol=1e-6)


def _keras_layer(kind, name, inbound, **config):
    return {"class_name": kind, "name": name, "config": {"name": name, **config},
            "inbound_nodes": [[[node, 0, 0, {}] for node in inbound]] if inbound else []}


def _conv_reference(x, kernel, padding):
    """Naive NHWC convolution (stride 1) with a Keras HWIO kernel; "same" pads symmetrically
    (odd kernels)."""
    kh, kw, _, cout = kernel.shape
    if padding == "same":
        x = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], h, w, cout))
    for i in range(kh):
        for j in range(kw):
            out += x[:, i : i + h, j : j + w, :] @ kernel[i, j]
    return out


def test_mini_xception_reader_matches_numpy(tmp_path):
    """The Keras HDF5 reader runs a small generated graph of the mini-Xception layer kinds
    (convolution, separable convolution, batch norm, ReLU, "same" max pooling, add, global
    average pooling, softmax) as a numpy reference does."""
    pytest.importorskip("torch")
    h5py = pytest.importorskip("h5py")
    from masksegx.training.teachers import MiniXception

    rng = np.random.default_rng(0)
    weights = {
        "conv": {"kernel:0": rng.normal(0, 0.5, (3, 3, 1, 4))},
        "bn": {"gamma:0": rng.uniform(0.5, 1.5, 4), "beta:0": rng.normal(0, 0.1, 4),
               "moving_mean:0": rng.normal(0, 0.1, 4), "moving_variance:0": rng.uniform(0.5, 2, 4)},
        "sep": {"depthwise_kernel:0": rng.normal(0, 0.5, (3, 3, 4, 1)),
                "pointwise_kernel:0": rng.normal(0, 0.5, (1, 1, 4, 4))},
        "head": {"kernel:0": rng.normal(0, 0.5, (1, 1, 4, 2)), "bias:0": rng.normal(0, 0.1, 2)},
    }
    layers = [
        _keras_layer("InputLayer", "input_1", [], batch_input_shape=[None, 8, 8, 1]),
        _keras_layer("Conv2D", "conv", ["input_1"], filters=4, kernel_size=[3, 3],
                     strides=[1, 1], padding="valid", use_bias=False),
        _keras_layer("BatchNormalization", "bn", ["conv"], axis=-1, epsilon=0.001),
        _keras_layer("Activation", "relu", ["bn"], activation="relu"),
        _keras_layer("SeparableConv2D", "sep", ["relu"], filters=4, kernel_size=[3, 3],
                     strides=[1, 1], padding="same", use_bias=False),
        _keras_layer("Add", "add", ["sep", "relu"]),
        _keras_layer("MaxPooling2D", "pool", ["add"], pool_size=[3, 3], strides=[2, 2],
                     padding="same"),
        _keras_layer("Conv2D", "head", ["pool"], filters=2, kernel_size=[1, 1], strides=[1, 1],
                     padding="same", use_bias=True),
        _keras_layer("GlobalAveragePooling2D", "gap", ["head"]),
        _keras_layer("Activation", "predictions", ["gap"], activation="softmax"),
    ]
    config = {"class_name": "Model", "config": {"layers": layers,
                                                 "output_layers": [["predictions", 0, 0]]}}
    path = tmp_path / "mini.hdf5"
    with h5py.File(path, "w") as file:
        file.attrs["model_config"] = json.dumps(config)
        for layer in layers:
            group = file.create_group(f"model_weights/{layer['name']}")
            for key, value in weights.get(layer["name"], {}).items():
                group.create_dataset(f"{layer['name']}/{key}", data=value.astype(np.float32))
    gray = rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)
    got = MiniXception(path)(gray)

    x = (gray.astype(np.float64) / 255 * 2 - 1)[..., None]
    h = _conv_reference(x, weights["conv"]["kernel:0"], "valid")
    bn = weights["bn"]
    h = (h - bn["moving_mean:0"]) / np.sqrt(bn["moving_variance:0"] + 0.001) * bn["gamma:0"] + bn["beta:0"]
    relu = np.maximum(h, 0)
    depthwise = weights["sep"]["depthwise_kernel:0"]
    sep = sum(_conv_reference(relu[..., c : c + 1], depthwise[:, :, c : c + 1, :], "same")
              * np.eye(4)[c] for c in range(4))
    added = _conv_reference(sep, weights["sep"]["pointwise_kernel:0"], "valid") + relu
    # 6x6 -> 3x3 with TensorFlow "same" padding: one -inf row/column after the end.
    padded = np.pad(added, ((0, 0), (0, 1), (0, 1), (0, 0)), constant_values=-np.inf)
    pooled = np.stack([np.stack([padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max((1, 2))
                                 for j in range(3)], 1) for i in range(3)], 1)
    logits = (_conv_reference(pooled, weights["head"]["kernel:0"], "valid")
              + weights["head"]["bias:0"]).mean((1, 2))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(got, probs[:, 1], atol=1e-5)


def test_strong_augmentation_keeps_the_crop_format():
    pytest.importorskip("torch")
    from masksegx.training.train_attributes import AUGMENTATIONS, augment

    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    for _ in range(20):
        out = augment(crop, rng, AUGMENTATIONS["strong"])
        assert out.shape == crop.shape and out.dtype == np.uint8


def test_separate_heads_give_a_normalised_joint():
    torch = pytest.importorskip("torch")
    from masksegx.training.attr_net import AttributeNet

    for head in ("joint", "separate"):
        net = AttributeNet(0.25, head).eval()
        with torch.no_grad():
            out = net(torch.randn(3, 3, 48, 48)).exp()
        assert out.shape == (3, 22)
        np.testing.assert_allclose(out.sum(1).numpy(), 1.0, rtol=1e-5)


def test_threshold_fit_recovers_a_clean_rule():
    pytest.importorskip("torch")
    from masksegx.training.train_attributes import fit_thresholds, wearing_from

    expected = np.array([0.0, 0.2, 0.3, 2.0, 3.0, 3.5, 5.5, 6.0, 7.0])
    truth = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    low, high = fit_thresholds(expected, truth)
    assert (wearing_from(expected, (low, high)) == truth).all()


def test_utk_names():
    from masksegx.training.attr_cache import parse_utk_name

    assert parse_utk_name("30_0_0_20170101000000000.jpg.chip.jpg") == (30, 1)
    assert parse_utk_name("30_1_0_20170101000000000.jpg.chip.jpg") == (30, 0)
    assert parse_utk_name("61_3_20170109150557335.jpg.chip.jpg") is None


def test_cache_round_trip(tmp_path):
    """attr_cache writes mosaics + labels + downscaled templates that read_cache and the
    synthesis module read back (fake MaskTheFace folder, generated crops)."""
    from masksegx.synthesis import load_templates, load_textures
    from masksegx.training.attr_cache import Builder, read_cache

    source = tmp_path / "shared"
    (source / "masktemplates/masks/templates").mkdir(parents=True)
    (source / "masktemplates/masks/textures/check").mkdir(parents=True)
    template = np.zeros((300, 400, 4), np.uint8)
    template[50:250, 50:350] = (200, 150, 100, 255)
    cv2.imwrite(str(source / "masktemplates/masks/templates/plain.png"), template)
    cv2.imwrite(str(source / "masktemplates/masks/textures/check/c.png"),
                np.full((300, 300, 3), 90, np.uint8))
    (source / "masktemplates/masks/masks.cfg").write_text(
        "[plain]\ntemplate: masks/templates/plain.png\nmask_a: 50, 100\nmask_b: 200, 50\n"
        "mask_c: 350, 100\nmask_d: 80, 220\nmask_e: 200, 250\nmask_f: 320, 220\n"
    )
    builder = Builder.__new__(Builder)  # no reference detector needed to write
    builder.data, builder.limit, builder.crop_size, builder.quality = source, None, 32, 95
    builder.rows, builder.crops, builder.stats = [], [], {}
    yy, xx = np.mgrid[0:120, 0:100]
    image = np.stack([xx * 2, yy * 2, 255 - xx - yy], axis=2).clip(0, 255).astype(np.uint8)
    points = np.array([[35, 50], [65, 50], [50, 65], [38, 80], [62, 80]], float)
    for k in range(40):  # more than one mosaic row
        shade = np.clip(image.astype(int) - 12 * (k % 7), 0, 255).astype(np.uint8)
        builder.add(shade, points + k % 3, "mtfl", f"f{k}", k % 10 == 9, gender=k % 2, level=0,
                    wearing=0, synth=True)
    out = tmp_path / "cache"
    info = builder.write(out, "test")
    crops, meta, read_info = read_cache(out)
    assert crops.shape == (40, 32, 32, 3) and read_info == info
    stored = np.stack(builder.crops).astype(int)
    error = np.abs(crops.astype(int) - stored).mean(axis=(1, 2, 3))
    shifted = np.abs(crops.astype(int) - np.roll(stored, 1, axis=0)).mean(axis=(1, 2, 3))
    assert error.max() < 6 and (error < shifted).all()  # JPEG loss only, tiles in order
    np.testing.assert_array_equal(meta["gender"], np.arange(40) % 2)
    assert meta["split"].sum() == 4 and meta["landmarks"].shape == (40, 5, 2)
    small = load_templates(out / "templates")
    assert small[0].name == "plain" and np.ptp(small[0].anchors[:, 0]) <= 128.5
    assert list(load_textures(out / "templates")) == ["c"]


def test_mirror_average(photo_faces):
    image, landmarks = photo_faces[0]
    plain = AttributePredictor(mirror=False)
    averaged = AttributePredictor()
    if not averaged.mirror_here:
        pytest.skip("the shipped graph averages the mirror image itself")
    crop = plain.preprocess(image, landmarks[:1].astype(np.float64))
    flipped = np.ascontiguousarray(crop[:, :, :, ::-1])
    direct = plain._net.run(crop)
    mirrored = plain._net.run(flipped)
    np.testing.assert_allclose(averaged.joint_probs(image, landmarks[:1]),
                               0.5 * (direct + mirrored), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(plain.joint_probs(image, landmarks[:1]), direct, rtol=1e-5)
    with pytest.raises(TypeError, match="mirror"):
        AttributePredictor(mirror="yes")


def test_backends_give_the_same_probabilities(photo_faces):
    native = AttributePredictor(backend="native")
    reference = AttributePredictor(backend="onnxruntime")
    for image, landmarks in photo_faces:
        np.testing.assert_allclose(native.joint_probs(image, landmarks),
                                   reference.joint_probs(image, landmarks), atol=1e-5)


def test_branch_head_training_pieces(tmp_path, rng):
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from masksegx.attributes import DEFAULT_SETTINGS
    from masksegx.training import branch_heads
    from masksegx.training.branch_heads import GENDER_HEAD, WEARING_HEAD, Head

    pooled_gender = Head(GENDER_HEAD.output, GENDER_HEAD.classes, "pooled")

    trunk = onnx.load_from_string(tiny_attribute_net(np.random.default_rng(2)))
    crops = rng.integers(0, 256, (6, DEFAULT_SETTINGS["crop_size"], DEFAULT_SETTINGS["crop_size"], 3),
                         dtype=np.uint8)
    features, joint = branch_heads.branch_inputs(
        branch_heads.feature_session(trunk, WEARING_HEAD), crops, DEFAULT_SETTINGS)
    assert features.shape == (2, 6, 8, 62, 62) and joint.shape == (6, 22)
    plain, _ = branch_heads.branch_inputs(
        branch_heads.feature_session(trunk, WEARING_HEAD), crops, DEFAULT_SETTINGS, mirror=False)
    np.testing.assert_array_equal(plain, features[:1])
    # Untrained, the block head's block is the trunk's: its pooled features are the trunk's,
    # which a pooled head reads.
    template = branch_heads.branch_module(trunk, WEARING_HEAD)
    with torch.no_grad():
        pooled = template[:-1](torch.from_numpy(features[0])).numpy()
    batch = np.stack([masksegx.attributes.network_input(c, DEFAULT_SETTINGS) for c in crops])
    probe = onnx.ModelProto()
    probe.CopyFrom(trunk)
    probe.graph.output.append(onnx.helper.make_tensor_value_info("pooled", onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(probe.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    trunk_pooled = session.run(["pooled"], {"input": batch})[0].reshape(6, 8)
    np.testing.assert_allclose(pooled, trunk_pooled, rtol=1e-4, atol=1e-5)
    pooled_features, _ = branch_heads.branch_inputs(
        branch_heads.feature_session(trunk, pooled_gender), crops, DEFAULT_SETTINGS)
    assert pooled_features.shape == (2, 6, 8, 1, 1)
    np.testing.assert_allclose(pooled_features[0].reshape(6, 8), trunk_pooled, rtol=1e-5)
    # The exported heads are the trained ones: the predictor's wearing state is
    # branch_heads.predict's, its P(male) mean_probs' (soft targets train the gender head).
    wearing = branch_heads.fit_branch(template, features[0], np.arange(6) % 3, 1e-2, epochs=3,
                                      learning_rate=1e-2, batch=4)
    soft = np.stack([np.linspace(0.1, 0.9, 6), np.linspace(0.9, 0.1, 6)], axis=1)
    gender = branch_heads.fit_branch(branch_heads.branch_module(trunk, pooled_gender),
                                     pooled_features[0], soft, 1e-2, epochs=3, learning_rate=1e-2,
                                     batch=4)
    both = branch_heads.with_head(branch_heads.with_head(trunk, wearing, WEARING_HEAD), gender,
                                  pooled_gender)
    path = tmp_path / "headed.onnx"
    onnx.save(both, str(path))
    mirrored = np.ascontiguousarray(np.concatenate([batch, batch[:, :, :, ::-1]]))
    for backend in ("native", "onnxruntime"):
        predictor = AttributePredictor(path, backend=backend)
        outputs = predictor._net.run_all(mirrored)
        probs = outputs[predictor._net.output_names.index("wearing")]
        states = np.argmax(0.5 * (probs[:6] + probs[6:]), axis=1)
        np.testing.assert_array_equal(states, branch_heads.predict(wearing, features))
        probs = outputs[predictor._net.output_names.index("gender")]
        np.testing.assert_allclose(0.5 * (probs[:6] + probs[6:]),
                                   branch_heads.mean_probs(gender, pooled_features),
                                   rtol=1e-4, atol=1e-6)
    # A head replaced keeps the other; without_heads gives the trunk back.
    again = branch_heads.with_head(branch_heads.without_head(onnx.load(str(path)), WEARING_HEAD),
                                   wearing, WEARING_HEAD)
    assert [o.name for o in again.graph.output] == ["probs", "gender", "wearing"]
    # The block head adds its 5 block nodes and 4 more, the pooled head 3.
    assert len(again.graph.node) == len(trunk.graph.node) + 9 + 3
    assert branch_heads.without_heads(again).SerializeToString() == trunk.SerializeToString()
    with pytest.raises(ValueError, match="classes"):
        branch_heads.with_head(trunk, wearing, GENDER_HEAD)
    # A block head for the gender: the trunk's block copied, two classes.
    block_gender = branch_heads.branch_module(trunk, GENDER_HEAD)
    assert isinstance(block_gender[0], torch.nn.Conv2d) and block_gender[-1].out_features == 2
    with pytest.raises(ValueError, match="source"):
        Head("gender", 2, "everywhere")
    # Any other structure before the pooling is refused.
    flat = onnx.load_from_string(tiny_attribute_net(np.random.default_rng(2)))
    last_pool = next(n for n in flat.graph.node if n.output[0] == "last_pool")
    next(n for n in flat.graph.node if n.op_type == "GlobalAveragePool").input[0] = last_pool.input[0]
    flat.graph.node.remove(last_pool)
    with pytest.raises(ValueError, match="block"):
        branch_heads.last_block(flat)


def test_wearing_folds_keep_photos_together():
    pytest.importorskip("torch")
    from masksegx.training.branch_heads import photo_folds

    names = np.array([f"photo{k // 3}.jpg#{k % 3}" for k in range(30)])
    folds = photo_folds(names, 5, seed=0)
    for k in range(0, 30, 3):
        assert len(set(folds[k : k + 3])) == 1
    assert set(folds) == set(range(5))


def test_card_sections_are_replaced():
    from masksegx.training.attr_report import GENDER_SECTION, WEARING_SECTION, section, with_section

    begin, end = WEARING_SECTION
    card = with_section("# Card\n\ntext\n", WEARING_SECTION, f"{begin}\nfirst\n{end}")
    assert section(card, WEARING_SECTION) == f"{begin}\nfirst\n{end}"
    card = with_section(card + "after\n", WEARING_SECTION, f"{begin}\nsecond\n{end}")
    assert card.startswith("# Card\n\ntext\n") and card.endswith("after\n")
    assert "second" in card and "first" not in card and card.count(begin) == 1
    assert section("# Card\n", WEARING_SECTION) is None
    # The gender section is one of its own beside it.
    card = with_section(card, GENDER_SECTION, "\n".join([GENDER_SECTION[0], "g", GENDER_SECTION[1]]))
    assert section(card, WEARING_SECTION) == f"{begin}\nsecond\n{end}"
    assert section(card, GENDER_SECTION) == "\n".join([GENDER_SECTION[0], "g", GENDER_SECTION[1]])


def test_card_refresh_rewrites_summary_and_results_only():
    from masksegx.training.attr_report import RUNS, refreshed_card

    scores = {"gender_acc_female": 0.9, "gender_acc_male": 0.8}
    evals = {name: {"n_images": 10, "gender_acc": 0.8765, **scores, "ms_per_face": 4.0,
                    "reference": {"gender_acc": 0.5, **scores}} for name in RUNS}
    confusion = {t: {p: int(t == p) for p in ("none", "incorrect", "correct")}
                 for t in ("none", "incorrect", "correct")}
    for key in ("wearing", "wearing_ilc"):
        evals["mtfl_val"][key] = {"wearing_acc": 1.0, "n_faces": 3, "n_missed": 0,
                                  "confusion": confusion}
    mae = {"level_mae": 0.5}
    metrics = {"chosen": "x2", "variants": {"x2": {"metrics": {
        "val_ffhq": mae, "val_real_dev": mae, "val_masked": mae}}}}
    card = ("# Card\n\n## Summary\n\nold summary\n\n## Model\n\nmodel text\n\n"
            "## Results (validation faces)\n\nold results\n\n## Licenses\n\nlicense text\n")
    new = refreshed_card(card, metrics, evals, {"x2": 3.0}, "eval-attr ...")
    assert "old summary" not in new and "old results" not in new
    # Four Summary rows, four Results rows and the two pooled lines.
    assert new.count("0.8765") == 10
    assert new.startswith("# Card\n\n## Summary\n")
    assert "\n\n## Model\n\nmodel text\n\n## Results" in new
    assert new.endswith("\n\n## Licenses\n\nlicense text\n")
    assert refreshed_card(new, metrics, evals, {"x2": 3.0}, "eval-attr ...") == new


def test_gender_head_targets_and_card_section():
    pytest.importorskip("torch")
    from masksegx.training.attr_report import GENDER_SECTION, RUNS
    from masksegx.training.train_gender import section_markdown, soft_targets

    meta = {"gender_target": np.array([0, 1, -1, 0.8], np.float32)}
    targets = soft_targets(meta)
    np.testing.assert_allclose(targets[[0, 1, 3]], [[1, 0], [0, 1], [0.2, 0.8]], rtol=1e-6)
    assert np.isnan(targets[2]).all()
    score = {"unmasked": 0.9, "masked": 0.8}
    loso = [{"epochs": e, "decay": d, "held_out": h, "n": 5, "head": score, "gender_v1": score}
            for e in (2, 4) for d in (0.01, 0.05) for h in ("mtfl", "utk")]
    run = {"n_images": 5, "gender_acc": 0.9, "reference": {"gender_acc": 0.8}}
    record = {"source": "block", "n_train": 10, "pseudo_labelled": {"cuhk": 3}, "copies": 2, "epochs": 4,
              "learning_rate": 1e-3, "decay": 0.05, "loso": loso, "commands": ["a", "b"],
              "crops": {"mtfl": {"n": 5, "joint": score, "head": score, "gender_v1": score}},
              "pipeline": {"joint": dict.fromkeys(RUNS, run), "head": dict.fromkeys(RUNS, run)}}
    text = section_markdown(record)
    assert text.startswith(GENDER_SECTION[0]) and text.endswith(GENDER_SECTION[1])
    assert "teacher pseudo-labels: cuhk 3" in text and "    a\n    b\n" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 3 * 2 + len(loso) + 1 + len(RUNS)  # three tables: header, rule, rows
