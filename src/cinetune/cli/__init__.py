"""`cinetune` command line. Bad input -> one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import CinetuneError

# Media types a user may expect `--out` to write, which it does not: refused instead of made into a folder.
OTHER_MEDIA = (".avi", ".mov", ".mkv", ".webm", ".m4v", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


# Options naming files or folders (argparse dests): none may be given as an empty string.
PATH_OPTIONS = ("out", "model", "generated", "reference", "prompts", "face_references", "video", "vae", "run", "root",
                "config", "student", "interpolator", "identities", "identity", "adapter", "control_from", "large",
                "small", "lora")


def _refuse_empty(args: argparse.Namespace) -> None:
    """Path("") is the working directory: an empty path (or method flag) is a mistake, not a request for "."."""
    def empty(v) -> bool:
        return v == "" or (isinstance(v, list) and "" in v)

    for d in PATH_OPTIONS:
        if empty(getattr(args, d, None)):
            raise CinetuneError(f"--{d.replace('_', '-')} is empty")
    for f in getattr(args, "flags", ()):  # a method's own flags (train <method>)
        if empty(getattr(args, f"flag_{f.target}", None)):
            raise CinetuneError(f"{f.option} is empty")


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


def _finite(name: str, v: float | None) -> None:
    import math

    if v is not None and not math.isfinite(v):
        raise CinetuneError(f"--{name} must be a finite number, got {v}")


def _int_in(lo: int, hi: int | None = None):
    """argparse type: an integer in lo..hi (hi None: no upper bound)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi}, got {v}" if hi is not None else
                                             f"must be at least {lo}, got {v}")
        return v
    return parse


def _host(text: str) -> str:
    """argparse type for --host: an IP address or localhost (a name would need a DNS lookup: the network)."""
    import ipaddress

    if text == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r} (127.0.0.1, 0.0.0.0, ::1)") from None


_seed = _int_in(0, 2**63 - 1)  # what numpy and torch both take
_at_least_one = _int_in(1)


def _device(spec: str) -> str:
    """argparse type for --device: a torch device this machine has (checked before any model loads)."""
    import torch

    try:
        d = torch.device(spec)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a device: {spec!r} (cpu, cuda, cuda:N, mps)") from None
    have = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not have.get(d.type, False):
        raise argparse.ArgumentTypeError(f"{spec!r}: no such device here" if d.type in have else
                                         f"{spec!r}: unsupported device type (cpu, cuda, cuda:N, mps)")
    if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return spec


