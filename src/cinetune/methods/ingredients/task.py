"""Training task of Ingredients (paper Sec. 3.3) on the frozen toy backbone with a DiT LoRA, on portrait clips:
references are face crops of another frame of the same clip. Stage 1 (facial embedding alignment) trains the
projector, the injectors' attention and the input slot with the diffusion loss, identities routed by their masks and
the facial input dropped uniformly to global only, local only or complete; stage 2 (router fine-tuning) trains the
router with the routing loss (Eq. 5) beside the diffusion loss, everything else frozen but the LoRA. Stage 0, for the
paper's T2V-vs-I2V ablation, first makes the base an image-to-video model: the input slot and the LoRA learn to
take each clip's own first latent frame (the local input off); a stage 1 initialised from it starts from a slot that
already reads an image, as the paper's I2V base does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import CinetuneError
from ...toyworld import clip_seed, render_clip
from ...training.cache import Column, latents_column, text_column
from ...training.config import TrainConfig
from ...training.flow import FlowMatchingTask, task_backbone
from .config import DROPOUTS
from .extractor import global_latents
from .losses import box_masks, routing_loss, token_labels
from .real_faces import make_encoder
from .model import IngredientsModel

MAX_REFS = 3  # the toy portraits hold 1-3 people
ROUTER = ("f.", "g.", "aggregate.", "norm_h.", "norm_t.")  # the router's parameters inside an injector


class IngredientsDenoiser(torch.nn.Module):
    """The backbone's transformer with Ingredients attached, as one module (what accelerate wraps): forward ->
    (velocity prediction, router logits per injected block)."""

    def __init__(self, backbone, att, module: torch.nn.Module):
        super().__init__()
        self.transformer, self.ingredients, self.att, self.view = backbone.transformer, module, att, backbone.view

    def forward(self, xt, t, emb, cond: dict, keep: dict | None, labels: torch.Tensor | None):
        self.att.prepare(cond, keep, labels)
        self.att.before_step(xt, t, emb, 1.0)
        return self.view(xt, t, emb, module=self.transformer), dict(self.att.logits)


def reference_crops(clip, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each person's face from the last frame that shows it -> (MAX_REFS, 3, crop, crop) in [-1, 1] (zeros for absent
    slots) and present (MAX_REFS,) bool."""
    from ...toynets import crop_faces

    refs, present = torch.zeros(MAX_REFS, 3, crop, crop), torch.zeros(MAX_REFS, dtype=torch.bool)
    video = torch.from_numpy(clip.video).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    for a in range(min(clip.face_boxes.shape[1], MAX_REFS)):
        seen = np.nonzero(clip.face_boxes[:, a, 2] > 0)[0]
        if len(seen):
            f = int(seen[-1])
            refs[a] = crop_faces(video[f:f + 1], torch.from_numpy(clip.face_boxes[f, a][None]), crop)[0]
            present[a] = True
    return refs, present


def padded_boxes(clip) -> torch.Tensor:
    """The clip's face boxes (F, A, 4) padded with hidden ones (-1) to (F, MAX_REFS, 4), so clips with 1-3 people
    stack."""
    out = torch.full((clip.face_boxes.shape[0], MAX_REFS, 4), -1.0)
    a = min(clip.face_boxes.shape[1], MAX_REFS)
    out[:, :a] = torch.from_numpy(clip.face_boxes[:, :a])
    return out


