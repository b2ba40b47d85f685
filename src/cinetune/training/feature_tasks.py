"""Training tasks for the toy feature networks (video encoder, identity encoder, annotator) on the shared trainer.

Each renders `data.clip_cache` clips once into memory (about a minute per 4000 clips on one core) and draws batches
from them with the same (step, position)-keyed generators as the DiT tasks, so runs resume bit-identically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..toynets import (GROUPS, MULTI_LABEL, ToyAnnotator, ToyIdentityEncoder, ToyVideoEncoder, crop_faces, reference_face,
                       heatmap_peaks, keypoint_heatmaps, pck, scene_labels)
from ..io import video_grid, write_video
from ..toyworld import RenderConfig, clip_seed, render, sample_scene
from ..toyworld.roster import CLASSES, IDENTITIES
from .config import TrainConfig, init_dir
from .task import Task


def render_set(n: int, seed: int, cfg: RenderConfig, max_objects: int, max_actors: int, desc: str,
               min_actors: int = 0):
    """n clips (skipping scenes with fewer than min_actors actors): yields (spec, clip)."""
    got, i = 0, 0
    bar = tqdm(total=n, desc=desc, leave=False)
    while got < n:
        spec = sample_scene(clip_seed(seed, i), max_objects=max_objects, max_actors=max_actors)
        i += 1
        if len(spec.actors) < min_actors:
            continue
        got += 1
        bar.update(1)
        yield spec, render(spec, cfg)
    bar.close()


def _model(cls, cfg: TrainConfig, device: torch.device, **kwargs):
    """A fresh network, or the one saved at cfg.init (a save_pretrained directory) to continue training."""
    net = cls.from_pretrained(init_dir(cfg.init), use_safetensors=True) if cfg.init else cls(**kwargs)
    return net.to(device)


def _to_float(video: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    return video.movedim(-1, -3).float().div(127.5).sub(1.0)


class VideoEncoderTask(Task):
    """Multi-label attribute recognition (shapes, object colours, motions, actions) + background colour."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        self.model = _model(ToyVideoEncoder, cfg, device)
        self.train_data = self._build(cfg.data.clip_cache, cfg.data.seed, "rendering training clips")
        self.val_data = self._build(cfg.num_validation, cfg.data.seed + 1, "rendering held-out clips")

    def _build(self, n: int, seed: int, desc: str) -> dict:
        d = self.cfg.data
        videos, labels = [], {g: [] for g in GROUPS}
        for spec, clip in render_set(n, seed, self.render_cfg, d.max_objects, d.max_actors, desc):
            videos.append(clip.video)
            for g, v in scene_labels(spec).items():
                labels[g].append(v)
        return {"video": torch.from_numpy(np.stack(videos)), **{g: torch.from_numpy(np.stack(v)) for g, v in labels.items()}}

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        idx, _ = self.draw(step, micro, rank, world, self.train_data["video"].shape[0])
        idx = torch.tensor(idx)
        return {k: v[idx].to(self.device) for k, v in self.train_data.items()}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        videos = _to_float(batch["video"]).transpose(1, 2)  # (B,3,F,H,W)
        _, logits = model(videos)
        loss = F.cross_entropy(logits["background"], batch["background"])
        for g in MULTI_LABEL:
            # summed over labels, so each label weighs like the background's cross-entropy; with per-group means the
            # background dominated the shared features and the object heads stayed at their priors (measured)
            loss = loss + F.binary_cross_entropy_with_logits(logits[g], batch[g]) * batch[g].shape[1]
        return loss, {}

    @torch.no_grad()
    def validate(self, out_dir: Path, step: int) -> dict:
        """Held-out: per multi-label group, exact set match (every label of the clip right) and micro-F1 of the
        labels; top-1 accuracy of the background colour."""
        return attribute_accuracy(self.model, self.val_data, self.device)

    def export(self, out_dir: Path) -> None:
        self.model.save_pretrained(out_dir / "video_encoder", safe_serialization=True)


@torch.no_grad()
def attribute_accuracy(model: ToyVideoEncoder, data: dict, device: torch.device | str = "cpu") -> dict:
    was_training = model.training
    model.eval()
    probs = {g: [] for g in GROUPS}
    for s in range(0, data["video"].shape[0], 64):
        p = model.probabilities(_to_float(data["video"][s:s + 64].to(device)).transpose(1, 2))
        for g in GROUPS:
            probs[g].append(p[g].cpu())
    model.train(was_training)
    out = {}
    for g in GROUPS:
        p = torch.cat(probs[g])
        if g == "background":
            out[f"acc_{g}"] = float((p.argmax(1) == data[g]).float().mean())
            continue
        pred, true = (p > 0.5).float(), data[g]
        out[f"acc_{g}"] = float((pred == true).all(1).float().mean())
        tp = float((pred * true).sum())
        out[f"f1_{g}"] = 2 * tp / max(float(pred.sum() + true.sum()), 1.0)
    return out