# ---------------------------------------------------------------------------------------------------------------
def cmd_generate(a: argparse.Namespace) -> None:
    import torch

    from ..io import check_writable
    from ..pipelines import TextToVideoPipeline

    for name in ("frames", "height", "width", "steps"):
        _positive(name, getattr(a, name))
    _finite("guidance", a.guidance)
    out = Path(a.out)
    if out.suffix.lower() in OTHER_MEDIA:
        raise CinetuneError(f"--out {out}: {out.suffix} is not written here; give a .mp4, .gif or .png file or a folder")
    check_writable(out if out.suffix.lower() in (".mp4", ".gif", ".png") else out / "00.mp4")
    if a.slot and not a.adapter:
        raise CinetuneError("--slot KIND=SLOT needs --adapter (a model with trained condition slots)")
    controls = _controls(a)
    window = {name: _per_condition(getattr(a, name), default, name, controls)
              for name, default in (("control_scale", 1.0), ("control_start", 0.0), ("control_end", 1.0))}
    models = _adapters(a)
    student = next((m for m in models if hasattr(m, "load_base")), None)  # a distilled student brings its teacher
    if student and a.model != student.base and not _names_student(a.model):
        raise CinetuneError(f"the student was distilled from {student.base}; --model {a.model} is another base (give "
                            f"--model {student.base}, or the student itself as --model)")
    memory = _memory(a)
    if student:
        device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
        pipe = TextToVideoPipeline(student.load_base(memory.torch_dtype), device, memory)
    else:
        pipe = TextToVideoPipeline.from_pretrained(a.model, a.device, memory=memory)
    pipe.check_size(a.frames or pipe.backbone.preset.frames, a.height or pipe.backbone.preset.height,
                    a.width or pipe.backbone.preset.width)
    guidance = a.guidance if a.guidance is not None else (1.0 if student else 5.0)  # students are guidance-distilled
    kw = dict(negative_prompt=a.negative_prompt, frames=a.frames, height=a.height, width=a.width, steps=a.steps,
              guidance=guidance, seed=a.seed, scheduler=a.scheduler)
    if a.interpolate and not student:
        raise CinetuneError("--interpolate needs a distilled student (--model STUDENT)")
    if models:
        from ..pipelines import AdaptedPipeline

        conditioned = [m for m in models if m.kinds]
        if conditioned and not controls:
            raise CinetuneError("--adapter needs conditions: --control KIND=VIDEO or --control-from VIDEO (trained on "
                                + "; ".join(f"{m.method}: {', '.join(m.kinds)}" for m in conditioned) + ")")
        if a.slot:
            slotted = [m for m in models if hasattr(m, "slots")]
            if not slotted:
                raise CinetuneError("--slot: none of these adapters feeds conditions through trained slots")
            for m in slotted:
                m.slots = dict(_pair(s, "--slot") for s in a.slot)
        res = AdaptedPipeline(pipe, models)(a.prompt, controls=controls, interpolate=a.interpolate,
                                            identities=_identity_images(a), **window, **kw)
    else:
        if controls:
            raise CinetuneError("--control needs --adapter PATH|NAME")
        res = pipe(a.prompt, **kw)
    _write_generated(res, out, pipe.backbone.preset.fps)


def _memory(a: argparse.Namespace):
    from ..backbones.memory import MemoryOptions

    return MemoryOptions(dtype=a.dtype, offload=a.offload, fp8=a.fp8, vae_tiling=a.vae_tiling,
                         vae_slicing=a.vae_slicing, release_text_encoder=a.release_text_encoder)


def cmd_ui(a: argparse.Namespace) -> None:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise CinetuneError("cinetune ui needs Gradio: pip install 'cinetune[ui]'") from None
    from ..ui import Studio
    from ..ui.app import launch

    studio = Studio(a.model, a.device, a.out, _memory(a))
    if a.dry_run:
        from ..ui.app import build_app

        build_app(studio)
        print(f"cinetune ui: would serve {a.model} on http://{a.host}:{a.port} (results in {studio.out})")
        return
    try:
        app, url = launch(studio, a.host, a.port)
    except OSError:  # the port is taken, or the address is not this machine's (Gradio names no file)
        raise CinetuneError(f"cannot serve on {a.host}:{a.port}: the port is in use or the address is not this "
                            "machine's (give another --port or --host)") from None
    try:
        if a.host not in ("127.0.0.1", "::1"):
            print(f"cinetune ui: serving on {a.host}: anyone who can reach it can use the model", file=sys.stderr)
        print(f"cinetune ui: {url} (model {a.model}; results in {studio.out}; Ctrl-C stops)", flush=True)
        app.block_thread()
    finally:  # whatever stops the wait (Ctrl-C, a signal), the port is given back
        app.close()


def _per_condition(specs: list[str] | None, default: float, name: str, controls: dict) -> float | dict[str, float]:
    """--control-scale 0.8 (every condition) and/or --control-scale depth=0.5 (one condition), repeatable -> a number,
    or {kind: value} for every given condition (the plain number, else `default`, for the kinds not named)."""
    import math

    flag, plain, per = f"--{name.replace('_', '-')}", default, {}
    for spec in specs or []:
        kind, sep, value = spec.rpartition("=") if "=" in spec else ("", "", spec)
        try:
            v = float(value)
        except ValueError:
            raise CinetuneError(f"{flag} expects a number or KIND=NUMBER, got {spec!r}") from None
        if not math.isfinite(v):
            raise CinetuneError(f"{flag} must be a finite number, got {spec!r}")
        if sep and not kind:
            raise CinetuneError(f"{flag} expects KIND=NUMBER, got {spec!r}")
        if sep:
            per[kind] = v
        else:
            plain = v
    if not per:
        return plain
    unknown = sorted(set(per) - set(controls))
    if unknown:
        raise CinetuneError(f"{flag} names {', '.join(unknown)}, which is not among the given conditions "
                            f"({', '.join(controls) or 'none'})")
    return {k: per.get(k, plain) for k in controls}


