"""`cinetune` command line. Bad input -> one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import CinetuneError

DEMO_CONTROL_SEED = 11  # held-out toy-world clips (training uses dataset seed 0)
DEMO_PROMPTS = [
    "A red circle moves to the right on a plain navy backdrop.",
    "A large yellow star spins on a black background.",
    "On a beige background, a blue square bounces.",
    "A person with short blond hair and a hat in an orange shirt waves on a grey background.",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's default prints the usage too)
        raise CinetuneError(f"{self.prog}: {message}")


def _add_size(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=None, help="frames (4k+1); default: the model's")
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--width", type=int, default=None)


def _positive(name: str, v: int | None) -> None:
    if v is not None and v <= 0:
        raise CinetuneError(f"--{name} must be positive, got {v}")


# ---------------------------------------------------------------------------------------------------------------
def cmd_generate(a: argparse.Namespace) -> None:
    from .io import video_grid, write_video
    from .pipelines import TextToVideoPipeline

    for name in ("frames", "height", "width", "steps"):
        _positive(name, getattr(a, name))
    out = Path(a.out)
    controls = _controls(a)
    pipe = TextToVideoPipeline.from_pretrained(a.model, device=a.device)
    pipe.check_size(a.frames or pipe.backbone.preset.frames, a.height or pipe.backbone.preset.height,
                    a.width or pipe.backbone.preset.width)
    kw = dict(negative_prompt=a.negative_prompt, frames=a.frames, height=a.height, width=a.width, steps=a.steps,
              guidance=a.guidance, seed=a.seed)
    if a.adapter and a.scale_adapter:
        raise CinetuneError("give --adapter or --scale-adapter, not both")
    if a.adapter or a.scale_adapter:
        from .adapters.control.model import ControlModel
        from .adapters.scale.model import ScaleAdapterModel
        from .pipelines import ControlledPipeline

        model = ControlModel.load(a.adapter) if a.adapter else ScaleAdapterModel.load(a.scale_adapter)
        if not controls:
            raise CinetuneError(f"--{'adapter' if a.adapter else 'scale-adapter'} needs conditions: --control "
                                f"KIND=VIDEO or --control-from VIDEO (trained on {', '.join(model.kinds)})")
        if a.slot:
            if not a.scale_adapter:
                raise CinetuneError("--slot belongs to --scale-adapter")
            model.slots = dict(_pair(s, "--slot") for s in a.slot)
        res = ControlledPipeline(pipe, model)(a.prompt, controls=controls, control_scale=a.control_scale,
                                              control_start=a.control_start, control_end=a.control_end, **kw)
    else:
        if controls:
            raise CinetuneError("--control needs --adapter PATH or --scale-adapter PATH")
        res = pipe(a.prompt, **kw)
    fps = pipe.backbone.preset.fps
    if out.suffix.lower() in (".mp4", ".gif", ".png"):
        paths = [write_video(out, video_grid(list(res.videos)) if len(res.videos) > 1 else res.videos[0], fps)]
    else:
        paths = [write_video(out / f"{i:02d}.mp4", v, fps) for i, v in enumerate(res.videos)]
    for p in paths:
        print(p)


def _pair(spec: str, flag: str) -> tuple[str, str]:
    k, sep, v = spec.partition("=")
    if not sep or not k or not v:
        raise CinetuneError(f"{flag} expects A=B, got {spec!r}")
    return k, v


def _controls(a: argparse.Namespace) -> dict:
    """--control KIND=VIDEO (repeatable) and --control-from VIDEO --kinds K1,K2 (extracted here) -> {kind: video}."""
    from .conditions import KINDS, get_extractor
    from .io import read_video

    out = {}
    for spec in a.control or []:
        kind, sep, path = spec.partition("=")
        if not sep or not path:
            raise CinetuneError(f"--control expects KIND=VIDEO, got {spec!r}")
        if kind not in KINDS:
            raise CinetuneError(f"unknown condition {kind!r}; known: {', '.join(KINDS)}")
        out[kind] = read_video(path)[0]
    if a.control_from:
        if not a.kinds:
            raise CinetuneError("--control-from needs --kinds, e.g. --kinds canny,depth")
        ref = read_video(a.control_from)[0]
        for kind in a.kinds.split(","):
            out[kind] = get_extractor(kind)(ref, progress=True)
    return out


def cmd_demo(a: argparse.Namespace) -> None:
    from .io import video_grid, write_json, write_video
    from .pipelines import TextToVideoPipeline

    t0 = time.perf_counter()
    out = Path(a.out)
    pipe = TextToVideoPipeline.from_pretrained(a.model, device=a.device)
    res = pipe(DEMO_PROMPTS, steps=a.steps, guidance=a.guidance, seed=a.seed)
    fps = pipe.backbone.preset.fps
    paths = [write_video(out / f"t2v-{i:02d}.mp4", v, fps) for i, v in enumerate(res.videos)]
    grid = write_video(out / "t2v-grid.gif", video_grid(list(res.videos), cols=len(res.videos)), fps)
    write_json(out / "prompts.json", {p.name: prompt for p, prompt in zip(paths, DEMO_PROMPTS)})
    for p, prompt in zip(paths, DEMO_PROMPTS):
        print(f"{p}  <- {prompt}")
    print(grid)
    if a.model == "toy-large":
        print(_demo_control(pipe, out, a, fps))
    print(f"demo finished in {time.perf_counter() - t0:.1f} s")


def _demo_control(pipe, out: Path, a: argparse.Namespace, fps: int) -> Path:
    """Controlled generation on held-out toy clips with the shipped adapters: reference | canny | depth | pose |
    uncontrolled | ControlNeXt [| Scale-Adapter], side by side (same prompt, same seed)."""
    import numpy as np

    from .adapters.control.model import SHIPPED_CONTROL, ControlModel
    from .backbones.presets import ASSETS
    from .adapters.scale.model import SHIPPED_SCALE, ScaleAdapterModel
    from .io import video_grid, write_video
    from .pipelines import ControlledPipeline
    from .toyworld import clip_seed, render_clip
    from .training.control_task import training_condition

    adapters = {"controlnext": ControlModel.load(SHIPPED_CONTROL)}
    if (ASSETS / SHIPPED_SCALE).is_dir():
        adapters["scale-adapter"] = ScaleAdapterModel.load(SHIPPED_SCALE)
    kinds = adapters["controlnext"].kinds
    clips = [c for c in (render_clip(clip_seed(DEMO_CONTROL_SEED, i)) for i in range(64)) if c[0].keypoints.shape[1]][:2]
    rows = []
    for i, (clip, prompt) in enumerate(clips):
        conds = {k: training_condition(clip, k) for k in kinds}
        cols = [clip.video, *(conds[k] for k in kinds),
                pipe(prompt, steps=a.steps, guidance=a.guidance, seed=a.seed, progress=False).videos[0]]
        for name, model in adapters.items():
            video = ControlledPipeline(pipe, model)(prompt, controls=conds, steps=a.steps, guidance=a.guidance,
                                                    seed=a.seed, progress=False).videos[0]
            cols.append(video)
            print(write_video(out / f"{name}-{i:02d}.mp4", video, fps), f" <- {prompt} + {', '.join(kinds)} of a "
                  "held-out clip")
        rows.append(np.concatenate(cols, 2))
    print("control-grid.gif columns: reference | " + " | ".join(kinds) + " | uncontrolled | " + " | ".join(adapters))
    return write_video(out / "control-grid.gif", video_grid(rows, cols=1), fps)


def cmd_render_toy(a: argparse.Namespace) -> None:
    from .toyworld.export import export_clips

    for name in ("n", "frames", "height", "width"):
        _positive(name, getattr(a, name))
    export_clips(Path(a.out), n=a.n, seed=a.seed, frames=a.frames or 17, height=a.height or 64,
                 width=a.width or 64, max_actors=a.max_actors)


def cmd_train(a: argparse.Namespace) -> None:
    from .config import load_yaml, merge, parse_overrides
    from .training import preset_config, train

    kinds = {"base": ("dit", "vae"), "features": ("video-encoder", "identity-encoder", "annotator"),
             "control": ("control",), "scale-adapter": ("scale-adapter",)}
    if a.kind not in kinds:
        raise CinetuneError(f"unknown training kind {a.kind!r}; available: {', '.join(kinds)}")
    preset = a.preset or {"control": "toy-control", "scale-adapter": "toy-scale-adapter"}.get(a.kind)
    if not preset:
        raise CinetuneError(f"train {a.kind}: --preset is required")
    cfg = preset_config(preset)
    if cfg.task not in kinds[a.kind]:
        raise CinetuneError(f"preset {preset!r} trains a {cfg.task}, not a `{a.kind}` model")
    if a.config:
        cfg = merge(cfg, load_yaml(a.config))
    flags = {}
    if a.kind == "control":
        if a.control_method:
            flags.setdefault("control", {})["method"] = a.control_method
        if a.conditions:
            flags.setdefault("control", {})["conditions"] = a.conditions
        if a.control_method and not any(o.startswith("output_dir=") for o in a.overrides or []):
            flags["output_dir"] = f"runs/control-{a.control_method}"
    elif a.kind == "scale-adapter":
        if a.control_method:
            raise CinetuneError("--method belongs to `cinetune train control`")
        if a.conditions:
            flags.setdefault("scale", {})["conditions"] = a.conditions
        if a.small:
            flags.setdefault("scale", {})["small"] = a.small
        a.backbone = a.large or a.backbone
    elif a.control_method or a.conditions:
        raise CinetuneError("--method and --conditions belong to `cinetune train control`")
    if (a.large or a.small) and a.kind != "scale-adapter":
        raise CinetuneError("--large and --small belong to `cinetune train scale-adapter`")
    if a.backbone:
        flags["backbone"] = a.backbone
        if a.backbone != cfg.backbone and cfg.init == cfg.backbone:
            flags["init"] = ""  # the preset's shipped weights belong to its own backbone
    if flags:
        cfg = merge(cfg, flags)
    if a.overrides:
        cfg = merge(cfg, parse_overrides(a.overrides))
    cfg.validate()
    out = train(cfg, resume=a.resume, stop_after=a.stop_after)
    print(out)


def cmd_analyze(a: argparse.Namespace) -> None:
    from .adapters.scale.similarity import analyse, report
    from .backbones import load_backbone

    if a.what != "block-similarity":
        raise CinetuneError(f"unknown analysis {a.what!r}; available: block-similarity")
    _positive("clips", a.clips)
    large, small = load_backbone(a.large), load_backbone(a.small)
    print(report(analyse(large, small, clips=a.clips), Path(a.out), a.large, a.small))


def cmd_latent_stats(a: argparse.Namespace) -> None:
    import numpy as np
    from diffusers import AutoencoderKLWan

    from .backbones.codec import FRAME_STATS, measure_frame_stats
    from .io import write_json
    from .training.tasks import toy_clips

    _positive("clips", a.clips)
    _positive("frames", a.frames)
    vdir = Path(a.vae)
    if not (vdir / "config.json").is_file():
        raise CinetuneError(f"--vae {vdir}: not a diffusers VAE directory (no config.json)")
    stats = measure_frame_stats(AutoencoderKLWan.from_pretrained(vdir, use_safetensors=True).eval(),
                                toy_clips(a.clips, a.frames, a.seed))
    write_json(vdir / FRAME_STATS, stats)
    std = np.asarray(stats["latents_std"]).mean(0)
    print(f"{vdir / FRAME_STATS}: mean std per latent frame " + " ".join(f"{v:.2f}" for v in std))


def cmd_export_asset(a: argparse.Namespace) -> None:
    from .assets.cards import export_asset

    print(export_asset(a.run, a.name))


BENCHES = ("foundation", "metrics", "latency", "control", "scale-adapter", "prompt-following", "shipped-adapters")


def cmd_bench(a: argparse.Namespace) -> None:
    import importlib

    names = {n: n.replace("-", "_") for n in BENCHES}
    if a.name not in names:
        raise CinetuneError(f"unknown benchmark {a.name!r}; available: {', '.join(names)}")
    run = importlib.import_module(f".bench.{names[a.name]}", __package__).run
    print(run(Path(a.out), quick=a.quick))


def cmd_extract(a: argparse.Namespace) -> None:
    from .conditions import annotations_for, exact_condition, get_extractor
    from .io import read_video, write_video

    video, fps = read_video(a.video)
    if a.backend == "exact":
        cond = exact_condition(annotations_for(a.video), a.kind)
    else:
        cond = get_extractor(a.kind, backend=a.backend, edges=a.edges)(video, progress=True)
    print(write_video(a.out, cond, int(round(fps))))


def _read_set(folder: str) -> tuple[list, list[str]]:
    from .io import read_video
    from .metrics.evaluate import list_videos

    files = list_videos(folder)
    return [read_video(f)[0] for f in files], [f.stem for f in files]


def cmd_eval(a: argparse.Namespace) -> None:
    import numpy as np

    from .io import write_json, write_text
    from .metrics.evaluate import EvalConfig, evaluate, folder_metadata, markdown_table

    gen, names = _read_set(a.generated)
    ref = None
    meta = {}
    if a.reference:
        ref, ref_names = _read_set(a.reference)
        meta = folder_metadata(a.reference)
    prompts = None
    if a.prompts:
        path = Path(a.prompts)
        if not path.is_file():
            raise CinetuneError(f"prompts file not found: {path}")
        prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    elif meta and ref is not None and all(n in meta for n in ref_names) and len(ref_names) == len(gen):
        prompts = [meta[n]["caption"] for n in ref_names]  # render-toy references carry their captions
    identities = None
    if meta and ref is not None and all(n in meta for n in ref_names) and len(ref_names) == len(gen):
        identities = [[i["index"] for i in meta[n].get("identities", [])] for n in ref_names]
    metrics = tuple(m for m in a.metrics.split(",") if m) if a.metrics else EvalConfig.metrics
    face_images = None
    if a.face_references:
        import imageio.v3 as iio

        folder = Path(a.face_references)
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")) if folder.is_dir() else []
        if not files:
            raise CinetuneError(f"--face-references: no .png/.jpg images in {folder}")
        try:
            face_images = [np.asarray(iio.imread(p))[..., :3].astype(np.uint8) for p in files]
        except Exception as e:
            raise CinetuneError(f"--face-references: cannot read an image in {folder}: {e}") from None
    cfg = EvalConfig(metrics=metrics, conditions=tuple(c for c in a.conditions.split(",") if c), features=a.features,
                     backend=a.backend, faces="dlib" if face_images is not None else "toy")
    report = evaluate(gen, ref, prompts, identities, cfg, names, face_images)
    out = Path(a.out)
    write_json(out, report)
    md = out.with_suffix(".md")
    write_text(md, f"# cinetune eval\n\ngenerated: `{a.generated}` ({len(gen)} videos)"
                   + (f"; reference: `{a.reference}` ({len(ref)})" if ref is not None else "")
                   + f"; features: {a.features}\n\n" + markdown_table(report))
    print(markdown_table(report), end="")
    print(out)
    print(md)


def cmd_presets(a: argparse.Namespace) -> None:
    from .backbones import PRESETS
    from .training import PRESETS as TRAIN

    print("models:")
    for p in PRESETS.values():
        print(f"  {p.name:18s} {p.description}")
    print("training presets (cinetune train base|features|control --preset NAME):")
    for name, d in TRAIN.items():
        print(f"  {name:20s} task={d['task']} backbone={d.get('backbone', '-')} steps={d['steps']}")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="cinetune", description="Controllable, personalised and fast video DiTs.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("demo", help="generate a few videos with the shipped toy-large model")
    d.add_argument("--out", default="demo_out")
    d.add_argument("--model", default="toy-large")
    d.add_argument("--steps", type=int, default=25)
    d.add_argument("--guidance", type=float, default=5.0)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default=None)
    d.set_defaults(fn=cmd_demo)

    g = sub.add_parser("generate", help="text-to-video")
    g.add_argument("--prompt", action="append", required=True, help="repeat for a batch")
    g.add_argument("--negative-prompt", default="")
    g.add_argument("--model", default="toy-large", help="preset name or diffusers-format directory")
    _add_size(g)
    g.add_argument("--steps", type=int, default=30)
    g.add_argument("--guidance", type=float, default=5.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default=None)
    g.add_argument("--out", default="outputs", help="a .mp4/.gif/.png file or a directory")
    g.add_argument("--adapter", default=None,
                   help="trained control adapter directory, or a shipped one by name (toy-large-controlnext)")
    g.add_argument("--scale-adapter", default=None,
                   help="trained Scale-Adapter directory or shipped name; any subset of conditions, unseen kinds too")
    g.add_argument("--slot", action="append", metavar="KIND=SLOT",
                   help="scale-adapter: feed an unseen condition through this trained slot of the small model")
    g.add_argument("--control", action="append", metavar="KIND=VIDEO", help="condition video (repeatable)")
    g.add_argument("--control-from", default=None, metavar="VIDEO", help="extract the conditions from this video")
    g.add_argument("--kinds", default="", help="with --control-from: kinds to extract, e.g. canny,depth")
    g.add_argument("--control-scale", type=float, default=1.0)
    g.add_argument("--control-start", type=float, default=0.0, help="fraction of the steps where control starts")
    g.add_argument("--control-end", type=float, default=1.0, help="fraction of the steps where control ends")
    g.set_defaults(fn=cmd_generate)

    r = sub.add_parser("render-toy", help="render toy-world clips with every annotation")
    r.add_argument("--n", type=int, required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--max-actors", type=int, default=2)
    _add_size(r)
    r.set_defaults(fn=cmd_render_toy)

    t = sub.add_parser("train", help="train with the shared trainer: cinetune train base --preset toy-small")
    t.add_argument("kind", help="base (DiTs, VAE) | features (toy video/identity encoders, annotator) | control | "
                                "scale-adapter")
    t.add_argument("--preset", default=None, help="training preset (train control: default toy-control)")
    t.add_argument("--method", dest="control_method", default=None, help="control: controlnext | dit-controlnet | concat")
    t.add_argument("--conditions", default=None, help="control: comma list, e.g. canny,depth,pose")
    t.add_argument("--backbone", default=None, help="backbone preset (e.g. toy-large)")
    t.add_argument("--large", default=None, help="scale-adapter: the frozen large backbone (default toy-large)")
    t.add_argument("--small", default=None,
                   help="scale-adapter: the small conditional model, a concat control adapter dir or shipped name")
    t.add_argument("--config", help="YAML file applied on top of the preset")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    t.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. steps=100 optim.lr=1e-4")
    t.set_defaults(fn=cmd_train)

    an = sub.add_parser("analyze", help="analyses: block-similarity (which small block matches which large block)")
    an.add_argument("what", help="block-similarity")
    an.add_argument("--large", default="toy-large")
    an.add_argument("--small", default="toy-small")
    an.add_argument("--clips", type=int, default=6)
    an.add_argument("--out", default="benchmarks/results")
    an.set_defaults(fn=cmd_analyze)

    ls = sub.add_parser("latent-stats", help="measure a toy VAE's per-(channel, latent frame) latent statistics "
                        "on toy clips and write them beside it (cinetune_latents.json)")
    ls.add_argument("--vae", required=True, help="VAE directory (e.g. src/cinetune/assets/toy-vae/vae)")
    ls.add_argument("--clips", type=int, default=64)
    ls.add_argument("--frames", type=int, default=33, help="clip length: the longest the DiTs generate")
    ls.add_argument("--seed", type=int, default=2, help="toy-world seed (the VAE recipes' held-out seed 0 + 2)")
    ls.set_defaults(fn=cmd_latent_stats)

    e = sub.add_parser("export-asset", help="ship a finished run as a package asset with its model card")
    e.add_argument("--run", required=True)
    e.add_argument("--name", required=True, help="asset name, e.g. toy-large")
    e.set_defaults(fn=cmd_export_asset)

    x = sub.add_parser("extract", help="condition video from a video: canny, hed, depth, pose, ...")
    x.add_argument("--kind", required=True)
    x.add_argument("--video", required=True)
    x.add_argument("--out", required=True, help="output video (.mp4/.gif)")
    x.add_argument("--backend", default="toy", help="toy | exact (render-toy clips) | model dir | module:function")
    x.add_argument("--edges", default="canny", help="edge map behind scribble/lineart/mlsd: canny | hed")
    x.set_defaults(fn=cmd_extract)

    v = sub.add_parser("eval", help="metrics of generated videos against references")
    v.add_argument("--generated", required=True, help="folder of videos")
    v.add_argument("--reference", default=None, help="folder of videos (paired by sorted file name)")
    v.add_argument("--prompts", default=None, help="text file, one prompt per generated video (sorted order)")
    v.add_argument("--metrics", default="", help="comma list; default: all that the inputs allow")
    v.add_argument("--conditions", default="canny,depth,pose,segmentation", help="kinds for condition adherence")
    v.add_argument("--features", default="toy", help="toy | toy:DIR | local CLIP directory")
    v.add_argument("--backend", default="toy", help="extractor backend for depth/pose/segmentation")
    v.add_argument("--face-references", default=None,
                   help="folder of reference face photos: real-face identity similarity with dlib (extra 'faces')")
    v.add_argument("--out", default="report.json")
    v.set_defaults(fn=cmd_eval)

    b = sub.add_parser("bench", help="measure and write benchmarks/results/<name>.md")
    b.add_argument("name", help=" | ".join(BENCHES))
    b.add_argument("--quick", action="store_true")
    b.add_argument("--out", default="benchmarks/results")
    b.set_defaults(fn=cmd_bench)

    p = sub.add_parser("presets", help="list model and training presets")
    p.set_defaults(fn=cmd_presets)
    return ap


def main(argv: list[str] | None = None) -> int:
    try:
        args, extra = build_parser().parse_known_args(argv)
        # Overrides may follow options (`--preset x steps=10`), which argparse does not match to a positional.
        if extra and getattr(args, "fn", None) is cmd_train and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides or []) + extra
        elif extra:
            raise CinetuneError(f"unrecognized arguments: {' '.join(extra)}")
        args.fn(args)
    except CinetuneError as e:
        print(f"cinetune: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cinetune: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
