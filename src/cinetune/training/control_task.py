"""Training task for control adapters (ControlNeXt-DiT, DiT-ControlNet, channel concat) on a frozen toy backbone:
Wan's flow-matching loss with the adapter attached; conditions are the toy world's exact annotations (depth, pose,
segmentation, normal) or extracted from the clip's pixels as users will (canny, hed, scribble, lineart, mlsd)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..adapters.control.model import new_control_model
from ..backbones import load_backbone
from ..backbones.codec import carry_over
from ..conditions import EXACT_KINDS, KINDS, exact_condition, get_extractor
from ..errors import CinetuneError
from ..io import atomic_path, video_grid, write_video
from ..toyworld import clip_seed, render_clip
from ..toyworld.dataset import video_to_tensor
from .config import TrainConfig, init_dir
from .objectives import flow_matching_inputs, sample_sigmas
from .tasks import Task, encode_captions

EXACT_SOURCE = {"depth": "depth", "pose": "pose", "segmentation": "segmentation", "normal": "normal"}


def training_condition(clip, kind: str) -> np.ndarray:
    """The condition video a user would give for this clip: exact annotations where the toy world has them (the
    stand-in for a good estimator), else the extractor on the clip's pixels."""
    if kind in EXACT_SOURCE and EXACT_SOURCE[kind] in EXACT_KINDS:
        return exact_condition(clip, EXACT_SOURCE[kind])
    return get_extractor(kind)(clip.video)


def frozen_backbone(cfg: TrainConfig, device: torch.device):
    """cfg.backbone with cfg.init's transformer weights (random init when empty), on `device`, transformer frozen."""
    backbone = load_backbone(cfg.backbone, random_init=not cfg.init)
    if cfg.init:
        cls = type(backbone.transformer)
        backbone.transformer = cls.from_pretrained(init_dir(cfg.init, "transformer"), use_safetensors=True,
                                                   torch_dtype=torch.float32)
    backbone.to(device)
    backbone.transformer.requires_grad_(False)
    return backbone


class _ControlledDenoiser(torch.nn.Module):
    """One module holding every trainable parameter (for accelerate/DDP) whose forward runs adapter + backbone."""

    def __init__(self, backbone, attachment):
        super().__init__()
        self.transformer = backbone.transformer
        self.control = attachment.model.module if attachment.model.module is not None else torch.nn.Identity()
        self.view, self.att = backbone.view, attachment

    def forward(self, xt, t, emb, cond, keep=None):
        self.att.prepare(cond, keep)
        self.att.before_step(xt, t, emb, 1.0)
        return self.view(xt, t, emb, module=self.transformer)