def _names_student(model: str) -> bool:
    from ..core import find_manifest
    from ..methods.registry import methods

    return find_manifest(model, [methods()["distill"].manifest]) is not None


def _adapters(a: argparse.Namespace) -> list:
    """--adapter models, and --model when it names a distilled student (which loads onto its teacher) first."""
    from ..core import find_manifest
    from ..methods.registry import load_adapter, methods

    if a.identity and not a.identities:
        raise CinetuneError("--identity needs --identities MODEL (a trained Ingredients model)")
    if a.identities and find_manifest(a.identities, [methods()["ingredients"].manifest]) is None:
        raise CinetuneError(f"--identities {a.identities}: not a trained Ingredients model (no "
                            f"{methods()['ingredients'].manifest} there)")
    models = [load_adapter(path) for path in [*(a.adapter or []), *([a.identities] if a.identities else [])]]
    if find_manifest(a.model, [m.manifest for m in methods().values()]) is not None:
        models.insert(0, load_adapter(a.model))
    if a.interpolator:
        from ..methods.distill.interpolator import load_interpolator

        students = [m for m in models if hasattr(m, "interpolator")]
        if not students:
            raise CinetuneError("--interpolator needs a distilled student (--model STUDENT)")
        students[0].interpolator = load_interpolator(a.interpolator)
    if a.lora:
        from ..core.lora_file import LoraFile

        models += [LoraFile.load(spec) for spec in a.lora]
    return models


def _identity_images(a: argparse.Namespace) -> list | None:
    """--identity IMAGE (repeatable): a photo or a video (its first frame), one per person."""
    from ..io import read_video

    return [read_video(p)[0][0] for p in a.identity] if a.identity else None


def _write_generated(res, out: Path, fps: int) -> None:
    from ..io import video_grid, write_video

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
    from ..conditions import KINDS, get_extractor
    from ..io import read_video

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
            out[kind] = get_extractor(kind, backend=a.backend)(ref, progress=True)
    return out


def cmd_render_toy(a: argparse.Namespace) -> None:
    from ..toyworld.export import export_clips

    for name in ("n", "frames", "height", "width"):
        _positive(name, getattr(a, name))
    if a.frames is not None and (a.frames - 1) % 4:
        raise CinetuneError(f"--frames must be 4k+1 (the VAE's causal time compression: 5, 9, 17, 33), got {a.frames}")
    export_clips(Path(a.out), n=a.n, seed=a.seed, frames=a.frames or 17, height=a.height or 64,
                 width=a.width or 64, max_objects=a.max_objects, max_actors=a.max_actors)


def cmd_latent_stats(a: argparse.Namespace) -> None:
    import numpy as np
    from diffusers import AutoencoderKLWan

    from ..backbones.codec import FRAME_STATS, measure_frame_stats
    from ..io import write_json
    from ..training.vae import toy_clips

    if not 1 <= a.clips <= 4096:  # the clips are held in memory at once; a few hundred settle the statistics
        raise CinetuneError(f"--clips must be in 1..4096, got {a.clips}")
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
    from ..assets.cards import export_asset

    print(export_asset(a.run, a.name, stage=a.stage))


BASE_BENCHES = ("foundation", "metrics", "latency", "memory", "gpu", "prompt-following", "shipped-adapters",
                "shape-pilot", "text-features", "world-pilot", "ui", "schedulers")


