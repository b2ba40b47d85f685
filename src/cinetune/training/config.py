"""Training run configs (nested dataclasses) and their named presets."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, make_dataclass

from ..config import merge
from ..errors import CinetuneError


@dataclass
class DataConfig:
    seed: int = 0  # toy-world dataset seed (validation uses seed + 1, never seen in training)
    size: int = 1_000_000  # number of distinct clips drawn from
    frames: int = 17
    height: int = 64
    width: int = 64
    max_objects: int = 2  # caps of the toy world's scene sampler (toyworld.sample_scene)
    max_actors: int = 3
    latent_cache: int = 0  # >0: pre-encode this many clips once (DiT tasks); the VAE is frozen so this is exact
    cache_path: str = ""  # where the cache lives (shared between runs); default: <output_dir>/latents.safetensors
    clip_cache: int = 0  # feature-network tasks: render this many clips once into memory
    caption_dropout: float = 0.1  # for classifier-free guidance
    # DiT only: loss weight 1 + this on latent cells covered by objects and actors (objectives.foreground_map): an
    # object covers 4-13% of a toy frame, so unweighted its shape and motion barely move the loss. Caution: the
    # weight depends on where the object really is, so it moves the minimiser towards "object here" where the
    # position is uncertain.
    foreground_weight: float = 0.0
    # Weight of a second loss term on the error's differences between consecutive frames (objectives.motion_mse): it
    # weighs the part of the error that changes over time more. DiT: on latent frames; VAE: on the reconstructed
    # pixels, against the decoder's jumps at its latent-chunk boundaries.
    motion_weight: float = 0.0
    # DiT only: fraction of every batch drawn from the cached clips that show one object and no actor, whose caption
    # ties each shape / colour / motion word to the only thing that moves (the rest is drawn uniformly as before).
    single_object_share: float = 0.0
    # DiT only: fraction of training steps that train on images, each clip's first frame alone. The causal VAE encodes
    # frame 0 by itself, so an image's latent is the clip's first latent frame (no second cache); an image step costs
    # about a fifth of a 17-frame step, so the caption's words meet many more pictures per CPU-hour.
    image_share: float = 0.0
    crop: int = 0  # VAE only: train on random square crops of this size (the VAE is convolutional; 4x cheaper at 32)


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    schedule: str = "cosine"  # any diffusers.optimization scheduler name
    warmup_steps: int = 100
    grad_clip: float = 1.0

    def validate(self) -> None:
        from diffusers.optimization import SchedulerType

        if not (self.lr > 0 and self.weight_decay >= 0 and self.eps > 0 and self.warmup_steps >= 0
                and self.grad_clip >= 0 and 0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise CinetuneError(f"optim: need lr > 0, weight_decay >= 0, eps > 0, warmup_steps >= 0, grad_clip >= 0 "
                                f"and betas in [0, 1); got {self}")
        if self.schedule not in {t.value for t in SchedulerType}:
            raise CinetuneError(f"optim.schedule must be one of {', '.join(t.value for t in SchedulerType)}, "
                                f"got {self.schedule!r}")


@dataclass
class BaseTrainConfig:
    preset: str = ""  # the preset this run started from (recorded for model cards)
    task: str = "dit"  # a base task (training.tasks.BASE_TASKS) or a registered method's name
    backbone: str = "toy-small"
    init: str = ""  # start from these weights: a saved directory or a shipped model's name ("" = random init)
    output_dir: str = "runs/toy-small"
    steps: int = 1000
    batch_size: int = 8  # per process
    grad_accum: int = 1
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" | "auto" (bf16 where the hardware has it: trainer)
    gradient_checkpointing: bool = False
    # The frozen backbone beside what trains (adapters, a LoRA, fine-tuned subsets, a distilled student): its load
    # dtype (fp32 | bf16 | fp16; what trains stays fp32) and fp8 storage of its frozen layers (each computed in
    # backbone_dtype). A 14B in bf16 is 28.6 GB, in fp8 14.3 GB (docs/memory.md).
    backbone_dtype: str = "fp32"
    backbone_fp8: bool = False
    ema_decay: float = 0.0  # 0 disables EMA
    seed: int = 0
    timestep_shift: float = 2.0  # Wan's shifted timestep sampling, sigma' = s*sigma / (1 + (s-1)*sigma)
    timestep_sampling: str = "uniform"  # uniform | logit-normal (objectives.sample_sigmas), before the shift
    logit_mean: float = 0.0  # logit-normal sampling: location and scale of the noise level's logit
    logit_std: float = 1.0
    kl_weight: float = 1e-6  # VAE only
    decoder_only: bool = False  # VAE only: freeze the encoder (latents, and DiTs trained on them, stay valid)
    # VAE only, with decoder_only and init: > 0 replaces the decoder by a freshly initialised one of this base width
    # (diffusers' decoder_base_dim); the encoder and latent statistics are kept, so DiTs trained on them stay valid.
    decoder_base_dim: int = 0
    # VAE only, without init: > 0 builds the VAE at this base width instead of the backbone preset's (encoder and
    # decoder; diffusers' base_dim).
    vae_base_dim: int = 0
    # dit only: > 0 trains a LoRA of this rank on the base's attention projections (core.DEFAULT_LORA_TARGETS)
    # instead of the whole transformer, exported as diffusers' LoRA file (what `generate --lora` loads)
    lora_rank: int = 0
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10
    validate_every: int = 0  # 0: only at the end
    num_validation: int = 4
    validation_steps: int = 20  # sampler steps for validation videos
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def _validate_backbone_memory(self) -> None:
        from ..backbones.memory import DTYPES

        if self.backbone_dtype not in DTYPES:
            raise CinetuneError(f"backbone_dtype must be one of {', '.join(DTYPES)}, got {self.backbone_dtype!r}")
        if self.backbone_fp8 and self.backbone_dtype == "fp32":
            raise CinetuneError("backbone_fp8 computes each layer in bf16 or fp16: set backbone_dtype=bf16 or fp16")
        from ..methods.registry import methods

        half = self.backbone_dtype != "fp32"  # (fp8 needs it, checked above)
        dit_tasks = ["dit", *methods()]
        if half and self.task not in dit_tasks:
            raise CinetuneError(f"backbone_dtype and backbone_fp8 are for the tasks on a DiT ({', '.join(dit_tasks)}), "
                                f"not {self.task}")
        if half and self.task == "distill":
            raise CinetuneError("distill stores its student as deltas from the teacher's exact weights (and checks them "
                                "by fingerprint): keep backbone_dtype=fp32 without backbone_fp8")
        if half and self.task == "dit" and not self.lora_rank:
            raise CinetuneError(f"the dit task trains the whole transformer (kept in fp32): backbone_dtype="
                                f"{self.backbone_dtype} needs lora_rank > 0, where the base stays frozen")
        if half and self.mixed_precision == "no":
            raise CinetuneError(f"a {self.backbone_dtype} backbone beside fp32 trainable weights needs autocast: set "
                                f"mixed_precision={self.backbone_dtype} (or auto)")

    def validate(self) -> "TrainConfig":
        from ..methods.registry import methods
        from .tasks import task_names

        if self.task not in task_names():
            raise CinetuneError(f"task must be one of {', '.join(task_names())}, got {self.task!r}")
        bad = [k for k, v in _leaves(dataclasses.asdict(self)) if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise CinetuneError(f"settings must be finite numbers: {', '.join(bad[:4])}")
        if not (0 <= self.seed < 2**63 and 0 <= self.data.seed < 2**63):
            raise CinetuneError(f"seed and data.seed must be in 0..2^63-1, got {self.seed}, {self.data.seed}")
        self.optim.validate()
        if min(self.steps, self.batch_size, self.grad_accum, self.checkpoint_every, self.keep_checkpoints,
               self.log_every) <= 0 or self.validate_every < 0:
            raise CinetuneError("steps, batch_size, grad_accum, checkpoint_every, keep_checkpoints and log_every must "
                                "be positive and validate_every >= 0")
        from .objectives import SAMPLINGS

        if self.timestep_sampling not in SAMPLINGS or self.logit_std <= 0 or self.timestep_shift <= 0:
            raise CinetuneError(f"timestep_sampling must be one of {', '.join(SAMPLINGS)} with logit_std > 0 and "
                                f"timestep_shift > 0, got {self.timestep_sampling!r}, {self.logit_std}, "
                                f"{self.timestep_shift}")
        if self.mixed_precision not in ("no", "bf16", "fp16", "auto"):
            raise CinetuneError(f"mixed_precision must be no, bf16, fp16 or auto, got {self.mixed_precision!r}")
        self._validate_backbone_memory()
        if not 0.0 <= self.ema_decay < 1.0:
            raise CinetuneError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.task in methods():
            getattr(self, methods()[self.task].section).validate()
        for m in methods().values():  # a method's further task (distill's interpolator) reads the method's section
            if self.task in m.extra_tasks:
                getattr(self, m.section).validate()
        if self.decoder_base_dim < 0 or (self.decoder_base_dim and not (self.task == "vae" and self.decoder_only
                                                                       and self.init)):
            raise CinetuneError(f"decoder_base_dim must be 0, or > 0 for a vae task with decoder_only=true and an "
                                f"init to keep the encoder of; got {self.decoder_base_dim}")
        if self.lora_rank < 0 or (self.lora_rank and self.task != "dit"):
            raise CinetuneError(f"lora_rank must be 0, or > 0 for the dit task (a method sets its own LoRA in its "
                                f"section); got {self.lora_rank} for {self.task}")
        if self.vae_base_dim < 0 or (self.vae_base_dim and (self.task != "vae" or self.init)):
            raise CinetuneError(f"vae_base_dim must be 0, or > 0 for a vae task without init; got {self.vae_base_dim}")
        d = self.data
        if not 0.0 <= d.image_share <= 1.0:
            raise CinetuneError(f"data.image_share must be in [0, 1], got {d.image_share}")
        if d.foreground_weight < 0 or d.motion_weight < 0 or not 0.0 <= d.single_object_share <= 1.0:
            raise CinetuneError(f"data: need foreground_weight >= 0, motion_weight >= 0 and 0 <= single_object_share "
                                f"<= 1, got {d.foreground_weight}, {d.motion_weight}, {d.single_object_share}")
        if (self.data.frames - 1) % 4:
            raise CinetuneError(f"data.frames must be 4k+1 (the VAE's causal time compression), got {self.data.frames}")
        return self


def _leaves(d: dict, prefix: str = ""):
    """('data.frames', 17), ... of a nested settings dict."""
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _with_method_sections() -> type:
    """TrainConfig = BaseTrainConfig + one field per registered method's config section (methods.registry)."""
    from ..methods.registry import config_sections

    sections = [(name, cls, field(default_factory=cls)) for name, cls in config_sections().items()]
    return make_dataclass("TrainConfig", sections, bases=(BaseTrainConfig,), namespace={"__module__": __name__})


