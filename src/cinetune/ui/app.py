"""The Gradio page over a Studio: four panels (text to video, control, identities, few-step) feeding one Generate
button, so any combination the library supports runs in one request. Bad input becomes a message in the page."""

from __future__ import annotations

import functools
from pathlib import Path

from ..errors import CinetuneError
from ..pipelines.schedulers import SCHEDULERS
from .studio import NONE, ConditionWindow, Request, Studio

WINDOW_HEADERS = ["condition", "scale", "start", "end"]
MODEL_SCHEDULER = "the model's own"
VIDEO_HEIGHT = 320  # px on the page: toy videos are 64 px, shown enlarged


def _message(e: Exception) -> str:
    if isinstance(e, CinetuneError):
        return " ".join(str(e).split())
    if isinstance(e, OSError) and e.filename is not None:
        return f"cannot use {Path(e.filename).name}: {e.strerror or e}"
    return f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def guarded(n_outputs: int):
    """A handler whose failure shows in the status box (the first output) and leaves the other outputs as they
    were: the server keeps serving, the page never shows a stack trace."""
    import gradio as gr

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001  (any failure is reported, the next request still runs)
                return ("**Error:** " + _message(e), *[gr.skip()] * (n_outputs - 1))
        return run
    return wrap


def _path(f) -> str | None:
    """A File component's value (a path, or an object with .name in older Gradio) as a path."""
    if f is None:
        return None
    return str(getattr(f, "name", f))


def condition_uploads(files) -> dict[str, str]:
    """Uploaded condition videos, each named by its kind (depth.mp4, pose-clip.mp4) -> {kind: path}."""
    from ..conditions import KINDS

    out = {}
    for f in files or []:
        p = Path(_path(f))
        kind = next((k for k in KINDS if p.stem == k or p.stem.startswith(k + "-") or p.stem.startswith(k + "_")),
                    None)
        if kind is None:
            raise CinetuneError(f"{p.name}: name condition videos by their kind ({', '.join(KINDS)}), e.g. depth.mp4")
        out[kind] = str(p)
    return out


def windows_from_table(rows) -> dict[str, ConditionWindow]:
    """The per-condition table ([condition, scale, start, end] rows) -> {kind: window}."""
    import math

    rows = rows.values.tolist() if hasattr(rows, "values") else (rows or [])
    out = {}
    for row in rows:
        if not row or not str(row[0]).strip():
            continue
        try:
            vals = [float(v) for v in row[1:4]]
        except (TypeError, ValueError):
            raise CinetuneError(f"condition {row[0]}: scale, start and end must be numbers, got {row[1:4]}") from None
        if not all(math.isfinite(v) for v in vals):
            raise CinetuneError(f"condition {row[0]}: scale, start and end must be finite numbers")
        out[str(row[0]).strip()] = ConditionWindow(*vals)
    return out


def build_app(studio: Studio):
    """The gr.Blocks page of `studio` (not launched): the four input panels, the results column, their events."""
    import gradio as gr

    with gr.Blocks(title="cinetune") as app:
        gr.Markdown(f"## cinetune · `{studio.model}`\nOne model, loaded once. Fill the panels you need and press "
                    "**Generate**: control, identities and the few-step student combine in one request.")
        with gr.Row():
            with gr.Column(scale=3):
                w = {**_text_panel(studio.preset), **_control_panel(studio.choices["control"]),
                     **_identities_panel(studio.choices["identities"]), **_few_step_panel(studio)}
                w["compare"] = gr.Checkbox(label="Also generate without adapters (same seed) for the grid",
                                           elem_id="compare")
                w["go"] = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=2):
                w.update(_results_column())
        _wire(studio, w)
    return app