def benches() -> dict[str, str]:
    """Bench name -> module with run(out, quick): the cross-method benches and every method's."""
    from ..methods.registry import benches as method_benches

    return {**{n: f"cinetune.bench.{n.replace('-', '_')}" for n in BASE_BENCHES}, **method_benches()}


def cmd_bench(a: argparse.Namespace) -> None:
    import importlib

    found = benches()
    if a.name not in found:
        raise CinetuneError(f"unknown benchmark {a.name!r}; available: {', '.join(found)}")
    from ..io import check_writable

    check_writable(Path(a.out) / f"{a.name}.md")  # --out is the results folder: refused before hours of work
    module = importlib.import_module(found[a.name])
    if a.jobs > 1:
        if not hasattr(module, "chains"):
            raise CinetuneError(f"bench {a.name} has no independent trainings to run at once: leave --jobs at 1")
        from ..bench.harness import train_chains

        train_chains(module.chains(a.quick), a.jobs)  # run() then reuses every finished run
    print(module.run(Path(a.out), quick=a.quick))


def cmd_extract(a: argparse.Namespace) -> None:
    from ..conditions import annotations_for, exact_condition, get_extractor
    from ..io import check_video_out, read_video, write_video

    check_video_out(a.out)
    video, fps = read_video(a.video)
    if a.backend == "exact":
        cond = exact_condition(annotations_for(a.video), a.kind)
        if cond.shape != video.shape:
            raise CinetuneError(f"the annotations of {a.video} are for a {cond.shape[:3]} video, not {video.shape[:3]}")
    else:
        cond = get_extractor(a.kind, backend=a.backend, edges=a.edges)(video, progress=True)
    print(write_video(a.out, cond, int(round(fps))))


def _read_set(folder: str) -> tuple[list, list[str]]:
    from ..io import read_video
    from ..metrics.evaluate import list_videos

    files = list_videos(folder)
    return [read_video(f)[0] for f in files], [f.stem for f in files]


def cmd_eval(a: argparse.Namespace) -> None:
    import numpy as np

    from ..io import write_json, write_text
    from ..metrics.evaluate import EvalConfig, evaluate, folder_metadata, markdown_table

    gen, names = _read_set(a.generated)
    ref = None
    meta = {}
    if a.reference:
        ref, ref_names = _read_set(a.reference)
        meta = folder_metadata(a.reference)
    prompts = None
    if a.prompts:
        from ..io import read_text_file

        prompts = [line.strip() for line in read_text_file(a.prompts, "prompts file").splitlines() if line.strip()]
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
    if a.metrics and not metrics:
        raise CinetuneError(f"--metrics {a.metrics!r} names no metric")
    cfg = EvalConfig(metrics=metrics, conditions=tuple(c for c in a.conditions.split(",") if c), features=a.features,
                     backend=a.backend, faces="dlib" if face_images is not None else "toy", strict=bool(a.metrics))
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


def cmd_assets(a: argparse.Namespace) -> None:
    from ..assets import recipe

    root = Path(a.root).expanduser().resolve()
    recipe.selected(a.only)  # unknown --only names refused before anything
    recipe.print_plan(root, jobs=a.jobs)
    if a.plan:
        return
    if not a.install_only:
        recipe.rebuild(root, jobs=a.jobs, only=a.only, threads=a.threads)
    if a.install or a.install_only:
        for p in recipe.install(root, only=a.only):
            print(f"installed {p}")


def cmd_presets(a: argparse.Namespace) -> None:
    from ..backbones import PRESETS
    from ..training import PRESETS as TRAIN

    print("models:")
    for p in PRESETS.values():
        print(f"  {p.name:18s} {p.description}")
    print("training presets (cinetune train <kind> --preset NAME):")
    for name, d in TRAIN.items():
        print(f"  {name:20s} task={d['task']} backbone={d.get('backbone', '-')} steps={d['steps']}")