TrainConfig = _with_method_sections()


PRESETS: dict[str, dict] = {
    # Wan VAE, 4x/4x compression; short 9-frame clips cover the first-frame path and the chunk-to-chunk cache.
    "toy-vae": dict(task="vae", backbone="toy-small", output_dir="runs/toy-vae", steps=3500, batch_size=8,
                    data=dict(frames=9, crop=32), optim=dict(lr=1e-3, warmup_steps=50, grad_clip=1.0),
                    checkpoint_every=250, log_every=10),
    # The decoder alone on full 17-frame clips, so the causal cache chain is trained to the DiTs' clip length.
    "toy-vae-decoder": dict(task="vae", backbone="toy-small", init="runs/toy-vae/final/vae", decoder_only=True,
                            output_dir="runs/toy-vae-decoder", steps=1200, batch_size=8, data=dict(frames=17, crop=32),
                            optim=dict(lr=3e-4, warmup_steps=20), checkpoint_every=200, log_every=10),
    # A fresh decoder twice as wide on the frozen encoder's latents (not shipped; docs/toy-models-and-history.md).
    "toy-vae-decoder-wide": dict(task="vae", backbone="toy-small", init="runs/toy-vae-decoder/final/vae",
                                 decoder_only=True, decoder_base_dim=32, output_dir="runs/toy-vae-decoder-wide",
                                 steps=1200, batch_size=8, data=dict(frames=17, crop=32),
                                 optim=dict(lr=1e-3, warmup_steps=50, grad_clip=1.0), checkpoint_every=200,
                                 log_every=10, validate_every=400),
    # The shipped decoder with the pixel temporal-difference term on the frozen encoder (not shipped; see docs/).
    "toy-vae-decoder-2": dict(task="vae", backbone="toy-small", init="toy-vae", decoder_only=True,
                              output_dir="runs/toy-vae-decoder-2", steps=1200, batch_size=8,
                              data=dict(frames=17, crop=32, motion_weight=1.0),
                              optim=dict(lr=1e-4, warmup_steps=20), checkpoint_every=200, log_every=10,
                              validate_every=400),
    # Both DiTs share one latent cache (the VAE is frozen, so cached latents are exact); EMA 0.995 averages ~200 steps.
    "toy-small": dict(task="dit", backbone="toy-small", output_dir="runs/toy-small", steps=2200, batch_size=16,
                      ema_decay=0.995, data=dict(latent_cache=3000, cache_path="runs/latents-17x64x64.safetensors"),
                      optim=dict(lr=5e-4, warmup_steps=100), checkpoint_every=250, validate_every=500),
    # fp32, so the recipe reproduces on CPUs without bf16 instructions (`cinetune bench foundation`).
    "toy-large": dict(task="dit", backbone="toy-large", output_dir="runs/toy-large", steps=2000, batch_size=8,
                      ema_decay=0.995, mixed_precision="no",
                      data=dict(latent_cache=3000, cache_path="runs/latents-17x64x64.safetensors"),
                      optim=dict(lr=3e-4, warmup_steps=100), checkpoint_every=250, validate_every=500),
    # Continues stage one at a lower peak LR on a larger latent cache (its loss was still falling).
    "toy-large-2": dict(task="dit", backbone="toy-large", init="runs/toy-large/final/transformer",
                        output_dir="runs/toy-large-2", steps=3000, batch_size=8, ema_decay=0.998, mixed_precision="no",
                        data=dict(latent_cache=4000, cache_path="runs/latents-17x64x64.safetensors"),
                        optim=dict(lr=2e-4, warmup_steps=50), checkpoint_every=250, validate_every=1000),
    # Captions at 64 tokens, 6000 cached clips, the foreground-weighted loss (data.foreground_weight).
    "toy-large-3": dict(task="dit", backbone="toy-large", init="runs/toy-large-2/final/transformer",
                        output_dir="runs/toy-large-3", steps=1500, batch_size=8, ema_decay=0.998,
                        data=dict(latent_cache=6000, cache_path="runs/latents-17x64x64.safetensors",
                                  foreground_weight=4.0),
                        optim=dict(lr=2e-4, warmup_steps=50), checkpoint_every=250, validate_every=500),
    "toy-small-2": dict(task="dit", backbone="toy-small", init="runs/toy-small/final/transformer",
                        output_dir="runs/toy-small-2", steps=2000, batch_size=16, ema_decay=0.998,
                        data=dict(latent_cache=6000, cache_path="runs/latents-17x64x64.safetensors",
                                  foreground_weight=4.0),
                        optim=dict(lr=3e-4, warmup_steps=50), checkpoint_every=250, validate_every=1000),
    # Adds the temporal-difference term (data.motion_weight) and one-object batches (data.single_object_share).
    "toy-large-4": dict(task="dit", backbone="toy-large", init="runs/toy-large-3/final/transformer",
                        output_dir="runs/toy-large-4", steps=1500, batch_size=8, ema_decay=0.998,
                        data=dict(latent_cache=10000, cache_path="runs/latents-17x64x64.safetensors",
                                  foreground_weight=4.0, motion_weight=1.0, single_object_share=0.5),
                        optim=dict(lr=2e-4, warmup_steps=50), checkpoint_every=250, validate_every=500),
    # Toy feature networks: small convnets, minutes each on one core.
    "toy-video-encoder": dict(task="video-encoder", output_dir="runs/toy-video-encoder", steps=2000, batch_size=32,
                              data=dict(clip_cache=4000), num_validation=500, optim=dict(lr=1e-3, warmup_steps=50),
                              checkpoint_every=250, validate_every=500),
    "toy-identity-encoder": dict(task="identity-encoder", output_dir="runs/toy-identity-encoder", steps=1200,
                                 batch_size=128, data=dict(clip_cache=1500), num_validation=300,
                                 optim=dict(lr=2e-3, warmup_steps=50), checkpoint_every=300, validate_every=400),
    "toy-annotator": dict(task="annotator", output_dir="runs/toy-annotator", steps=1500, batch_size=24,
                          data=dict(clip_cache=1200), num_validation=40, optim=dict(lr=1e-3, warmup_steps=50),
                          checkpoint_every=250, validate_every=500),
    # The shape pilot's common start (`cinetune bench shape-pilot`): the shipped toy-small fine-tuned on one-object
    # clips, whose caption ties each shape word to the only thing in the frame; the bench varies one lever at a time.
    "toy-small-shape-pilot": dict(task="dit", backbone="toy-small", init="toy-small",
                                  output_dir="runs/shape-pilot/baseline", steps=600, batch_size=16,
                                  data=dict(max_objects=1, max_actors=0, latent_cache=1200,
                                            cache_path="runs/latents-one-object-17x64x64.safetensors"),
                                  optim=dict(lr=2e-4, warmup_steps=20), checkpoint_every=300, num_validation=1,
                                  validation_steps=10),
    # World v2 rebuild (`cinetune assets`; docs/toy-models-and-history.md, "World v2"). Stage one: the whole VAE at
    # twice world v1's width, on 17-frame clips from the start (trained on 9 frames, frames 9-16 came out 5.8 dB worse
    # than frames 0-8), with the pixel temporal-difference term against chunk-boundary flicker, which a decoder alone
    # could not remove; stage two: the same at a lower learning rate and a heavier temporal term.
    "toy-vae-v2": dict(task="vae", backbone="toy-small", output_dir="runs/toy-vae", vae_base_dim=32, steps=4000,
                       batch_size=4, mixed_precision="auto", data=dict(frames=17, crop=32, motion_weight=1.0),
                       optim=dict(lr=1e-3, warmup_steps=50), checkpoint_every=250, log_every=10, validate_every=500),
    "toy-vae-v2-2": dict(task="vae", backbone="toy-small", init="runs/toy-vae/final/vae", output_dir="runs/toy-vae-2",
                         steps=1500, batch_size=4, mixed_precision="auto",
                         data=dict(frames=17, crop=32, motion_weight=4.0), optim=dict(lr=2e-4, warmup_steps=20),
                         checkpoint_every=250, log_every=10, validate_every=500),
    # Both DiTs from scratch on the v2 VAE's latents, sharing one cache; a quarter of the steps on images (a clip's
    # first latent frame): the world v2 pilot's best lever (`cinetune bench world-pilot`; docs/toy-models-and-history.md).
    "toy-small-v2": dict(task="dit", backbone="toy-small", output_dir="runs/toy-small", steps=4000, batch_size=16,
                         mixed_precision="auto", ema_decay=0.995,
                         data=dict(latent_cache=6000, cache_path="runs/latents-17x64x64.safetensors", image_share=0.25),
                         optim=dict(lr=5e-4, warmup_steps=100), checkpoint_every=250, validate_every=1000),
    # The world v2 DiT pilot's common recipe (`cinetune bench world-pilot`): toy-small from scratch on world v2 at a
    # fixed budget; the bench varies one lever at a time.
    "toy-small-v2-pilot": dict(task="dit", backbone="toy-small", output_dir="runs/world-pilot/video-uniform",
                               steps=1500, batch_size=16, ema_decay=0.995, mixed_precision="auto",
                               data=dict(latent_cache=1500, cache_path="runs/latents-v2-pilot-17x64x64.safetensors"),
                               optim=dict(lr=5e-4, warmup_steps=100), checkpoint_every=500, num_validation=1,
                               validation_steps=10),
    # Seconds-long runs for tests and smoke checks.
    "tiny": dict(task="dit", backbone="toy-small", output_dir="runs/tiny", steps=4, batch_size=2,
                 data=dict(frames=5, height=32, width=32, size=8), optim=dict(lr=1e-3, warmup_steps=0),
                 checkpoint_every=2, validation_steps=2, num_validation=1),
}

