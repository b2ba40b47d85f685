"""`cinetune bench shipped-adapters`: adherence of the shipped control adapters on the shipped toy-large, on the control
bench's held-out clips (bench.harness.eval_set; canny + depth + pose given), against the uncontrolled model and
against the ceiling (the rendered clips through the toy VAE: what the readers recover from a perfect generator).
Minutes, not hours: it trains nothing, so it is the check to run after the shipped weights change."""

from __future__ import annotations

import time
from pathlib import Path

from ..io import write_text


def run(out: Path, quick: bool = False) -> Path:
    from ..methods.registry import load_adapter
    from ..pipelines import TextToVideoPipeline
    from .harness import adherence, eval_set, generate, through_vae

    t0 = time.perf_counter()
    n, steps = (2, 4) if quick else (8, 20)
    clips, conds = eval_set(n)
    pipe = TextToVideoPipeline.from_pretrained("toy-large", device="cpu")
    refs = [c.video for c, _ in clips]
    ceiling = adherence(through_vae(pipe.backbone.codec, refs), clips)
    rows = [("rendered clips (the readers' own accuracy)", adherence(refs, clips)),
            ("rendered clips through the toy VAE (the ceiling)", ceiling),
            ("toy-large alone", adherence([pipe(t, steps=steps, guidance=5.0, seed=i, progress=False).videos[0]
                                            for i, (_, t) in enumerate(clips)], clips))]
    for name in ("toy-large-controlnext", "toy-large-scale-adapter"):
        model = load_adapter(name)
        rows.append((f"`{name}`", adherence(generate(pipe, model, clips, conds, steps), clips)))
    lines = ["# Shipped control adapters on the shipped toy-large", "",
             f"`cinetune bench shipped-adapters{' --quick' if quick else ''}`: {n} held-out clips (toy-world seed 7, "
             f"the control bench's), canny + depth + pose given, {steps} sampling steps, guidance 5. Adherence "
             "re-extracts each condition from the generated video (canny: OpenCV; depth, pose: the toy annotator).", "",
             "| model | canny F1 ↑ | depth err ↓ | pose PCK ↑ |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {a['canny_f1']:.3f} | {a['depth_error']:.4f} | {a['pose_pck']:.3f} |" for name, a in rows]
    lines += ["", f"Wall time {time.perf_counter() - t0:.0f} s.", ""]
    path = Path(out) / ("shipped-adapters.md" if not quick else "shipped-adapters-quick.md")
    write_text(path, "\n".join(lines))
    return path