def build_parser() -> argparse.ArgumentParser:
    from ..methods.registry import _resolve, methods
    from .train import add_train

    ap = _Parser(prog="cinetune", description="Controllable, personalised and fast video DiTs.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_generation(sub)
    add_train(sub)
    _add_tools(sub)
    _add_evaluation(sub)
    for m in methods().values():  # a method's own commands (e.g. Scale-Adapter's block-similarity analysis)
        if m.commands:
            _resolve(m.commands)(sub)
    return ap


def _add_memory(p: argparse.ArgumentParser) -> None:
    m = p.add_argument_group("memory (real checkpoints; docs/memory.md)")
    m.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="load the transformer (and a checkpoint's text encoder) in this dtype; fp32 modules stay fp32")
    m.add_argument("--offload", default="none", choices=("none", "model", "block", "leaf"),
                   help="model: each component on the device only while it runs; block / leaf: group offloading")
    m.add_argument("--fp8", action="store_true", help="store the transformer's weights in fp8, compute in --dtype")
    m.add_argument("--vae-tiling", action="store_true", help="decode in overlapping tiles")
    m.add_argument("--vae-slicing", action="store_true", help="decode one video of the batch at a time")
    m.add_argument("--release-text-encoder", action="store_true", help="free the text encoder once prompts are encoded")


def _add_scheduler(p: argparse.ArgumentParser, default: str | None = None) -> None:
    from ..pipelines.schedulers import SCHEDULERS

    own = default or "the model's own"
    p.add_argument("--scheduler", choices=SCHEDULERS, default=default,
                   help=f"the sampler of a flow-matching model (unipc: Wan's; default: {own})")


def _add_generation(sub) -> None:
    d = sub.add_parser("demo", help="generate a few videos with the shipped toy-large model")
    d.add_argument("--out", default="demo_out")
    d.add_argument("--model", default="toy-large")
    d.add_argument("--steps", type=int, default=DEMO_STEPS)
    d.add_argument("--guidance", type=float, default=5.0)
    _add_scheduler(d, DEMO_SCHEDULER)
    d.add_argument("--seed", type=_seed, default=0)
    d.add_argument("--device", type=_device, default=None)
    d.set_defaults(fn=cmd_demo)

    g = sub.add_parser("generate", help="text-to-video")
    g.add_argument("--prompt", action="append", required=True, help="repeat for a batch")
    g.add_argument("--negative-prompt", default="")
    g.add_argument("--model", default="toy-large", help="preset name or diffusers-format directory")
    _add_size(g)
    g.add_argument("--steps", type=int, default=None, help="default: 30, or a distilled student's own steps")
    g.add_argument("--guidance", type=float, default=None, help="default: 5, or 1 (none) for a distilled student")
    _add_scheduler(g)
    g.add_argument("--interpolate", action="store_true",
                   help="a distilled student's frame interpolation: the first steps at half the frame rate")
    g.add_argument("--interpolator", default=None, metavar="DIR", help="with --interpolate: this trained interpolator")
    g.add_argument("--identities", default=None, metavar="MODEL", help="a trained Ingredients model (dir or name)")
    g.add_argument("--identity", action="append", metavar="IMAGE", help="a reference face photo per person (repeat)")
    g.add_argument("--seed", type=_seed, default=0)
    g.add_argument("--device", type=_device, default=None)
    g.add_argument("--out", default="outputs", help="a .mp4/.gif/.png file or a directory")
    _add_memory(g)
    g.add_argument("--adapter", "--scale-adapter", action="append", metavar="PATH|NAME",
                   help="a saved adapter of any method: its directory, a run's final/ or an exported asset, or a "
                        "shipped name (toy-large-controlnext, toy-large-scale-adapter); repeat to compose")
    g.add_argument("--lora", action="append", metavar="PATH[:SCALE]",
                   help="a LoRA file (.safetensors, diffusers' or the original Wan format) on the base, at SCALE "
                        "(default 1); repeat to stack; composes with --adapter")
    g.add_argument("--slot", action="append", metavar="KIND=SLOT",
                   help="feed an unseen condition through this trained slot (adapters with slots: Scale-Adapter)")
    g.add_argument("--control", action="append", metavar="KIND=VIDEO", help="condition video (repeatable)")
    g.add_argument("--control-from", default=None, metavar="VIDEO", help="extract the conditions from this video")
    g.add_argument("--kinds", default="", help="with --control-from: kinds to extract, e.g. canny,depth")
    g.add_argument("--backend", default="auto", help="with --control-from: the extractor backend for depth / pose / "
                                                     "segmentation (as extract's)")
    g.add_argument("--control-scale", action="append", metavar="[KIND=]SCALE",
                   help="control strength (default 1), for every condition or one (depth=0.8); repeatable")
    g.add_argument("--control-start", action="append", metavar="[KIND=]FRACTION",
                   help="fraction of the steps where control starts (default 0), for every condition or one")
    g.add_argument("--control-end", action="append", metavar="[KIND=]FRACTION",
                   help="fraction of the steps where control ends (default 1), for every condition or one")
    g.set_defaults(fn=cmd_generate)

    u = sub.add_parser("ui", help="a local web app for every method (extra: pip install 'cinetune[ui]')")
    u.add_argument("--host", type=_host, default="127.0.0.1",
                   help="the IP address to serve on (default: this machine only; 0.0.0.0: every interface)")
    u.add_argument("--port", type=_int_in(1, 65535), default=7860)
    u.add_argument("--model", default="toy-large", help="preset name, diffusers-format directory or a student")
    u.add_argument("--device", type=_device, default=None)
    u.add_argument("--out", default=None, help="folder for the results (default: a new temporary folder)")
    _add_memory(u)
    u.add_argument("--dry-run", action="store_true", help="load the model and build the page, then exit (serve nothing)")
    u.set_defaults(fn=cmd_ui)