# toy-large on toy-small-v2's recipe: the large model at half the batch, more steps and a lower peak LR.
PRESETS["toy-large-v2"] = {**PRESETS["toy-small-v2"], "backbone": "toy-large", "output_dir": "runs/toy-large",
                           "steps": 6000, "batch_size": 8, "ema_decay": 0.998, "optim": dict(lr=3e-4, warmup_steps=100)}
# Stage four's recipe for another 1500 steps from its weights.
PRESETS["toy-large-5"] = {**PRESETS["toy-large-4"], "init": "runs/toy-large-4/final/transformer",
                          "output_dir": "runs/toy-large-5"}
# Stage five without the foreground weight, which moves the loss's minimiser (objects came out too big).
PRESETS["toy-large-6"] = {**PRESETS["toy-large-5"], "init": "runs/toy-large-5/final/transformer",
                          "output_dir": "runs/toy-large-6",
                          "data": {**PRESETS["toy-large-5"]["data"], "foreground_weight": 0.0}}
# The DiTs relearn the per-(channel, latent frame) latent normalisation (backbones.codec.FRAME_STATS).
PRESETS["toy-large-7"] = {**PRESETS["toy-large-6"], "init": "runs/toy-large-6/final/transformer",
                          "output_dir": "runs/toy-large-7", "steps": 1200}
