"""Ingredients as one saved model (core.protocol.AdapterModel): its module, face encoder, routing settings and the
DiT LoRA of its two training stages. Attached, it hooks one identity injector into each chosen block's text
cross-attention (core.add_attention_hooks) and adds the global canvas through its input slot; `prepare` takes the
reference faces of each video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...core import (Handle, add_attention_hooks, add_lora, load_lora_state, load_pretrained, load_tensors,
                     lora_state, read_manifest, save_tensors, state_of, write_adapter_dir)
from ...errors import CinetuneError
from .extractor import ToyFaceEncoder, global_latents
from .real_faces import make_encoder
from .module import IngredientsModule
from .router import ROUTINGS

MANIFEST = "cinetune_ingredients.json"
OWNER = "ingredients"
LORA = "cinetune-ingredients"
MAX_IDENTITIES = 8  # the router takes any number; this bounds memory (K copies of each injected attention)


def injection_blocks(num_blocks: int, interval: int) -> list[int]:
    """Every `interval`-th block, starting at the first (the public code injects after every block)."""
    if interval < 1:
        raise CinetuneError(f"ingredients block interval must be >= 1, got {interval}")
    return list(range(0, num_blocks, interval))


class IngredientsModel:
    method = "ingredients"

    def __init__(self, module: IngredientsModule, routing: str = "hard", face_scale: float = 1.0,
                 canvas: str = "before", lora_rank: int = 0, lora: dict | None = None, info: dict | None = None,
                 encoder=None, encoder_spec: dict | None = None):
        if routing not in ROUTINGS:
            raise CinetuneError(f"routing must be one of {', '.join(ROUTINGS)}, got {routing!r}")
        self.module, self.routing, self.face_scale, self.canvas = module, routing, float(face_scale), canvas
        self.lora_rank, self.lora, self.info = int(lora_rank), dict(lora or {}), dict(info or {})
        self.kinds: list[str] = []  # no condition videos: references come as `identities`
        self._encoder = encoder
        self.encoder_spec = encoder.spec() if encoder is not None else dict(encoder_spec or {"kind": "toy"})

    @classmethod
    def new(cls, backbone, interval: int = 1, encoder=None, **kw) -> "IngredientsModel":
        enc = encoder or ToyFaceEncoder()
        view = backbone.view
        mod_kw = {k: kw.pop(k) for k in list(kw) if k in ("projector_dim", "num_queries", "id_tokens", "depth", "heads",
                                                          "router_dim")}
        module = IngredientsModule(view.hidden_size, tuple(injection_blocks(view.num_blocks, interval)), enc.id_dim,
                                   tuple(enc.scale_dims), backbone.codec.channels, tuple(view.patch_size), **mod_kw)
        return cls(module, encoder=enc, **kw)

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = make_encoder(self.encoder_spec)
        return self._encoder

    # -- use ------------------------------------------------------------------------------------------------------
    def attach(self, backbone, trainable: bool = False) -> "IngredientsAttachment":
        return IngredientsAttachment(self, backbone, trainable)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"ingredients": self.module}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters()) + sum(t.numel() for t in self.lora.values())

    def references(self, backbone, faces: torch.Tensor, height: int, width: int) -> dict:
        """Aligned reference faces (B, K, 3, crop, crop) in [-1, 1] -> the conditions `prepare` takes: the faces and
        the global canvas latents (B, C, 1, h, w)."""
        if faces.ndim != 5 or not 1 <= faces.shape[1] <= MAX_IDENTITIES:
            raise CinetuneError(f"reference faces must be (B, K, 3, crop, crop) with 1 <= K <= {MAX_IDENTITIES}, got "
                                f"{tuple(faces.shape)}")
        canvas = torch.stack([global_latents(backbone.codec, f, height, width, self.canvas) for f in faces])
        return {"identities": faces, "canvas": canvas}

    def faces(self, images: list[np.ndarray]) -> torch.Tensor:
        """Reference photos or video frames, one per identity -> aligned faces (K, 3, crop, crop) for `references`."""
        if not 1 <= len(images) <= MAX_IDENTITIES:
            raise CinetuneError(f"give 1 to {MAX_IDENTITIES} reference images, got {len(images)}")
        align = getattr(self.encoder, "align", None)  # a real-photo encoder aligns its own way (dlib's chips)
        return align(images) if align is not None else faces_from_images(images, self.encoder.crop)

    # -- files ----------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        def write(tmp: Path) -> None:
            self.module.save_pretrained(tmp / "module", safe_serialization=True)
            if self.lora:
                save_tensors(tmp / "lora.safetensors", self.lora, {"rank": self.lora_rank})
        meta = {"method": self.method, "kinds": [], "routing": self.routing, "face_scale": self.face_scale,
                "canvas": self.canvas, "lora_rank": self.lora_rank, "encoder": self.encoder_spec, "info": self.info}
        return write_adapter_dir(path, MANIFEST, meta, write)

    @classmethod
    def load(cls, path: str | Path) -> "IngredientsModel":
        path, meta = read_manifest(path, MANIFEST, "Ingredients model")
        if meta.get("method") != cls.method:
            raise CinetuneError(f"{path / MANIFEST}: not an Ingredients model (method {meta.get('method')!r})")
        module = load_pretrained(IngredientsModule, path / "module")
        lora = load_tensors(path / "lora.safetensors")[0] if (path / "lora.safetensors").is_file() else {}
        spec = meta.get("encoder", "toy")
        return cls(module, meta.get("routing", "hard"), meta.get("face_scale", 1.0), meta.get("canvas", "before"),
                   int(meta.get("lora_rank", 0)), lora, meta.get("info", {}),
                   encoder_spec={"kind": spec} if isinstance(spec, str) else spec)


class IngredientsAttachment(Handle):
    """prepare({"identities": faces, "canvas": latents}, keep={"local": (B,), "global": (B,)}) once per video (or
    batch); before_step(...) matches the call's batch (classifier-free guidance doubles it) and sets the scale.
    After a forward, `logits` holds each injected block's router logits (B, N, K) for the routing loss."""

    def __init__(self, model: IngredientsModel, backbone, trainable: bool = False):
        super().__init__(name=OWNER)
        self.model, self.backbone = model, backbone
        tr = backbone.transformer
        self.state, self.base, self.logits = state_of(tr), None, {}
        self.module = model.module.to(backbone.device)
        # Wan: the identity cross-attention joins each block's text cross-attention and the canvas the patch
        # embedding's output; CogVideoX (the paper's base) has one joint attention per block and a patch embedding
        # that returns text tokens then video tokens
        cog = backbone.view.family == "cogvideox"
        self.add(add_attention_hooks(tr, backbone.view.blocks, OWNER, self.module.blocks, self._compute,
                                     attention="attn1" if cog else "attn2").remove)
        hook = tr.patch_embed.register_forward_hook(self._slot_cogvideox) if cog else \
            tr.patch_embedding.register_forward_hook(self._slot)
        self.add(hook.remove)
        if model.lora_rank:
            self.add(add_lora(tr, rank=model.lora_rank, name=LORA).remove)
            if model.lora:
                load_lora_state(tr, model.lora, LORA)
        if trainable:
            flags = {n: p.requires_grad for n, p in tr.named_parameters()}
            for n, p in tr.named_parameters():
                p.requires_grad_("lora_" in n)
            self.module.requires_grad_(True)
            self.add(lambda: [p.requires_grad_(flags.get(n, False)) for n, p in tr.named_parameters()])
        self.prepared: dict = {}

    # -- per video ------------------------------------------------------------------------------------------------
    def prepare(self, conditions: dict | None, keep: dict | None = None, labels: torch.Tensor | None = None) -> None:
        """conditions["identities"]: (B, K, 3, crop, crop) faces; ["canvas"]: (B, C, 1, h, w); ["present"]: (B, K)
        bool, the slots a sample fills when a batch pads fewer identities to K. keep: per-sample dropout of the local
        ("local") and global ("global") inputs; labels (B, N): token identities (-1 = none) for mask routing and
        the routing loss."""
        faces = (conditions or {}).get("identities")
        if faces is None:
            self.prepared = {}
            self.state.clear(OWNER)
            return
        dev = self.module.slot.device
        B, K = faces.shape[:2]
        enc = self.model.encoder.to(dev)
        ident, scales = enc(faces.flatten(0, 1).to(dev))
        tokens = self.module.tokens(ident, scales)
        tokens = tokens.view(B, K, *tokens.shape[1:])
        self.prepared = {"tokens": tokens, "canvas": conditions.get("canvas"), "labels": labels,
                         "present": conditions.get("present"),
                         "local": None if keep is None else keep.get("local"),
                         "global": None if keep is None else keep.get("global")}

    def before_step(self, latents: torch.Tensor, timestep, encoder_hidden_states, scale: float = 1.0) -> None:
        if not self.prepared:
            return
        B = latents.shape[0]
        rep = lambda t: None if t is None else (t.repeat(B // t.shape[0], *([1] * (t.ndim - 1))) if t.shape[0] != B
                                                 else t)  # noqa: E731
        p = self.prepared
        self.logits = {}
        self.state.extras[OWNER] = {**{k: rep(v) for k, v in p.items()}, "logits": self.logits}
        self.state.scales[OWNER] = scale

    # -- hooks (read only what before_step put in the state) -----------------------------------------------------
    def _compute(self, i: int, h: torch.Tensor, extras: dict) -> torch.Tensor:
        routing = self.model.routing
        if routing == "mask" and extras.get("labels") is None:
            raise CinetuneError("mask routing (stage-1 training) needs token labels")
        term, logits = self.module.injectors[str(i)](h, extras["tokens"].to(h.dtype), routing, extras.get("labels"),
                                                     extras.get("present"))
        extras["logits"][i] = logits
        if extras.get("local") is not None:
            term = term * extras["local"].to(term.dtype).view(-1, 1, 1)
        return self.model.face_scale * term

    def _slot_term(self, x: torch.Tensor) -> torch.Tensor | None:
        """The canvas slot's embedding for latents x (B, C, F', h, w) (on frame 0; zeros after), scaled; None when off."""
        extras = self.state.extras.get(OWNER)
        if not extras or extras.get("canvas") is None or self.state.scale(OWNER, -1) == 0.0:
            return None
        canvas = extras["canvas"]
        slot = torch.cat([canvas.to(x.dtype), x.new_zeros(x.shape[0], canvas.shape[1], x.shape[2] - 1, *x.shape[3:])], 2)
        if extras.get("global") is not None:
            slot = slot * extras["global"].to(x.dtype).view(-1, 1, 1, 1, 1)
        return self.state.scale(OWNER, -1) * self.module.slot_embedding(slot)

    def _slot(self, module, args, output):
        term = self._slot_term(args[0])
        return output if term is None else output + term.to(output.dtype)

    def _slot_cogvideox(self, module, args, output):
        """patch_embed(text, image (B, F', C, h, w)) -> (B, L + N, D): the slot's tokens join the video tokens (frame
        by frame, row-major, the order CogVideoX flattens them in)."""
        term = self._slot_term(args[1].transpose(1, 2))
        if term is None:
            return output
        tokens = term.flatten(2).transpose(1, 2).to(output.dtype)  # (B, N, D)
        return torch.cat([output[:, :-tokens.shape[1]], output[:, -tokens.shape[1]:] + tokens], 1)

    # -- training -------------------------------------------------------------------------------------------------
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        tr = self.backbone.transformer
        return [p for n, p in tr.named_parameters() if p.requires_grad and "lora_" in n] + \
            [p for p in self.module.parameters() if p.requires_grad]

    def collect(self) -> IngredientsModel:
        if self.model.lora_rank:
            self.model.lora = lora_state(self.backbone.transformer, LORA)
        return self.model


def faces_from_images(images: list[np.ndarray], crop: int) -> torch.Tensor:
    """Reference photos or video frames (H, W, 3) uint8, one per identity -> aligned toy face crops (K, 3, crop,
    crop) in [-1, 1]: each image's largest face as the toy annotator finds it."""
    from ...metrics.identity import ToyFaces
    from ...toynets import crop_faces

    faces = ToyFaces()
    out = []
    for i, img in enumerate(images):
        img = np.asarray(img)
        if img.ndim != 3 or img.shape[-1] != 3:
            raise CinetuneError(f"reference {i}: expected an (H, W, 3) image, got {img.shape}")
        # a flat image is not a photo; the annotator, never trained on one, would still label parts of it a face
        boxes = faces.detect(img[None])[0] if float(img.std()) >= 2.0 else np.zeros((0, 4), np.float32)
        if not len(boxes):
            raise CinetuneError(f"reference {i}: no face found")
        b = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
        frame = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)
        out.append(crop_faces(frame, torch.from_numpy(b)[None], crop)[0])
    return torch.stack(out)