def _text_panel(p) -> dict:
    import gradio as gr

    with gr.Tab("Text to video"):
        w = {"prompt": gr.Textbox(label="Prompt", lines=2, elem_id="prompt",
                                  value="A red circle moves to the right on a plain navy backdrop."),
             "negative": gr.Textbox(label="Negative prompt", elem_id="negative-prompt")}
        with gr.Row():
            w["steps"] = gr.Number(label="Steps", value=30, precision=0, minimum=1, elem_id="steps")
            w["guidance"] = gr.Number(label="Guidance", value=5.0, elem_id="guidance")
            w["seed"] = gr.Number(label="Seed", value=0, precision=0, minimum=0, elem_id="seed")
            w["scheduler"] = gr.Dropdown([MODEL_SCHEDULER, *SCHEDULERS], value=MODEL_SCHEDULER, elem_id="scheduler",
                                         label="Scheduler", info="unipc: as good in fewer steps")
        with gr.Row():
            w["frames"] = gr.Number(label="Frames (4k+1)", value=p.frames, precision=0, elem_id="frames",
                                    info=f"the model's: {p.frames} frames at {p.height}x{p.width}")
            w["height"] = gr.Number(label="Height", value=p.height, precision=0, elem_id="height")
            w["width"] = gr.Number(label="Width", value=p.width, precision=0, elem_id="width")
    return w


