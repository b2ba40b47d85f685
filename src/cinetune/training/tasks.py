"""Training tasks for the shared trainer: what is trained, how a batch is drawn, its loss, validation and export.

A task draws every random number from generators seeded by (seed, step, position in the global batch), so a run
resumed from a checkpoint continues bit-identically without saving RNG states, and the process count does not
change what is trained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..backbones import load_backbone
from ..backbones.codec import FRAME_STATS, carry_over, encode_modes, frame_stats_of
from ..backbones.presets import get_preset
from ..errors import CinetuneError
from ..io import atomic_path, video_grid, write_json, write_video
from ..metrics.temporal import chunk_flicker
from ..toyworld import RenderConfig, ToyWorldDataset
from .config import TrainConfig, init_dir
from .objectives import flow_matching_inputs, foreground_map, motion_mse, sample_sigmas, weighted_mse


def step_generator(seed: int, *keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0]))


def encode_captions(backbone, dataset: ToyWorldDataset, n: int) -> torch.Tensor:
    """(n, max_text_len, dim) float16 text embeddings of clips 0..n-1's captions (captions only: nothing rendered); for
    caches whose text was encoded at another max_text_len."""
    from tqdm.auto import tqdm

    L = backbone.text_encoder.max_len
    return torch.cat([backbone.text_encoder([dataset.caption(i)]).half()
                      for i in tqdm(range(n), desc=f"encoding captions at {L} tokens")])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of videos in [-1, 1] (peak-to-peak 2)."""
    mse = F.mse_loss(a.float(), b.float()).item()
    return float(10 * np.log10(4.0 / max(mse, 1e-12)))


class Task:
    model: torch.nn.Module  # the module handed to accelerate (all trainable parameters live under it)

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        d = cfg.data
        self.render_cfg = RenderConfig(frames=d.frames, height=d.height, width=d.width)
        self.train_set = ToyWorldDataset(d.size, seed=d.seed, cfg=self.render_cfg, max_objects=d.max_objects,
                                         max_actors=d.max_actors, annotations=bool(d.foreground_weight))
        self.val_set = ToyWorldDataset(max(cfg.num_validation, 1), seed=d.seed + 1, cfg=self.render_cfg,
                                       max_objects=d.max_objects, max_actors=d.max_actors)

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def draw(self, step: int, micro: int, rank: int, world: int, n: int) -> tuple[list[int], list[torch.Generator]]:
        """This process's share of one micro-batch: dataset indices and one generator per sample.

        Every random number belongs to a position in the step's global batch (batch_size x processes x grad_accum),
        so N processes, or N accumulation steps, with batch b train exactly like one process with batch N*b (up to
        float summation order)."""
        B = self.cfg.batch_size
        g = step_generator(self.cfg.seed, 1, step)
        idx = torch.randint(0, n, (B * world * self.cfg.grad_accum,), generator=g)
        positions = [micro * B * world + rank + k * world for k in range(B)]
        idx = self.reselect(idx, step)
        return [int(idx[p]) for p in positions], [step_generator(self.cfg.seed, 2, step, p) for p in positions]

    def reselect(self, idx: torch.Tensor, step: int) -> torch.Tensor:
        """Hook: the step's global batch of uniformly drawn indices -> the indices trained on (default: the same)."""
        return idx

    def enable_gradient_checkpointing(self) -> None:
        self.model.enable_gradient_checkpointing()


class _VAEWithPosterior(torch.nn.Module):
    """Forward returns (reconstruction, posterior mean, posterior logvar) so DDP sees one forward call."""

    def __init__(self, vae, decoder_only: bool = False):
        super().__init__()
        self.vae, self.decoder_only = vae, decoder_only

    def forward(self, x: torch.Tensor, noise: torch.Tensor):
        if self.decoder_only:
            with torch.no_grad():
                h = self.vae.encode(x).latent_dist
            z = h.mode()  # what the DiTs are trained on and generate
        else:
            h = self.vae.encode(x).latent_dist
            z = h.mean + h.std * noise
        return self._decode_unclamped(z), h.mean, h.logvar

    def _decode_unclamped(self, z: torch.Tensor) -> torch.Tensor:
        # AutoencoderKLWan.decode clamps to [-1, 1], which zeroes the gradient of every overshooting pixel and
        # stalls training; this is the same causal frame-by-frame decode without the clamp.
        vae = self.vae
        vae.clear_cache()
        x = vae.post_quant_conv(z)
        frames = []
        for i in range(x.shape[2]):
            vae._conv_idx = [0]
            frames.append(vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                                      first_chunk=i == 0))
        vae.clear_cache()
        return torch.cat(frames, 2)