class IngredientsTask(FlowMatchingTask):
    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        c = self.c = cfg.ingredients
        self.backbone = task_backbone(cfg, device, frozen=True)
        if c.stage == 1 and c.init:  # an I2V-initialised stage 1: continue the stage-0 model
            self.ing = IngredientsModel.load(c.init)
        elif c.stage in (0, 1):
            torch.manual_seed(cfg.seed)
            self.ing = IngredientsModel.new(self.backbone, c.interval, num_queries=c.num_queries, id_tokens=c.id_tokens,
                                            projector_dim=c.projector_dim, depth=c.depth, face_scale=c.face_scale,
                                            canvas=c.canvas, lora_rank=c.lora_rank, encoder=make_encoder(c.encoder_spec()))
        else:
            self.ing = IngredientsModel.load(c.init)
            self.ing.canvas = c.canvas
        self.ing.routing = "mask" if c.stage in (0, 1) else c.routing  # (export restores c.routing)
        self.att = self.ing.attach(self.backbone, trainable=True)
        self._freeze_for_stage()
        self.model = IngredientsDenoiser(self.backbone, self.att, self.ing.module)
        self.init_flow()
        self.portraits = self._portrait_indices(c.clip_cache)
        path = Path(cfg.data.cache_path or Path(cfg.output_dir) / "ingredients-cache.safetensors")
        self.cache = self.build_cache(path, c.clip_cache, self._columns(), chunk=8, desc="ingredients cache")

    def _freeze_for_stage(self) -> None:
        for inj in self.ing.module.injectors.values():
            for n, p in inj.named_parameters():
                is_router = n.startswith(ROUTER)
                p.requires_grad_(self.c.stage == 1 and not is_router or self.c.stage == 2 and is_router)
        if self.c.stage in (0, 2):  # stage 0: the slot (and the LoRA) only; stage 2: the router (and the LoRA)
            self.ing.module.projector.requires_grad_(False)
        if self.c.stage == 2:
            self.ing.module.slot.requires_grad_(False)

    def param_groups(self) -> list[dict]:
        return [{"params": self.att.trainable_parameters(), "lr_scale": 1.0}]

    def enable_gradient_checkpointing(self) -> None:
        self.backbone.transformer.enable_gradient_checkpointing()

    # -- data -----------------------------------------------------------------------------------------------------
    def _portrait_indices(self, n: int) -> list[int]:
        """The first n training clips that are portraits (the faces Ingredients learns from are >= 16 px there)."""
        out, i = [], 0
        while len(out) < n and i < len(self.train_set):
            if self.train_set.spec(i).kind == "portrait":
                out.append(i)
            i += 1
        if len(out) < n:
            raise CinetuneError(f"only {len(out)} portrait clips among data.size={len(self.train_set)}: raise it")
        return out

    def render(self, i: int):
        """Portrait i with a caption that names what the people do, not what they look like (the identity must
        come from the references)."""
        from ...toyworld import caption

        d = self.cfg.data
        clip, _ = render_clip(clip_seed(d.seed, self.portraits[i]), self.render_cfg, d.max_objects, d.max_actors)
        return clip, caption(clip.spec, describe_people=False)

    def cache_caption(self, i: int) -> str:
        from ...toyworld import caption

        return caption(self.train_set.spec(self.portraits[i]), describe_people=False)

    def _columns(self) -> list[Column]:
        codec, view, crop = self.backbone.codec, self.backbone.view, self.ing.encoder.crop
        d, c = self.cfg.data, self.c
        last: list = [(), None, None]  # (clip ids, the clips themselves, their reference crops)

        def crops(clips) -> list[tuple[torch.Tensor, torch.Tensor]]:
            """One crop pass per chunk for the refs, present and canvas columns (holding the clips keeps their ids
            from being reused by the next chunk's)."""
            ids = tuple(id(cl) for cl, _ in clips)
            if ids != last[0]:
                last[:] = [ids, clips, [reference_crops(cl, crop) for cl, _ in clips]]
            return last[2]

        def refs(clips):
            return torch.stack([r for r, _ in crops(clips)]).half()

        def present(clips):
            return torch.stack([p for _, p in crops(clips)]).to(torch.uint8)

        def labels(kind):
            def compute(clips):
                if kind == "box":
                    m = box_masks(torch.stack([padded_boxes(cl) for cl, _ in clips]), d.height, d.width)
                else:
                    m = torch.stack([torch.from_numpy(cl.face_masks.astype(np.int64)) - 1 for cl, _ in clips])
                return token_labels(m, codec.temporal, codec.spatial, tuple(view.patch_size)).to(torch.int8)
            return compute

        def canvas(clips):
            return torch.stack([global_latents(codec, r[p].to(self.device), d.height, d.width, c.canvas).cpu()
                                for r, p in crops(clips)])

        return [latents_column(self.backbone, self.device), text_column(self.backbone), Column("refs", refs),
                Column("present", present), Column(f"labels_{c.supervision}", labels(c.supervision)),
                Column(f"canvas_{c.canvas}", canvas)]

    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        idx_t, gens, x0, emb = self.draw_cached(step, micro, rank, world)
        c, dev = self.c, self.device
        modes = [DROPOUTS[int(torch.randint(0, 3, (1,), generator=g))] if c.stage == 1 else
                 "global" if c.stage == 0 else "complete" for g in gens]
        keep = {"local": torch.tensor([m != "global" for m in modes], device=dev),
                "global": torch.tensor([m != "local" for m in modes], device=dev)}
        # stage 0: the canvas slot takes the clip's own first latent frame (an image-to-video input)
        canvas = x0[:, :, :1] if c.stage == 0 else self.cache[f"canvas_{c.canvas}"][idx_t]
        cond = {"identities": self.cache["refs"][idx_t].float().to(dev), "present": self.cache["present"][idx_t].bool()
                .to(dev), "canvas": canvas.to(dev)}
        return {"x0": x0.to(dev), "emb": emb.to(dev), "gens": gens, "cond": cond, "keep": keep,
                "labels": self.cache[f"labels_{c.supervision}"][idx_t].long().to(dev)}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        xt, t, target = self.noisy(batch["x0"], batch["gens"])
        pred, logits = model(xt, t, batch["emb"], batch["cond"], batch["keep"], batch["labels"])
        diffusion = F.mse_loss(pred.float(), target.float())
        if self.c.stage < 2 or self.c.routing_loss == "off":
            return diffusion, {"diffusion": float(diffusion.detach())}
        route = routing_loss(logits, batch["labels"], self.c.routing_loss)
        return diffusion + self.c.routing_weight * route, {"diffusion": float(diffusion.detach()),
                                                           "routing": float(route.detach())}

    def export(self, out_dir: Path) -> None:
        self.att.collect()
        self.ing.routing = self.c.routing
        self.ing.info = {"stage": self.c.stage, "backbone": self.cfg.backbone, "init": self.cfg.init,
                         "steps": self.cfg.steps, "preset": self.cfg.preset}
        self.ing.save(out_dir / "ingredients")