def _add_tools(sub) -> None:
    r = sub.add_parser("render-toy", help="render toy-world clips with every annotation")
    r.add_argument("--n", type=int, required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=_seed, default=0)
    r.add_argument("--max-objects", type=int, default=2, help="at most 3; 0: people only")
    r.add_argument("--max-actors", type=int, default=3, help="at most 3; 0: objects only")
    _add_size(r)
    r.set_defaults(fn=cmd_render_toy)

    ls = sub.add_parser("latent-stats", help="measure a toy VAE's per-(channel, latent frame) latent statistics "
                        "on toy clips and write them beside it (cinetune_latents.json)")
    ls.add_argument("--vae", required=True, help="VAE directory (e.g. src/cinetune/assets/toy-vae/vae)")
    ls.add_argument("--clips", type=int, default=64)
    ls.add_argument("--frames", type=int, default=33, help="clip length: the longest the DiTs generate")
    ls.add_argument("--seed", type=_seed, default=2, help="toy-world seed (the VAE recipes' held-out seed 0 + 2)")
    ls.set_defaults(fn=cmd_latent_stats)

    e = sub.add_parser("export-asset", help="ship a finished run as a package asset with its model card")
    e.add_argument("--run", required=True)
    e.add_argument("--name", required=True, help="asset name, e.g. toy-large")
    e.add_argument("--stage", default=None, help=argparse.SUPPRESS)  # set by `cinetune assets`
    e.set_defaults(fn=cmd_export_asset)

    r = sub.add_parser("assets", help="rebuild every shipped toy model (resumable; prints the plan and an ETA)")
    r.add_argument("--root", default="~/cinetune-runs/rebuild", help="the rebuild's folder: runs/, assets/, logs/")
    r.add_argument("--jobs", type=_at_least_one, default=1, help="stages trained at once (each on cores / jobs threads)")
    r.add_argument("--threads", type=_at_least_one, default=None, help="threads per stage (default: cores / jobs)")
    r.add_argument("--only", nargs="+", metavar="STAGE", help="these stages and the ones they need")
    r.add_argument("--plan", action="store_true", help="print the plan and exit")
    r.add_argument("--install", action="store_true", help="then copy the rebuilt models into the package")
    r.add_argument("--install-only", action="store_true", help="only copy a finished rebuild (or the --only stages and what they need) into the package")
    r.set_defaults(fn=cmd_assets)

    p = sub.add_parser("presets", help="list model and training presets")
    p.set_defaults(fn=cmd_presets)


