"""Condition extractors on hand-made frames with known answers, exact toy conditions, plug-in backends, HED."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from cinetune.conditions import (EXACT_KINDS, KINDS, Canny, exact_condition, exact_structured, extract,
                                 get_extractor)
from cinetune.conditions.dense import Depth, normals_from_nearness
from cinetune.conditions.pose import group_people
from cinetune.errors import CinetuneError
from cinetune.metrics import edge_f1
from cinetune.toyworld import render_clip


def square_video(frames: int = 3, size: int = 64, lo: int = 16, hi: int = 48) -> np.ndarray:
    v = np.zeros((frames, size, size, 3), np.uint8)
    v[:, lo:hi, lo:hi] = 255
    return v


def test_canny_finds_the_square_outline():
    v = square_video()
    e = Canny().analyse(v)
    assert e.shape == (3, 64, 64) and e.dtype == np.uint8
    target = np.zeros((3, 64, 64), bool)
    target[:, 16:48, 16:48] = True
    inner = target.copy()
    inner[:, 17:47, 17:47] = False
    assert edge_f1(e, inner, tolerance=1) > 0.95
    assert not e[:, 20:44, 20:44].any()  # nothing inside the flat region


def test_every_kind_maps_a_video_to_a_uint8_video_of_the_same_size():
    clip, _ = render_clip(3)
    for kind in ("canny", "scribble", "lineart", "mlsd"):
        out = extract(kind, clip.video)
        assert out.shape == clip.video.shape and out.dtype == np.uint8, kind


def test_derived_edge_conditions_follow_the_edges():
    v = square_video()
    edges = Canny().analyse(v) > 0
    scribble = extract("scribble", v)[..., 0] > 0
    assert (scribble[edges]).mean() > 0.9 and scribble.sum() > edges.sum()  # thicker strokes over the edges
    line = extract("lineart", v)[..., 0]
    assert line.max() == 255 and line[:, 30, 30] .max() == 0
    mlsd = extract("mlsd", v)[..., 0] > 0
    assert edge_f1(mlsd, edges, tolerance=2) > 0.8  # the square's four sides are straight segments
    noise = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    assert (extract("mlsd", noise) > 0).mean() < (Canny()(noise) > 0).mean()  # texture is not segments


def test_normals_of_a_flat_and_a_tilted_plane():
    flat = normals_from_nearness(np.full((1, 16, 16), 0.5, np.float32))
    np.testing.assert_allclose(flat[0, 8, 8], [0, 0, 1], atol=1e-6)
    ramp = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (1, 16, 1))  # nearer to the right
    n = normals_from_nearness(ramp)[0, 8, 8]
    assert n[0] < 0 and abs(n[1]) < 1e-6 and n[2] > 0  # faces left, towards the viewer
    np.testing.assert_allclose(np.linalg.norm(n), 1, atol=1e-6)


def test_exact_conditions_come_from_the_renderer():
    clip, _ = render_clip(11)
    for kind in EXACT_KINDS:
        v = exact_condition(clip, kind)
        assert v.shape == clip.video.shape and v.dtype == np.uint8, kind
    np.testing.assert_array_equal(exact_structured(vars(clip), "segmentation"), clip.classes)
    np.testing.assert_allclose(exact_structured(vars(clip), "depth"), 1 - clip.depth)
    np.testing.assert_array_equal(exact_condition(clip, "pose"), clip.skeleton)


def test_draw_skeleton_reproduces_the_renderers_skeleton():
    from cinetune.toyworld.render import draw_skeleton

    for seed in range(40):
        clip, _ = render_clip(seed)
        if clip.keypoints.shape[1]:
            break
    drawn = draw_skeleton(clip.keypoints, 64, 64)
    inside = clip.keypoints[..., 2].all()
    if inside:
        np.testing.assert_array_equal(drawn, clip.skeleton)
    else:  # off-screen keypoints are hidden, so only the drawn limbs can be compared
        assert ((drawn > 0).any(-1) <= (clip.skeleton > 0).any(-1)).mean() > 0.99


def test_group_people_assigns_keypoints_to_the_nearest_neck():
    K = 18
    peaks = np.zeros((K, 4, 3), np.float32)
    peaks[1, 0] = (10, 10, 0.9)  # necks
    peaks[1, 1] = (50, 10, 0.8)
    peaks[0, 0] = (49, 5, 0.9)  # nose near the second neck
    peaks[0, 1] = (11, 4, 0.7)
    people = group_people(peaks, max_people=3)
    np.testing.assert_allclose(people[0, 0, :2], (11, 4))
    np.testing.assert_allclose(people[1, 0, :2], (49, 5))
    assert people[2, :, 2].max() == 0


def test_callable_backend_is_the_plug_in_interface(tmp_path, monkeypatch):
    mod = tmp_path / "my_depth.py"
    mod.write_text("import numpy as np\n"
                   "def run(frames):\n    return np.linspace(0, 1, frames.shape[2])[None, None].repeat(frames.shape[1], 1)"
                   ".repeat(len(frames), 0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    d = Depth("my_depth:run")
    out = d(square_video(2, 16, 4, 8))
    assert out.shape == (2, 16, 16, 3) and out[0, 0, 0, 0] == 0 and out[0, 0, -1, 0] == 255


@pytest.mark.parametrize("body, kind, match", [
    ("run = 3", "depth", "is a int, not a function"),
    ("def run(f):\n    raise ValueError('no model')", "depth", "failed: ValueError: no model"),
    ("def run(f):\n    return np.zeros((2, 3))", "depth", r"returned shape \(2, 3\), expected \(2,16,16\)"),
    ("def run(f):\n    return np.full(f.shape[:3], np.nan)", "depth", "NaN or infinite"),
    ("def run(f):\n    return np.full(f.shape[:3], np.inf)", "segmentation", "NaN or infinite"),
    ("def run(f):\n    return np.array([['a'] * 16] * 16 * 2).reshape(2, 16, 16)", "segmentation", "expected numbers"),
    ("def run(f):\n    return np.zeros((2, 1, 17, 3))", "pose", r"expected \(2,\*,18,3\)"),
    ("def run(f):\n    return np.full((2, 1, 18, 3), np.nan)", "pose", "NaN or infinite"),
])
def test_a_bad_plug_in_is_a_one_line_error_naming_it(tmp_path, monkeypatch, body, kind, match):
    (tmp_path / "bad_plug.py").write_text("import numpy as np\n" + body + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "bad_plug", raising=False)  # each case is a new module of that name
    with pytest.raises(CinetuneError, match=match):
        get_extractor(kind, backend="bad_plug:run").analyse(square_video(2, 16, 4, 8))


def test_exact_conditions_refuse_annotations_without_the_array():
    with pytest.raises(CinetuneError, match="no 'keypoints' array"):
        exact_structured({"depth": np.zeros((1, 4, 4))}, "pose")


def test_transformers_segmentation_directory_backend(tmp_path):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    cfg = SegformerConfig(num_channels=3, num_encoder_blocks=1, depths=[1], sr_ratios=[1], hidden_sizes=[8],
                          patch_sizes=[3], strides=[2], num_attention_heads=[1], mlp_ratios=[1],
                          decoder_hidden_size=8, num_labels=5)
    SegformerForSemanticSegmentation(cfg).save_pretrained(tmp_path / "seg")
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "seg")
    seg = get_extractor("segmentation", backend=str(tmp_path / "seg"))
    lab = seg.analyse(square_video(2, 48))
    assert lab.shape == (2, 48, 48) and lab.dtype == np.int64 and 0 <= lab.min() and lab.max() < 5


def test_transformers_depth_directory_backend_feeds_depth_and_normal(tmp_path):
    from transformers import GLPNConfig, GLPNForDepthEstimation, GLPNImageProcessor

    cfg = GLPNConfig(num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[1, 1], hidden_sizes=[8, 8],
                     patch_sizes=[3, 3], strides=[2, 2], num_attention_heads=[1, 1], mlp_ratios=[1, 1],
                     decoder_hidden_size=8, head_in_index=-1)
    GLPNForDepthEstimation(cfg).save_pretrained(tmp_path / "depth")
    GLPNImageProcessor().save_pretrained(tmp_path / "depth")
    v = square_video(2, 48)[:, :, :40]  # 48 x 40: any size
    near = get_extractor("depth", backend=str(tmp_path / "depth")).analyse(v)
    assert near.shape == (2, 48, 40) and near.min() >= 0 and near.max() <= 1
    assert get_extractor("normal", backend=str(tmp_path / "depth"))(v).shape == (2, 48, 40, 3)


def test_bad_kinds_and_backends_are_one_line_errors():
    with pytest.raises(CinetuneError, match="unknown condition"):
        get_extractor("thermal")
    with pytest.raises(CinetuneError, match="backend"):
        get_extractor("depth", backend="/nonexistent/dir")
    with pytest.raises(CinetuneError, match="edges must be"):
        get_extractor("scribble", edges="sobel")
    with pytest.raises(CinetuneError, match=r"\(F,H,W,3\) uint8"):
        Canny()(np.zeros((4, 4, 3), np.uint8))
    assert set(KINDS) >= {"canny", "hed", "depth", "pose", "segmentation", "normal", "scribble", "lineart", "mlsd"}


def test_hed_port_reads_keras_h5_weights(tmp_path):
    h5py = pytest.importorskip("h5py")
    from cinetune.conditions.hed import _BLOCKS, _WIDTHS, HEDNet

    rng = np.random.default_rng(0)
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        cin = 3
        for b, (n, w) in enumerate(zip(_BLOCKS, _WIDTHS)):
            for i in range(n):
                g = f.create_group(f"block{b + 1}/layers/conv2d" + (f"_{i}" if i else ""))
                g["vars/0"] = rng.normal(size=(3, 3, cin if i == 0 else w, w)).astype(np.float32)
                g["vars/1"] = rng.normal(size=(w,)).astype(np.float32)
            cin = w
            g = f.create_group(f"dsn{b + 1}")
            g["vars/0"] = rng.normal(size=(1, 1, w, 1)).astype(np.float32)
            g["vars/1"] = np.zeros(1, np.float32)
        f["fuse/vars/0"] = np.full((1, 1, 5, 1), 0.2, np.float32)
        f["fuse/vars/1"] = np.zeros(1, np.float32)
        kernel = np.asarray(f["block2/layers/conv2d_1/vars/0"])
    net = HEDNet().load_keras_h5(path)
    # Keras (kh, kw, in, out) -> torch (out, in, kh, kw)
    np.testing.assert_array_equal(net.blocks[1][1].weight.detach().numpy(), kernel.transpose(3, 2, 0, 1))
    import torch

    with torch.no_grad():
        out = net(torch.rand(1, 3, 37, 45) * 255)  # odd sizes: Keras 'same' pooling, side outputs resized back
    assert out.shape == (1, 37, 45) and 0 <= float(out.min()) and float(out.max()) <= 1


def test_hed_with_the_real_bsds500_weights_finds_toy_edges():
    from cinetune.conditions.hed import hed_weights_path

    try:
        hed_weights_path()
    except CinetuneError as e:
        pytest.skip(str(e))  # the `hed` extra is installed by `make test`
    clip, _ = render_clip(5)
    e = get_extractor("hed").analyse(clip.video)
    assert e.shape == clip.edges.shape
    assert edge_f1(e > 128, clip.edges) > 0.6
    assert edge_f1(e > 128, clip.edges) > edge_f1(e[::-1] > 128, clip.edges) + 0.1  # frames in the wrong order


def test_transformers_pose_directory_backend(tmp_path):
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation, VitPoseImageProcessorPil

    torch.manual_seed(0)
    bb = VitPoseBackboneConfig(image_size=[64, 48], patch_size=[16, 16], hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=32, out_indices=[1])
    VitPoseForPoseEstimation(VitPoseConfig(backbone_config=bb, num_labels=17)).save_pretrained(tmp_path / "pose")
    VitPoseImageProcessorPil(size={"height": 64, "width": 48}).save_pretrained(tmp_path / "pose")
    pose = get_extractor("pose", backend=str(tmp_path / "pose"), threshold=0.0)
    kp = pose.analyse(square_video(2, 48))
    assert kp.shape == (2, 4, 18, 3) and kp[:, 1:].max() == 0  # one person per frame: the whole frame its box
    found = kp[:, 0][kp[:, 0, :, 2] > 0]
    assert len(found) and np.isfinite(found).all()  # (random weights: where they fall says nothing)
    np.testing.assert_allclose(kp[:, 0, 1, :2], (kp[:, 0, 2, :2] + kp[:, 0, 5, :2]) / 2, rtol=1e-5)  # the neck
    assert pose(square_video(2, 48)).shape == (2, 48, 48, 3)


def test_coco_keypoints_map_to_openpose():
    from cinetune.conditions.pose import openpose_from_coco

    xy = np.arange(34, dtype=np.float32).reshape(17, 2)
    score = np.full(17, 0.9, np.float32)
    score[9] = 0.1  # COCO left wrist below the threshold
    op = openpose_from_coco(xy, score, threshold=0.3)
    assert op[0, :2].tolist() == xy[0].tolist() and op[2, :2].tolist() == xy[6].tolist()  # nose; right shoulder
    assert op[1, :2].tolist() == ((xy[5] + xy[6]) / 2).tolist() and op[17, :2].tolist() == xy[3].tolist()
    assert op[7].tolist() == [0.0, 0.0, 0.0]  # OpenPose left wrist: missing


@pytest.mark.parametrize("kind", ["depth", "segmentation", "pose", "normal"])
def test_the_default_backend_asks_for_a_model_beyond_toy_sizes(kind):
    big = np.zeros((1, 192, 256, 3), np.uint8)
    with pytest.raises(CinetuneError, match=f"{'depth' if kind == 'normal' else kind}: this 256x192 video is no "
                                            "toy-world clip.*--backend"):
        get_extractor(kind).analyse(big)
    assert get_extractor(kind, backend="toy").analyse(big).shape[:1] == (1,)  # asked for by name: used as it is
    assert get_extractor(kind).analyse(square_video(1, 64)).shape[:1] == (1,)  # a toy-world size
