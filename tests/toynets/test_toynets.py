"""Toy feature networks: labels, prompt parsing, face crops, heatmaps <-> peaks, save/load round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cinetune.toynets import (GROUPS, MULTI_LABEL, ToyAnnotator, ToyIdentityEncoder, ToyVideoEncoder, crop_faces,
                              heatmap_peaks, keypoint_heatmaps, pck, prompt_labels, scene_labels)
from cinetune.toyworld import caption, sample_scene


def test_prompt_parsing_recovers_the_scene_labels_of_every_caption_variant():
    for seed in range(300):
        spec = sample_scene(seed)
        labels = scene_labels(spec)
        for variant in range(3):
            stated = prompt_labels(caption(spec, variant))
            for g in MULTI_LABEL:
                assert sorted(stated[g]) == np.flatnonzero(labels[g]).tolist(), (g, caption(spec, variant))
            assert stated["background"] == [int(labels["background"])]


def test_prompt_parsing_of_free_text():
    got = prompt_labels("A blue star spins while a red circle bounces on a plain navy backdrop.")
    assert [GROUPS["shape"][i] for i in got["shape"]] == ["star", "circle"]
    assert [GROUPS["colour"][i] for i in got["colour"]] == ["blue", "red"]
    assert [GROUPS["motion"][i] for i in got["motion"]] == ["rotate", "bounce"]
    assert [GROUPS["background"][i] for i in got["background"]] == ["navy"]
    assert prompt_labels("a photo of a cat") == {g: [] for g in GROUPS}
    got = prompt_labels("Someone with dark skin, long blond hair and green eyes in a red shirt nods on a grey backdrop.")
    assert [GROUPS[g][got[g][0]] for g in ("skin", "hair", "action")] == ["dark", "blond", "nod"]


def test_video_encoder_shapes_any_length_and_size():
    net = ToyVideoEncoder().eval()
    with torch.no_grad():
        for shape in [(2, 3, 17, 64, 64), (1, 3, 5, 48, 80)]:
            feats, logits = net(torch.randn(shape))
            assert feats.shape == (shape[0], 256)
            assert {g: v.shape[-1] for g, v in logits.items()} == {g: len(v) for g, v in GROUPS.items()}
        assert net.frame_embeddings(torch.randn(2, 3, 7, 64, 64)).shape == (2, 7, 128)


def test_crop_faces_takes_the_box_region():
    img = torch.zeros(1, 3, 32, 32)
    img[:, 0, 10:18, 12:20] = 1.0  # red box
    crop = crop_faces(img, torch.tensor([[12.0, 10.0, 20.0, 18.0]]), crop=8, context=1.0)
    assert crop.shape == (1, 3, 8, 8)
    assert torch.allclose(crop[0, 0], torch.ones(8, 8)) and crop[0, 1:].abs().max() == 0


def test_heatmaps_and_peaks_round_trip_to_sub_pixel_accuracy():
    kp = torch.zeros(1, 2, 18, 3)
    kp[0, 0, :, :2] = torch.tensor([[10.3 + k, 20.6] for k in range(18)])
    kp[0, 1, :, :2] = torch.tensor([[40.0, 5.0 + 2 * k] for k in range(18)])
    kp[..., 2] = 1
    kp[0, 1, 3, 2] = 0  # invisible: no peak
    heat = keypoint_heatmaps(kp, 64, 64)
    assert heat.shape == (1, 18, 64, 64) and heat.max() <= 1
    peaks = heatmap_peaks(heat[0], threshold=0.3, max_peaks=4)  # (18,4,3)
    assert (peaks[..., 2] > 0).sum() == 35
    people = peaks.transpose(0, 1)
    assert pck(people, kp[0], threshold=0.3) == (35, 35)
    assert pck(people, kp[0], threshold=0.3)[0] == pck(people, kp[0], threshold=5.0)[0]


def test_identity_loss_prefers_the_true_identity():
    net = ToyIdentityEncoder(num_identities=4)
    emb = torch.nn.functional.normalize(net.classifier.detach(), dim=-1)
    labels = torch.arange(4)
    assert net.loss(emb, labels) < net.loss(emb, labels.roll(1))


@pytest.mark.parametrize("cls", [ToyVideoEncoder, ToyIdentityEncoder, ToyAnnotator])
def test_save_load_round_trip_is_safetensors(cls, tmp_path):
    torch.manual_seed(0)
    net = cls().eval()
    net.save_pretrained(tmp_path, safe_serialization=True)
    assert list(tmp_path.glob("*.safetensors")) and not list(tmp_path.glob("*.bin"))
    back = cls.from_pretrained(tmp_path, use_safetensors=True).eval()
    for a, b in zip(net.state_dict().values(), back.state_dict().values()):
        assert torch.equal(a, b)


def test_annotator_outputs():
    with torch.no_grad():
        out = ToyAnnotator()(torch.randn(2, 3, 32, 48))
    assert out["depth"].shape == (2, 32, 48) and out["classes"].shape == (2, 10, 32, 48)
    assert out["heatmaps"].shape == (2, 18, 32, 48)