class IdentityEncoderTask(Task):
    """Cosine-margin softmax over the roster's identities on face crops from rendered clips."""

    MIN_FACE = 4  # px: faces hidden down to a sliver carry no identity

    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        self.model = _model(ToyIdentityEncoder, cfg, device, num_identities=len(IDENTITIES))
        self.train_data = self._build(cfg.data.clip_cache, cfg.data.seed, "face crops (training)")
        self.val_data = self._build(cfg.num_validation, cfg.data.seed + 1, "face crops (held out)")

    def _build(self, n_clips: int, seed: int, desc: str) -> dict:
        d, crop = self.cfg.data, self.model.config.crop
        faces, labels = [], []
        for spec, clip in render_set(n_clips, seed, self.render_cfg, d.max_objects, d.max_actors, desc, min_actors=1):
            boxes = torch.from_numpy(clip.face_boxes)  # (F,A,4)
            ok = ((boxes[..., 2] - boxes[..., 0]) >= self.MIN_FACE) & ((boxes[..., 3] - boxes[..., 1]) >= self.MIN_FACE)
            f, a = ok.nonzero(as_tuple=True)
            if len(f):
                frames = _to_float(torch.from_numpy(clip.video))[f]
                faces.append(crop_faces(frames, boxes[f, a], crop).half())
                labels.append(torch.tensor([spec.actors[k].identity for k in a.tolist()]))
        return {"faces": torch.cat(faces), "labels": torch.cat(labels)}

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        idx, gens = self.draw(step, micro, rank, world, self.train_data["faces"].shape[0])
        faces = self.train_data["faces"][idx].float()
        # Blur half of the crops: generated faces are softer than rendered ones.
        blur = torch.cat([torch.rand(1, generator=g) for g in gens]) < 0.5
        soft = F.avg_pool2d(F.pad(faces, (1, 1, 1, 1), mode="replicate"), 3, 1)
        faces = torch.where(blur[:, None, None, None], soft, faces)
        return {"faces": faces.to(self.device), "labels": self.train_data["labels"][idx].to(self.device)}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        emb = model(batch["faces"])
        return self.model.loss(emb, batch["labels"]), {}

    @torch.no_grad()
    def validate(self, out_dir: Path, step: int) -> dict:
        """Held-out clips: accuracy of matching each face crop to the nearest reference face (one rendered reference
        per identity, as identity similarity is measured), and mean cosine to the own vs the best other reference."""
        self.model.eval()
        refs = self.model(torch.stack([reference_face(i, self.model.config.crop) for i in range(len(IDENTITIES))]))
        emb = torch.cat([self.model(self.val_data["faces"][s:s + 512].float()) for s in range(0, len(self.val_data["faces"]), 512)])
        self.model.train()
        sim = emb @ refs.T
        lab = self.val_data["labels"]
        own = sim.gather(1, lab[:, None])[:, 0]
        other = sim.scatter(1, lab[:, None], -2.0).max(1).values
        return {"acc_identity": float((sim.argmax(1) == lab).float().mean()), "cos_same": float(own.mean()),
                "cos_best_other": float(other.mean())}

    def export(self, out_dir: Path) -> None:
        self.model.save_pretrained(out_dir / "identity_encoder", safe_serialization=True)