PRESETS["toy-small-3"] = {**PRESETS["toy-small-2"], "init": "runs/toy-small-2/final/transformer",
                          "output_dir": "runs/toy-small-3", "steps": 1000,
                          "data": {**PRESETS["toy-small-2"]["data"], "foreground_weight": 0.0}}


def _add_method_presets() -> None:
    from ..methods.registry import presets

    PRESETS.update(presets())


_add_method_presets()


def init_dir(init: str, component: str | None = None) -> str:
    """`init` (a save_pretrained directory, or the name of a shipped model whose `component` folder is meant, e.g.
    "toy-large" -> the packaged toy-large transformer) -> the directory to load; "" stays "" (fresh weights)."""
    from ..backbones.presets import assets_root, find_saved

    if not init:
        return ""
    found = find_saved(init, component, "config.json")
    if found is not None:
        return str(found)
    shipped = sorted(p.name for p in assets_root().iterdir() if component and (p / component / "config.json").is_file())
    raise CinetuneError(f"init {init!r}: not a saved model directory (no config.json)"
                        + (f" nor a shipped model ({', '.join(shipped)})" if shipped else ""))


def preset_config(name: str, overrides: dict | None = None) -> TrainConfig:
    if name not in PRESETS:
        raise CinetuneError(f"unknown training preset {name!r}; known: {', '.join(PRESETS)}")
    cfg = merge(TrainConfig(), {**PRESETS[name], "preset": name})
    if overrides:
        cfg = merge(cfg, overrides)
    return cfg.validate()