def _control_panel(adapters: list[str]) -> dict:
    import gradio as gr

    with gr.Tab("Control"):
        w = {"adapter": gr.Dropdown([NONE, *adapters], value=NONE, allow_custom_value=True, elem_id="adapter",
                                    label="Control adapter (shipped name or saved directory)"),
             "reference": gr.File(label="Reference video: the conditions are extracted from it",
                                  elem_id="control-reference")}
        with gr.Row():
            w["kinds"] = gr.CheckboxGroup([], label="Conditions to extract", elem_id="kinds")
            w["backend"] = gr.Textbox("auto", label="Extractor backend (as `cinetune extract --backend`)")
        w["extract"] = gr.Button("Extract conditions", elem_id="extract")
        w["preview"] = gr.Video(label="Extracted conditions", height=VIDEO_HEIGHT // 2, elem_id="conditions-preview")
        w["uploads"] = gr.File(file_count="multiple", label="Or condition videos, named by kind (depth.mp4, "
                               "pose.mp4, ...)", elem_id="condition-videos")
        w["table"] = gr.Dataframe(headers=WINDOW_HEADERS, value=[], type="array", interactive=True,
                                  datatype=["str", "number", "number", "number"],
                                  label="Per condition: scale, start and end (fractions of the steps)")
    return w


def _identities_panel(models: list[str]) -> dict:
    import gradio as gr

    with gr.Tab("Identities"):
        return {"identities": gr.Dropdown([NONE, *models], value=NONE, allow_custom_value=True, elem_id="identities",
                                          label="Identities model (Ingredients)"),
                "faces_in": gr.File(file_count="multiple", label="Reference faces: one image per person (1 to 3)",
                                    elem_id="face-images"),
                "detect": gr.Button("Detect faces", elem_id="detect"),
                "crops": gr.Gallery(label="Detected, aligned faces", columns=3, height=160, elem_id="crops")}


def _few_step_panel(studio: Studio) -> dict:
    import gradio as gr

    fixed = studio.fixed_student is not None
    students = [studio.model] if fixed else [NONE, *studio.choices["student"]]
    with gr.Tab("Few-step"):
        return {"student": gr.Dropdown(students, value=students[0], interactive=not fixed, elem_id="student",
                                       label="Distilled student (its own steps, no guidance)"),
                "interpolate": gr.Checkbox(label="Frame interpolation (the first steps at half the frame rate)",
                                           elem_id="interpolate")}


def _results_column() -> dict:
    import gradio as gr

    return {"status": gr.Markdown("Ready.", elem_id="status"),
            "video": gr.Video(label="Result", autoplay=True, loop=True, height=VIDEO_HEIGHT, elem_id="result-video"),
            "grid": gr.Video(label="Side by side", autoplay=True, loop=True, height=VIDEO_HEIGHT // 2,
                             elem_id="result-grid"),
            "command": gr.Code(label="The same with the command line (writes the same file)", language="shell",
                               lines=3, wrap_lines=True, show_line_numbers=False, elem_id="command")}


# Generate's inputs, in the order of its HTTP API (`/generate`)
GENERATE_INPUTS = ("prompt", "negative", "steps", "guidance", "seed", "frames", "height", "width", "adapter",
                   "reference", "kinds", "backend", "uploads", "table", "identities", "faces_in", "student",
                   "interpolate", "compare", "scheduler")


def _wire(studio: Studio, w: dict) -> None:
    """The page's events; the model-using ones share one queue slot (one model, one request at a time)."""
    import gradio as gr

    @guarded(3)
    def on_adapter(name):
        ks = studio.kinds_of(name)
        return (f"Adapter `{name}`: " + (", ".join(ks) if ks else "no conditions") if name != NONE else "Ready.",
                gr.update(choices=ks, value=ks), [[k, 1.0, 0.0, 1.0] for k in ks])

    @guarded(2)
    def on_extract(ref, ks, be, progress=gr.Progress(track_tqdm=True)):
        import numpy as np

        from ..io import write_video

        if _path(ref) is None:
            raise CinetuneError("upload a reference video first")
        conds = studio.extract(_path(ref), list(ks or []), be or "auto")
        out = studio.out / "previews" / f"{Path(_path(ref)).stem}-{'-'.join(conds)}.mp4"
        write_video(out, np.concatenate(list(conds.values()), 2), studio.fps)
        return "Extracted: " + ", ".join(conds) + " (left to right).", str(out)

    @guarded(2)
    def on_detect(name, files):
        faces = studio.faces(name, [_path(f) for f in files or []])
        return f"{len(faces)} face(s) found.", faces

    @guarded(5)
    def on_generate(*values, progress=gr.Progress(track_tqdm=True)):
        res = studio.generate(_request(dict(zip(GENERATE_INPUTS, values))))
        return (f"Generated in **{res.seconds:.1f} s**. Grid: {' | '.join(res.columns)}.", str(res.video),
                str(res.grid), res.command, res.faces or gr.skip())

    w["adapter"].change(on_adapter, w["adapter"], [w["status"], w["kinds"], w["table"]])
    w["extract"].click(on_extract, [w["reference"], w["kinds"], w["backend"]], [w["status"], w["preview"]],
                       concurrency_id="model")
    w["detect"].click(on_detect, [w["identities"], w["faces_in"]], [w["status"], w["crops"]], concurrency_id="model")
    w["go"].click(on_generate, [w[k] for k in GENERATE_INPUTS],
                  [w["status"], w["video"], w["grid"], w["command"], w["crops"]], concurrency_limit=1,
                  concurrency_id="model", api_name="generate")  # also a local HTTP API, as `cinetune bench ui` calls it


def _request(v: dict) -> Request:
    """Generate's input values (by GENERATE_INPUTS name) -> the Studio request."""
    ref = _path(v["reference"])
    return Request(prompt=v["prompt"] or "", negative_prompt=v["negative"] or "", steps=_int(v["steps"], "steps"),
                   guidance=_float(v["guidance"], "guidance"), seed=_int(v["seed"], "seed"),
                   frames=_int(v["frames"], "frames"), height=_int(v["height"], "height"),
                   width=_int(v["width"], "width"), adapter=v["adapter"] or NONE,
                   control_videos=condition_uploads(v["uploads"]), control_from=ref,
                   kinds=list(v["kinds"] or []) if ref else [], backend=v["backend"] or "auto",
                   windows=windows_from_table(v["table"]), identities=v["identities"] or NONE,
                   identity_images=[_path(f) for f in v["faces_in"] or []], student=v["student"] or NONE,
                   interpolate=bool(v["interpolate"]), compare_base=bool(v["compare"]),
                   scheduler=None if v["scheduler"] in (None, "", MODEL_SCHEDULER) else v["scheduler"])


def _int(v, name: str) -> int | None:
    if v is None or v == "":
        return None
    f = _float(v, name)
    if f != int(f):
        raise CinetuneError(f"{name} must be a whole number, got {v}")
    return int(f)


def _float(v, name: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        raise CinetuneError(f"{name} must be a number, got {v!r}") from None


def launch(studio: Studio, host: str = "127.0.0.1", port: int = 7860):
    """Serve the page without blocking; returns (app, url); `app.block_thread()` then serves until interrupted."""
    app = build_app(studio)
    app.queue(default_concurrency_limit=1)
    _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                           allowed_paths=[str(studio.out)], footer_links=[], show_error=False)
    return app, url