def _with_new_decoder(vae, base_dim: int):
    """A copy of `vae` whose decoder is freshly initialised at `base_dim` width; the encoder, both 1x1 latent convs
    and the config (latent statistics included) are kept, so the latents do not change."""
    from diffusers import AutoencoderKLWan

    wide = AutoencoderKLWan.from_config(vae.config, decoder_base_dim=base_dim)
    kept = {k: v for k, v in vae.state_dict().items() if not k.startswith("decoder.")}
    missing, unexpected = wide.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("decoder.") for k in missing)
    return wide


class VAETask(Task):
    """Wan VAE reconstruction: MSE + 0.1 L1 + kl_weight * KL (mean over latent elements)."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        from diffusers import AutoencoderKLWan

        preset = get_preset(cfg.backbone)
        if cfg.init:
            vae = AutoencoderKLWan.from_pretrained(init_dir(cfg.init, "vae"), use_safetensors=True)
            if cfg.decoder_base_dim:
                vae = _with_new_decoder(vae, cfg.decoder_base_dim)
        else:
            vae = AutoencoderKLWan(**preset.vae)
            # Start nearly deterministic (posterior std e^-3): with a small KL weight, a unit-variance start buries
            # the latent mean in sampling noise and reconstruction stalls for hundreds of steps.
            with torch.no_grad():
                vae.quant_conv.bias[vae.config.z_dim:] = -6.0
        self.vae = vae.to(device)
        if cfg.decoder_only:
            self.vae.encoder.requires_grad_(False)
            self.vae.quant_conv.requires_grad_(False)
        self.model = _VAEWithPosterior(self.vae, cfg.decoder_only)

    def enable_gradient_checkpointing(self) -> None:
        self.vae.enable_gradient_checkpointing()

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        idx, gens = self.draw(step, micro, rank, world, len(self.train_set))
        videos = [self.train_set[i]["video"] for i in idx]
        c = self.cfg.data.crop
        if c:
            H, W = videos[0].shape[-2:]
            if c > min(H, W) or c % 4:
                raise CinetuneError(f"data.crop must be a multiple of 4 no larger than the frame, got {c}")
            offs = [(int(torch.randint(0, H - c + 1, (1,), generator=g)), int(torch.randint(0, W - c + 1, (1,), generator=g)))
                    for g in gens]
            videos = [v[..., y:y + c, x:x + c] for v, (y, x) in zip(videos, offs)]
        return {"video": torch.stack(videos).to(self.device), "gens": gens}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        x = batch["video"]
        vc = self.vae.config
        shape = (vc.z_dim, (x.shape[2] - 1) // vc.scale_factor_temporal + 1,
                 x.shape[3] // vc.scale_factor_spatial, x.shape[4] // vc.scale_factor_spatial)
        noise = torch.stack([torch.randn(shape, generator=g) for g in batch["gens"]]).to(x.device)
        rec, mean, logvar = model(x, noise)
        rec = rec.float()
        mse = F.mse_loss(rec, x)
        kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1 - logvar.float()).mean()
        loss = mse + 0.1 * (rec - x).abs().mean() + (0.0 if self.cfg.decoder_only else self.cfg.kl_weight * kl)
        if self.cfg.data.motion_weight:
            # The same temporal-difference term as the DiT's, on pixels: the causal decoder's frames should change
            # from one to the next as the clip's do, also across its latent-chunk boundaries.
            loss = loss + self.cfg.data.motion_weight * motion_mse(rec, x, None)
        return loss, {"mse": mse.item(), "kl": kl.item()}

    @torch.no_grad()
    def validate(self, out_dir: Path, step: int) -> dict:
        """PSNR and chunk-boundary flicker (metrics.chunk_flicker) on held-out full-length clips (17 frames, the
        DiTs' clip length, whatever the training crop), plus a side-by-side GIF."""
        x = toy_clips(8, 17, self.cfg.data.seed + 1, self.cfg.data.height, self.cfg.data.width).to(self.device)
        self.vae.eval()
        rec = self.vae.decode(self.vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        self.vae.train()
        from ..pipelines import to_uint8

        decoded = to_uint8(rec)
        pairs = [np.concatenate([u, v], 2) for u, v in zip(to_uint8(x[:4]), decoded[:4])]
        write_video(out_dir / "samples" / f"step-{step:07d}.gif", video_grid(pairs, cols=2))
        flicker = [chunk_flicker(v, self.vae.config.scale_factor_temporal) for v in decoded]
        return {"val_psnr": psnr(rec, x), "val_chunk_flicker": float(np.mean(flicker))}

    @torch.no_grad()
    def export(self, out_dir: Path) -> None:
        """Save the VAE with per-channel latent statistics so latents reach unit scale (WanPipeline convention; what
        diffusers' own pipelines read), and per-(channel, latent frame) ones beside them (what cinetune's codec reads).
        One pass over 64 held-out 33-frame clips: the causal encoder's first 5 latent frames are exactly those of the
        clips' first 17 frames, the DiTs' clip length, from which the per-channel statistics come as before."""
        self.vae.eval()
        d = self.cfg.data
        z = encode_modes(self.vae, toy_clips(64, 33, d.seed + 2, d.height, d.width).to(self.device))
        z17 = z[:, :, :5].transpose(0, 1).flatten(1)
        self.vae.register_to_config(latents_mean=z17.mean(1).tolist(), latents_std=z17.std(1).clamp_min(1e-3).tolist())
        self.vae.save_pretrained(out_dir / "vae", safe_serialization=True)
        write_json(out_dir / "vae" / FRAME_STATS, frame_stats_of(z))


def toy_clips(n: int, frames: int, seed: int, height: int = 64, width: int = 64) -> torch.Tensor:
    """Toy-world clips 0..n-1 of dataset `seed` -> (n,3,frames,H,W) in [-1,1]."""
    data = ToyWorldDataset(n, seed=seed, cfg=RenderConfig(frames=frames, height=height, width=width))
    return torch.stack([data[i]["video"] for i in range(n)])


class DiTTask(Task):
    """Text-to-video flow matching on toy-world clips (frozen VAE + text encoder; the transformer trains)."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        self.backbone = load_backbone(cfg.backbone, random_init=not cfg.init)
        if cfg.init:
            cls = type(self.backbone.transformer)
            self.backbone.transformer = cls.from_pretrained(init_dir(cfg.init, "transformer"), use_safetensors=True)
        scheduler = self.backbone.scheduler
        if type(scheduler).__name__ not in ("FlowMatchEulerDiscreteScheduler", "UniPCMultistepScheduler") or \
                getattr(scheduler.config, "prediction_type", "flow_prediction") not in ("flow_prediction", "epsilon"):
            raise CinetuneError(f"{cfg.backbone}: training supports flow-matching backbones (Wan, toy); "
                                f"this one uses {type(scheduler).__name__}")
        self.backbone.to(device)
        self.model = self.backbone.transformer
        self.view = self.backbone.view
        self.empty = self.backbone.text_encoder([""])[0]
        self.cache = self._load_or_build_cache() if cfg.data.latent_cache else None
        self.single = None
        if cfg.data.single_object_share:
            n = self.cache["latents"].shape[0] if self.cache is not None else min(len(self.train_set), 100_000)
            specs = (self.train_set.spec(i) for i in range(n))
            self.single = torch.tensor([i for i, sp in enumerate(specs) if len(sp.objects) == 1 and not sp.actors])
            if not len(self.single):
                raise CinetuneError("data.single_object_share: no clip with one object and no actor among the "
                                    f"{n} drawn from (max_objects={cfg.data.max_objects}, max_actors={cfg.data.max_actors})")

    # -- data -------------------------------------------------------------------------------------------------
    def _cache_path(self) -> Path:
        return Path(self.cfg.data.cache_path or Path(self.cfg.output_dir) / "latents.safetensors")

    @torch.no_grad()
    def _load_or_build_cache(self) -> dict:
        """Latents + text embeddings of clips 0..n-1, stored at data.cache_path and shared between runs. A smaller
        cache is extended (only the missing clips are encoded); text encoded at another length (max_text_len) is
        encoded again from the captions, keeping the latents."""
        from tqdm.auto import tqdm

        path, n = self._cache_path(), self.cfg.data.latent_cache
        data = load_file(path) if path.is_file() else {"latents": None, "text": None}
        have = 0 if data["latents"] is None else data["latents"].shape[0]
        changed = bool(have) and carry_over(data, ["latents"], self.backbone.codec)
        if have and data["text"].shape[1] != self.backbone.text_encoder.max_len:
            data["text"] = encode_captions(self.backbone, self.train_set, have)
            changed = True
        fg_have = data["foreground"].shape[0] if "foreground" in data else 0
        if have < n:
            # The new clips are rendered with their instance masks, so foreground maps that end where the latents end
            # grow in the same pass (no second render).
            new = {"latents": [], "text": [], **({"foreground": []} if self.cfg.data.foreground_weight
                                                   and fg_have == have else {})}
            for s in tqdm(range(have, n, 16), desc="encoding latent cache"):
                items = [self.train_set[i] for i in range(s, min(n, s + 16))]
                new["latents"].append(
                    self.backbone.codec.encode(torch.stack([it["video"] for it in items]).to(self.device)).cpu())
                new["text"].append(self.backbone.text_encoder([it["caption"] for it in items]).half().cpu())
                if "foreground" in new:
                    new["foreground"].append(self._foreground_of(items).half())
            data.update({k: torch.cat(([data[k]] if have else []) + v).contiguous() for k, v in new.items()})
            fg_have = n if "foreground" in new else fg_have
            changed = True
        if self.cfg.data.foreground_weight and fg_have < n:
            data["foreground"] = torch.cat(([data["foreground"]] if fg_have else []) + [self._foreground(fg_have, n)])
            changed = True
        if changed:
            data.update(self.backbone.codec.tables())  # the statistics every latent in it is normalised with
            with atomic_path(path) as tmp:
                save_file(data, tmp)
        out = {"latents": data["latents"][:n], "text": data["text"][:n].float()}
        if self.cfg.data.foreground_weight:
            out["foreground"] = data["foreground"][:n].float()
        return out

    def _foreground(self, start: int, stop: int) -> torch.Tensor:
        """(stop-start,T',H',W') float16 foreground maps of clips start..stop-1 on the latent grid."""
        from tqdm.auto import tqdm

        return torch.cat([self._foreground_of([self.train_set[i]]).half()
                          for i in tqdm(range(start, stop), desc="foreground maps")])

    def _foreground_of(self, items: list[dict]) -> torch.Tensor:
        codec = self.backbone.codec
        return torch.cat([foreground_map(it["instance"][None], codec.temporal, codec.spatial) for it in items])

    def reselect(self, idx: torch.Tensor, step: int) -> torch.Tensor:
        if self.single is None:
            return idx
        g = step_generator(self.cfg.seed, 3, step)
        take = torch.rand(len(idx), generator=g) < self.cfg.data.single_object_share
        return torch.where(take, self.single[torch.randint(0, len(self.single), (len(idx),), generator=g)], idx)

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        n = self.cache["latents"].shape[0] if self.cache is not None else len(self.train_set)
        idx, gens = self.draw(step, micro, rank, world, n)
        fg = None
        if self.cache is not None:
            x0, emb = self.cache["latents"][idx], self.cache["text"][idx]
            fg = self.cache["foreground"][idx] if "foreground" in self.cache else None
        else:
            items = [self.train_set[i] for i in idx]
            x0 = self.backbone.codec.encode(torch.stack([it["video"] for it in items]).to(self.device))
            emb = self.backbone.text_encoder([it["caption"] for it in items])
            if self.cfg.data.foreground_weight:
                fg = self._foreground_of(items)
        drop = torch.cat([torch.rand(1, generator=g) for g in gens]) < self.cfg.data.caption_dropout
        emb = torch.where(drop[:, None, None], self.empty.cpu().expand_as(emb), emb.cpu())
        weight = None if fg is None else (1 + self.cfg.data.foreground_weight * fg).to(self.device)
        return {"x0": x0.to(self.device), "emb": emb.to(self.device), "gens": gens, "weight": weight}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        x0, gens = batch["x0"], batch["gens"]
        sigmas = torch.cat([sample_sigmas(1, self.cfg.timestep_shift, g) for g in gens])
        noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in gens]).to(x0.device)
        xt, t, target = flow_matching_inputs(x0, sigmas.to(x0.device), noise)
        pred = self.view(xt, t, batch["emb"], module=model)
        loss = weighted_mse(pred, target, batch.get("weight"))
        if self.cfg.data.motion_weight:
            loss = loss + self.cfg.data.motion_weight * motion_mse(pred, target, batch.get("weight"))
        return loss, {}

    # -- outputs ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, out_dir: Path, step: int) -> dict:
        from ..pipelines import TextToVideoPipeline

        self.model.eval()
        pipe = TextToVideoPipeline(self.backbone, self.device)
        prompts = [self.val_set[i]["caption"] for i in range(len(self.val_set))]
        d = self.cfg.data
        out = pipe(prompts, frames=d.frames, height=d.height, width=d.width, steps=self.cfg.validation_steps,
                   guidance=5.0, seed=self.cfg.seed, progress=False)
        self.model.train()
        write_video(out_dir / "samples" / f"step-{step:07d}.gif", video_grid(list(out.videos)))
        (out_dir / "samples" / f"step-{step:07d}.txt").write_text("\n".join(prompts) + "\n")
        return {}

    def export(self, out_dir: Path) -> None:
        self.model.save_pretrained(out_dir / "transformer", safe_serialization=True)


def make_task(cfg: TrainConfig, device: torch.device) -> Task:
    from .feature_tasks import FEATURE_TASKS

    if cfg.task == "control":
        from .control_task import ControlTask

        return ControlTask(cfg, device)
    if cfg.task == "scale-adapter":
        from .scale_task import ScaleAdapterTask

        return ScaleAdapterTask(cfg, device)
    return {"vae": VAETask, "dit": DiTTask, **FEATURE_TASKS}[cfg.task](cfg, device)