class AnnotatorTask(Task):
    """Per-frame depth (L1), class segmentation (cross-entropy) and OpenPose-18 heatmaps (weighted MSE)."""

    FRAMES_PER_CLIP = 17

    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        self.model = _model(ToyAnnotator, cfg, device, num_classes=len(CLASSES))
        self.train_data = self._build(cfg.data.clip_cache, cfg.data.seed, "rendering training clips")
        self.val_data = self._build(cfg.num_validation, cfg.data.seed + 1, "rendering held-out clips")

    def _build(self, n: int, seed: int, desc: str) -> dict:
        d = self.cfg.data
        videos, depth, classes, kps = [], [], [], []
        for _, clip in render_set(n, seed, self.render_cfg, d.max_objects, d.max_actors, desc):
            videos.append(clip.video)
            depth.append(clip.depth.astype(np.float16))
            classes.append(clip.classes)
            k = np.zeros((clip.video.shape[0], d.max_actors, 18, 3), np.float32)
            k[:, :clip.keypoints.shape[1]] = clip.keypoints
            kps.append(k)
        cat = lambda xs: torch.from_numpy(np.concatenate(xs))  # noqa: E731  (frames of all clips)
        return {"video": cat(videos), "depth": cat(depth), "classes": cat(classes), "keypoints": cat(kps)}

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        idx, gens = self.draw(step, micro, rank, world, self.train_data["video"].shape[0])
        idx = torch.tensor(idx)
        frames = _to_float(self.train_data["video"][idx])
        # Degrade like generated frames: blur (sigma up to 1.2 px) and noise, per sample.
        out = []
        for x, g in zip(frames, gens):
            sigma, noise = float(torch.rand(1, generator=g)) * 1.2, float(torch.rand(1, generator=g)) * 0.08
            if sigma > 0.3:
                r = torch.arange(-2, 3, dtype=torch.float32)
                k = torch.exp(-r ** 2 / (2 * sigma ** 2))
                k = k / k.sum()
                x = F.conv2d(F.pad(x[None], (2, 2, 2, 2), mode="replicate"), (k[:, None] * k[None, :]).expand(3, 1, 5, 5),
                             groups=3)[0]
            out.append(x + noise * torch.randn(x.shape, generator=g))
        H, W = frames.shape[-2:]
        return {"frames": torch.stack(out).to(self.device), "depth": self.train_data["depth"][idx].float().to(self.device),
                "classes": self.train_data["classes"][idx].long().to(self.device),
                "heatmaps": keypoint_heatmaps(self.train_data["keypoints"][idx], H, W).to(self.device)}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        pred = model(batch["frames"])
        l_depth = (pred["depth"] - batch["depth"]).abs().mean()
        l_cls = F.cross_entropy(pred["classes"], batch["classes"])
        t = batch["heatmaps"]
        l_pose = ((pred["heatmaps"] - t) ** 2 * (1 + 20 * t)).mean() * 10  # peaks are a tiny fraction of pixels
        return l_depth + l_cls + l_pose, {"depth": l_depth.item(), "cls": l_cls.item(), "pose": l_pose.item()}

    @torch.no_grad()
    def validate(self, out_dir: Path, step: int) -> dict:
        """Held-out frames: depth MAE, class mIoU (classes present), PCK at 2 px."""
        self.model.eval()
        v = self.val_data
        preds = [self.model(_to_float(v["video"][s:s + 64]).to(self.device)) for s in range(0, v["video"].shape[0], 64)]
        self.model.train()
        depth = torch.cat([p["depth"].cpu() for p in preds])
        cls = torch.cat([p["classes"].argmax(1).cpu() for p in preds])
        heat = torch.cat([p["heatmaps"].cpu() for p in preds])
        from ..metrics.condition import miou

        hit = tot = 0
        for i in range(heat.shape[0]):
            h, n = pck(heatmap_peaks(heat[i]).transpose(0, 1), v["keypoints"][i], threshold=2.0)
            hit, tot = hit + h, tot + n
        F = self.render_cfg.frames
        write_video(out_dir / "samples" / f"step-{step:07d}.gif", annotator_panel(self.model, v["video"][:F * 4], F))
        return {"depth_mae": float((depth - v["depth"].float()).abs().mean()),
                "miou": miou(cls.numpy(), v["classes"].numpy(), len(CLASSES)),
                "pck@2px": hit / max(tot, 1)}

    def export(self, out_dir: Path) -> None:
        self.model.save_pretrained(out_dir / "annotator", safe_serialization=True)


@torch.no_grad()
def annotator_panel(model: ToyAnnotator, frames: torch.Tensor, per_clip: int = 17) -> np.ndarray:
    """Frames (N,H,W,3) uint8 of consecutive clips -> one video: input | depth | segmentation | pose per clip row."""
    from ..conditions.base import PALETTE
    from ..conditions.pose import group_people
    from ..toyworld.render import draw_skeleton

    was = model.training
    model.eval()
    pred = model(_to_float(frames))
    model.train(was)
    H, W = frames.shape[1:3]
    depth = ((1 - pred["depth"]) * 255).round().clamp(0, 255).to(torch.uint8)[..., None].expand(-1, -1, -1, 3).numpy()
    seg = PALETTE[pred["classes"].argmax(1).numpy() % len(PALETTE)]
    kp = np.stack([group_people(heatmap_peaks(h, 0.3, 4).numpy(), 4) for h in pred["heatmaps"]])
    pose = draw_skeleton(kp, H, W)
    rows = np.concatenate([frames.numpy(), depth, seg, pose], 2)  # (N,H,4W,3)
    clips = [rows[s:s + per_clip] for s in range(0, len(rows) - per_clip + 1, per_clip)]
    return video_grid(clips, cols=1)
