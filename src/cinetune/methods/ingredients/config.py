"""Config section and training presets of Ingredients (`cinetune train ingredients --stage 1|2`); docs/ingredients.md
says where each default comes from."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import CinetuneError

DROPOUTS = ("global", "local", "complete")  # which facial inputs a stage-1 sample keeps (drawn uniformly)


@dataclass
class IngredientsConfig:
    """Stage 1 (facial embedding alignment): extractor + projector + DiT LoRA with the diffusion loss, identities
    routed by their masks, each sample keeping the global, the local or the complete facial input. Stage 2 (router
    fine-tuning): the router + the LoRA with the diffusion and routing losses, the projector frozen."""

    stage: int = 1  # 0: first-frame (I2V-style) pre-training of the slot, for the T2V-vs-I2V ablation
    init: str = ""  # stage 2: the stage-1 model; stage 1: optionally a stage-0 model (I2V init)
    interval: int = 1  # identity injection every this many blocks (the public code: every block)
    num_queries: int = 8  # Q-former queries (public code: 32 at 5B scale)
    id_tokens: int = 2  # tokens from the identity embedding (public code: 5)
    projector_dim: int = 128
    depth: int = 2  # resampler layers per scale (public code: 2)
    routing: str = "hard"  # hard (argmax, the paper) | soft (softmax mix, the public code); stage 1 routes by mask
    face_scale: float = 1.0  # alpha in Eq. 4 (paper: 1.0)
    routing_loss: str = "ce"  # ce (Eq. 5) | mse (the paper's ablation) | off
    routing_weight: float = 1.0  # lambda in Eq. 5
    supervision: str = "mask"  # mask (face segmentation, the paper's choice) | box (its ablation)
    canvas: str = "before"  # before: faces pasted, then the VAE (the paper's choice) | after: VAE each, then pasted
    lora_rank: int = 16
    clip_cache: int = 1500  # portrait clips (latents, references, labels) encoded once
    encoder: str = "toy"  # toy (the shipped toy identity encoder) | dlib-clip (real photos: dlib + a local CLIP)
    clip: str = ""  # dlib-clip: a local CLIP vision directory (transformers format)
    clip_layers: str = "-9,-5,-1"  # dlib-clip: the hidden states taken as the scales (the paper's multi-scale)

    def encoder_spec(self) -> dict:
        if self.encoder == "toy":
            return {"kind": "toy"}
        try:
            layers = [int(v) for v in self.clip_layers.split(",") if v.strip()]
        except ValueError:
            raise CinetuneError(f"ingredients.clip_layers must be integers like -9,-5,-1, got {self.clip_layers!r}") \
                from None
        return {"kind": self.encoder, "clip": self.clip, "layers": layers}

    def validate(self) -> None:
        if self.stage not in (0, 1, 2):
            raise CinetuneError(f"ingredients.stage must be 0, 1 or 2, got {self.stage}")
        if self.stage == 2 and not self.init:
            raise CinetuneError("ingredients stage 2 needs ingredients.init: the stage-1 model")
        if self.stage == 0 and self.init:
            raise CinetuneError("ingredients stage 0 starts from the base: leave ingredients.init empty")
        if self.routing not in ("hard", "soft") or self.routing_loss not in ("ce", "mse", "off"):
            raise CinetuneError(f"ingredients.routing must be hard or soft and routing_loss ce, mse or off, got "
                                f"{self.routing!r}, {self.routing_loss!r}")
        if self.encoder not in ("toy", "dlib-clip") or (self.encoder == "dlib-clip" and not self.clip):
            raise CinetuneError(f"ingredients.encoder must be toy, or dlib-clip with ingredients.clip a local CLIP "
                                f"vision directory; got {self.encoder!r}, clip={self.clip!r}")
        self.encoder_spec()
        if self.supervision not in ("mask", "box") or self.canvas not in ("before", "after"):
            raise CinetuneError(f"ingredients.supervision must be mask or box and canvas before or after, got "
                                f"{self.supervision!r}, {self.canvas!r}")
        if min(self.interval, self.num_queries, self.id_tokens, self.projector_dim, self.depth, self.clip_cache) < 1 \
                or self.face_scale < 0 or self.routing_weight < 0 or self.lora_rank < 0:
            raise CinetuneError("ingredients: interval, num_queries, id_tokens, projector_dim, depth and clip_cache "
                                "must be >= 1; face_scale, routing_weight and lora_rank >= 0")


PRESETS: dict[str, dict] = {
    # Stage 1 then stage 2 on the shipped toy-large, portrait clips only (faces >= 16 px).
    "toy-ingredients-1": dict(task="ingredients", backbone="toy-large", init="toy-large",
                              output_dir="runs/toy-ingredients-1", steps=1500, batch_size=8, mixed_precision="auto",
                              data=dict(cache_path="runs/ingredients-cache-17x64x64.safetensors"),
                              optim=dict(lr=2e-4, warmup_steps=50), checkpoint_every=250, validate_every=500),
    "toy-ingredients-2": dict(task="ingredients", backbone="toy-large", init="toy-large",
                              output_dir="runs/toy-ingredients-2", steps=800, batch_size=8, mixed_precision="auto",
                              ingredients=dict(stage=2, init="runs/toy-ingredients-1"),
                              data=dict(cache_path="runs/ingredients-cache-17x64x64.safetensors"),
                              optim=dict(lr=3e-4, warmup_steps=20), checkpoint_every=200, validate_every=400),
    "tiny-ingredients": dict(task="ingredients", backbone="toy-small", init="", output_dir="runs/tiny-ingredients",
                             steps=4, batch_size=2, data=dict(frames=5, height=64, width=64, size=400),
                             ingredients=dict(clip_cache=4, num_queries=2, id_tokens=1, projector_dim=16, depth=1,
                                              interval=2, lora_rank=2),
                             optim=dict(lr=1e-3, warmup_steps=0), checkpoint_every=2, num_validation=1,
                             validation_steps=2),
}