class ControlTask(Task):
    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        c = cfg.control
        self.kinds = [k for k in c.conditions.split(",") if k]
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise CinetuneError(f"unknown or missing conditions {bad or c.conditions!r}; known: {', '.join(KINDS)}")
        self.backbone = frozen_backbone(cfg, device)
        kw = {}
        if c.method == "controlnext":
            kw = dict(norm=c.norm, stats=c.stats, inject_block=c.inject_block)
        elif c.method == "dit-controlnet":
            kw = dict(num_blocks=c.num_blocks, stride=c.stride)
        torch.manual_seed(cfg.seed)
        self.control = new_control_model(c.method, self.backbone, self.kinds,
                                         finetune=None if c.finetune == "auto" else c.finetune, lora_rank=c.lora_rank,
                                         **kw)
        if self.control.module is not None:
            self.control.module.to(device)
        self.att = self.control.attach(self.backbone, trainable=True)
        self.model = _ControlledDenoiser(self.backbone, self.att)
        self.empty = self.backbone.text_encoder([""])[0]
        self.latent_cache, self.clip_cache = c.method == "concat", c.clip_cache
        self.cache = self._load_or_build_cache()

    # -- data -------------------------------------------------------------------------------------------------
    def _cache_path(self) -> Path:
        tag = "latents" if self.latent_cache else "pixels"
        base = Path(self.cfg.data.cache_path or Path(self.cfg.output_dir) / "control-cache.safetensors")
        return base.with_name(f"{base.stem}-{'-'.join(self.kinds)}-{tag}{base.suffix}")

    @torch.no_grad()
    def _load_or_build_cache(self) -> dict:
        path, n = self._cache_path(), self.clip_cache
        if path.is_file():
            data = load_file(path)
            if data["latents"].shape[0] >= n:
                lat = ["latents"] + ([f"cond_{k}" for k in self.kinds] if self.latent_cache else [])
                if carry_over(data, lat, self.backbone.codec):  # made with other latent statistics: carried over
                    with atomic_path(path) as tmp:
                        save_file(data, str(tmp))
                data = {k: v[:n] for k, v in data.items() if k not in ("latents_mean", "latents_std")}
                if data["text"].shape[1] != self.backbone.text_encoder.max_len:  # another max_text_len: redo the text
                    data["text"] = encode_captions(self.backbone, self.train_set, n)
                return data
        d, codec = self.cfg.data, self.backbone.codec
        cols: dict[str, list] = {"latents": [], "text": [], **{f"cond_{k}": [] for k in self.kinds}}
        for s in tqdm(range(0, n, 8), desc="control cache"):
            clips = [render_clip(clip_seed(d.seed, i), self.render_cfg, d.max_objects, d.max_actors)
                     for i in range(s, min(n, s + 8))]
            videos = torch.stack([video_to_tensor(c.video) for c, _ in clips]).to(self.device)
            cols["latents"].append(codec.encode(videos).cpu())
            cols["text"].append(self.backbone.text_encoder([t for _, t in clips]).half().cpu())
            for k in self.kinds:
                conds = np.stack([training_condition(c, k) for c, _ in clips])
                if self.latent_cache:
                    cols[f"cond_{k}"].append(codec.encode(
                        torch.from_numpy(conds).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1).to(self.device)).cpu())
                else:
                    cols[f"cond_{k}"].append(torch.from_numpy(conds))
        data = {k: torch.cat(v).contiguous() for k, v in cols.items()}
        with atomic_path(path) as tmp:  # with the statistics its latents are normalised with, as carry_over reads them
            save_file(data | codec.tables(), str(tmp))
        return data

    def draw_cached(self, step: int, micro: int, rank: int, world: int):
        """This process's cached clips for one micro-batch: (indices (B,), per-sample generators, latents x0, text
        embeddings with caption dropout applied)."""
        idx, gens = self.draw(step, micro, rank, world, self.cache["latents"].shape[0])
        idx_t = torch.tensor(idx)
        x0, emb = self.cache["latents"][idx_t], self.cache["text"][idx_t].float()
        drop = torch.cat([torch.rand(1, generator=g) for g in gens]) < self.cfg.data.caption_dropout
        return idx_t, gens, x0, torch.where(drop[:, None, None], self.empty.cpu().expand_as(emb), emb)

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        idx_t, gens, x0, emb = self.draw_cached(step, micro, rank, world)
        if self.cfg.control.method == "concat":
            cond = {k: self.cache[f"cond_{k}"][idx_t].to(self.device) for k in self.kinds}
            p = self.cfg.control.dropout
            keep = {k: torch.cat([torch.rand(1, generator=g) for g in gens]) >= p for k in self.kinds}
        else:
            cond = torch.cat([self.cache[f"cond_{k}"][idx_t].permute(0, 4, 1, 2, 3).float().div(127.5).sub(1)
                              for k in self.kinds], 1).to(self.device)
            keep = None
        return {"x0": x0.to(self.device), "emb": emb.to(self.device), "cond": cond, "keep": keep, "gens": gens}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        x0, gens = batch["x0"], batch["gens"]
        sigmas = torch.cat([sample_sigmas(1, self.cfg.timestep_shift, g) for g in gens])
        noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in gens]).to(x0.device)
        xt, t, target = flow_matching_inputs(x0, sigmas.to(x0.device), noise)
        pred = model(xt, t, batch["emb"], batch["cond"], batch["keep"])
        return F.mse_loss(pred.float(), target), {}

    def param_groups(self) -> list[dict]:
        """Adapter modules at the base LR; fine-tuned base weights at lr * base_lr_scale."""
        base = [p for p in self.backbone.transformer.parameters() if p.requires_grad]
        own = [p for p in self.model.control.parameters() if p.requires_grad]
        ids = {id(p) for p in own}
        base = [p for p in base if id(p) not in ids]
        if self.control.method == "concat":  # the widened patch embedding is the adapter's own layer
            pe = {id(p) for p in self.att.inner.patch_embedding.parameters()}
            own += [p for p in base if id(p) in pe]
            base = [p for p in base if id(p) not in pe]
        groups = [{"params": own, "lr_scale": 1.0}]
        if base:
            groups.append({"params": base, "lr_scale": self.cfg.control.base_lr_scale})
        return groups

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for g in self.param_groups() for p in g["params"]]

    def enable_gradient_checkpointing(self) -> None:
        self.backbone.transformer.enable_gradient_checkpointing()
        if hasattr(self.control.module, "enable_gradient_checkpointing"):
            self.control.module.enable_gradient_checkpointing()

    # -- outputs ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, out_dir: Path, step: int) -> dict:
        """Condition | generated for a few held-out clips (controlled sampling with the current weights)."""
        from ..pipelines import TextToVideoPipeline

        self.model.eval()
        d = self.cfg.data
        clips = [render_clip(clip_seed(d.seed + 1, i), self.render_cfg, d.max_objects, d.max_actors)
                 for i in range(max(1, min(self.cfg.num_validation, 4)))]
        conds = {k: np.stack([training_condition(c, k) for c, _ in clips]) for k in self.kinds}
        pipe = TextToVideoPipeline(self.backbone, self.device)
        self.att.prepare(conds)
        view = self.backbone.view

        def fn(x, t, e, i):
            self.att.before_step(x, t, e, 1.0)
            return view(x, t, e)

        out = pipe([t for _, t in clips], frames=d.frames, height=d.height, width=d.width,
                   steps=self.cfg.validation_steps, guidance=5.0, seed=self.cfg.seed, progress=False, model_fn=fn)
        self.att.prepare(None)
        self.model.train()
        rows = [np.concatenate([conds[k][i] for k in self.kinds] + [out.videos[i]], 2) for i in range(len(clips))]
        write_video(out_dir / "samples" / f"step-{step:07d}.gif", video_grid(rows, cols=1))
        return {}

    def export(self, out_dir: Path) -> None:
        model = self.att.collect()
        model.info = {"backbone": self.cfg.backbone, "init": self.cfg.init, "steps": self.cfg.steps,
                      "preset": self.cfg.preset}
        model.save(out_dir / "control")