def _add_evaluation(sub) -> None:
    x = sub.add_parser("extract", help="condition video from a video: canny, hed, depth, pose, ...")
    x.add_argument("--kind", required=True)
    x.add_argument("--video", required=True)
    x.add_argument("--out", required=True, help="output video (.mp4/.gif)")
    x.add_argument("--backend", default="auto", help="auto (the toy annotator on toy-world sizes, else asks) | toy | "
                                                     "exact (render-toy clips) | model dir | module:function")
    x.add_argument("--edges", default="canny", help="edge map behind scribble/lineart/mlsd: canny | hed")
    x.set_defaults(fn=cmd_extract)

    v = sub.add_parser("eval", help="metrics of generated videos against references")
    v.add_argument("--generated", required=True, help="folder of videos")
    v.add_argument("--reference", default=None, help="folder of videos (paired by sorted file name)")
    v.add_argument("--prompts", default=None, help="text file, one prompt per generated video (sorted order)")
    v.add_argument("--metrics", default="", help="comma list; default: all that the inputs allow")
    v.add_argument("--conditions", default="canny,depth,pose,segmentation", help="kinds for condition adherence")
    v.add_argument("--features", default="toy", help="toy | toy:DIR | local CLIP directory")
    v.add_argument("--backend", default="auto", help="extractor backend for depth/pose/segmentation (as extract's)")
    v.add_argument("--face-references", default=None,
                   help="folder of reference face photos: real-face identity similarity with dlib (extra 'faces')")
    v.add_argument("--out", default="report.json")
    v.set_defaults(fn=cmd_eval)

    b = sub.add_parser("bench", help="measure and write benchmarks/results/<name>.md")
    b.add_argument("name", help=" | ".join(benches()))
    b.add_argument("--quick", action="store_true")
    b.add_argument("--out", default="benchmarks/results")
    b.add_argument("--jobs", type=_int_in(1, 64), default=1,
                   help="processes that train the bench's independent runs at once before it measures (benches that "
                        "train: control, scale-adapter, ingredients)")
    b.set_defaults(fn=cmd_bench)


from .demo import DEMO_SCHEDULER, DEMO_STEPS, cmd_demo  # noqa: E402  (the demo and train commands: own modules)
from .train import cmd_train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    try:
        args, extra = build_parser().parse_known_args(argv)
        # Overrides may follow options (`--preset x steps=10`), which argparse does not match to a positional.
        if extra and getattr(args, "fn", None) is cmd_train and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides or []) + extra
        elif extra:
            raise CinetuneError(f"unrecognized arguments: {' '.join(extra)}")
        _refuse_empty(args)
        args.fn(args)
    except CinetuneError as e:
        _close_progress_bars()
        print("cinetune: error: " + " ".join(str(e).split("\n")), file=sys.stderr)  # one line, always
        return 2
    except OSError as e:
        _close_progress_bars()
        if e.filename is None:
            return _internal_error(e, argv)
        # a path the user gave (or one derived from it) that cannot be made, read or written: bad input
        print(f"cinetune: error: cannot use {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cinetune: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input
        return _internal_error(e, argv)
    return 0


def _close_progress_bars() -> None:
    """Clear the bars an error interrupted, so that the error is the one line left on the terminal."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def _internal_error(e: Exception, argv: list[str] | None) -> int:
    """One line naming the failing step, exit 1; the traceback on request (CINETUNE_DEBUG=1)."""
    import itertools
    import os

    _close_progress_bars()
    if os.environ.get("CINETUNE_DEBUG"):
        raise e
    words = itertools.takewhile(lambda w: not w.startswith("-"), argv if argv is not None else sys.argv[1:])
    step = " ".join(list(words)[:2]) or "cinetune"
    print(f"cinetune: internal error in `{step}`: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
          "(rerun with CINETUNE_DEBUG=1 for the traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
