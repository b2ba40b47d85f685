"""The CLI's bad-input contract, fuzzed over every subcommand and every option.

The subcommands and options are walked from the argparse tree, so a new one is fuzzed without touching this file.
Each case is a small valid command on the tiny toy models (`BASES`) with one option given a generated value (`VALUES`:
empty, negative, zero, huge, NaN/inf, wrong type, unicode, and paths that are missing, directories, plain, empty,
truncated or foreign files) or one flag added. It runs `cinetune.cli.main` in this process and passes when:

- it exits 0 (the value was fine and the work ran), or 2 with exactly one `cinetune: error:` line on stderr;
- never 1 (the top-level guard's internal error), never a traceback, never a warning line before the error;
- nothing outside the case's own output folder changed (fixtures, working directory, the package's shipped assets);
- nothing tried the network.

A case still running after `--case-seconds` was accepted and had started its work (a huge step or clip count); it is
stopped there and checked the same way.

    python -m tests.cli_fuzz --seed 0            # one value per option: the bounded run `make test` makes
    python -m tests.cli_fuzz --seed 1 --all      # every option x every value (on demand: `make fuzz`)

Prints one JSON object: the cases run and the failures (argv, exit status, stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

NUMBERS = ["", "-1", "0", "99999999", "1e400", "nan", "inf", "-inf", "abc", "ü☃", "0x10", "1.5", "-0"]
PATHS = ["missing/x.mp4", "dir", "plain.txt", "empty.bin", "trunc.safetensors", "foreign.png", "/dev/null",
         "badmodel", "/proc/x.mp4"]


OUTPUTS = ("--out", "--root")  # options whose value is where the command writes


class CaseTimeout(BaseException):
    """Raised by the alarm: not an Exception, so the CLI's guards do not catch it."""


def make_fixtures(root: Path) -> dict:
    """Files every case may read (and must not change): a rendered set, bad files of each sort."""
    import numpy as np
    from safetensors.numpy import save_file

    import imageio.v3 as iio

    from cinetune.cli import main

    fx = root / "fixtures"
    fx.mkdir()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["render-toy", "--n", "2", "--out", str(fx / "set"), "--frames", "5", "--height", "32",
                     "--width", "32"]) == 0
    (fx / "dir").mkdir()
    (fx / "plain.txt").write_text("not what you expected\n")
    (fx / "empty.bin").write_bytes(b"")
    save_file({"w": np.zeros((64, 64), np.float32)}, str(fx / "full.safetensors"))
    (fx / "trunc.safetensors").write_bytes((fx / "full.safetensors").read_bytes()[:100])
    iio.imwrite(fx / "foreign.png", np.full((32, 32, 3), 200, np.uint8))
    (fx / "badmodel" / "transformer").mkdir(parents=True)
    (fx / "badmodel" / "transformer" / "config.json").write_text("{not json")
    (fx / "badmodel" / "cinetune.json").write_text("[1, 2")
    run = fx / "unfinished-run"
    run.mkdir()
    (run / "config.yaml").write_text("steps: 1\n")
    return {"fx": fx, "set": fx / "set", "clip": fx / "set" / "clips" / "000000.mp4"}


def _tiny_train(out: Path, preset: str, **extra) -> list[str]:
    data = {"data.frames": 5, "data.height": 32, "data.width": 32, "data.cache_path": out / "cache.safetensors"}
    common = {"steps": 1, "batch_size": 1, "checkpoint_every": 1, "validate_every": 0, "output_dir": out / "run",
              **data, **extra}
    return ["--preset", preset, *(f"{k}={v}" for k, v in common.items())]


# command -> (fixtures, the case's output folder) -> its valid tiny argv after the command words
BASES = {
    "demo": lambda f, o: ["--model", "toy-small", "--steps", "1", "--out", str(o / "demo")],
    "generate": lambda f, o: ["--prompt", "a red circle moves left", "--model", "toy-small", "--frames", "5",
                              "--height", "32", "--width", "32", "--steps", "1", "--out", str(o / "g.mp4")],
    "train base": lambda f, o: _tiny_train(o, "tiny"),
    "train features": lambda f, o: _tiny_train(o, "toy-annotator"),
    "train control": lambda f, o: _tiny_train(o, "toy-control", backbone="toy-small", init="",
                                              **{"control.conditions": "canny", "control.clip_cache": 2}),
    "train scale-adapter": lambda f, o: _tiny_train(o, "toy-scale-adapter", **{"scale.conditions": "canny",
                                                                                 "scale.clip_cache": 2}),
    "train distill": lambda f, o: _tiny_train(o, "tiny-distill"),
    "train ingredients": lambda f, o: _tiny_train(o, "tiny-ingredients"),
    "train interpolator": lambda f, o: _tiny_train(o, "tiny-interpolator"),
    "render-toy": lambda f, o: ["--n", "1", "--out", str(o / "set"), "--frames", "5", "--height", "32", "--width",
                                "32"],
    "latent-stats": lambda f, o: ["--vae", str(_copy_vae(o)), "--clips", "1", "--frames", "5"],
    # never succeeds (the run is unfinished), so nothing is ever installed into the package
    "export-asset": lambda f, o: ["--run", str(f["fx"] / "unfinished-run"), "--name", "fuzz-never"],
    "assets": lambda f, o: ["--plan", "--root", str(o / "root")],  # --plan: never trains or installs
    "presets": lambda f, o: [],
    "extract": lambda f, o: ["--kind", "canny", "--video", str(f["clip"]), "--out", str(o / "e.mp4")],
    "eval": lambda f, o: ["--generated", str(f["set"] / "clips"), "--reference", str(f["set"] / "clips"),
                          "--metrics", "psnr", "--out", str(o / "report.json")],
    "bench": lambda f, o: ["text-features", "--out", str(o / "tf.md")],  # the seconds-long bench
    "analyze": lambda f, o: ["block-similarity", "--large", "toy-large", "--small", "toy-small", "--clips", "1",
                             "--out", str(o / "bs.md")],
    "distill export-lora": lambda f, o: ["--student", "toy-large-4step", "--rank", "1", "--out",
                                         str(o / "lora.safetensors")],
    # --dry-run: builds the page and exits; serving is tested in tests/ui
    "ui": lambda f, o: ["--model", "toy-small", "--dry-run", "--out", str(o / "ui")],
    "distill add-interpolator": lambda f, o: ["--student", "toy-large-4step", "--interpolator", "toy-interpolator",
                                              "--out", str(o / "student")],
}


def _copy_vae(out: Path) -> Path:
    from cinetune.backbones.presets import PACKAGE_ASSETS

    dest = out / "vae"
    if not dest.exists():
        shutil.copytree(Path(PACKAGE_ASSETS) / "toy-vae" / "vae", dest)
    return dest


def commands() -> dict[str, list[argparse.Action]]:
    """'train base' -> its actions (help excluded), for every leaf of the parser tree."""
    from cinetune.cli import build_parser

    out = {}

    def walk(p: argparse.ArgumentParser, words: list[str]) -> None:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            for name, sp in subs[0].choices.items():
                walk(sp, words + [name])
        else:
            out[" ".join(words)] = [a for a in p._actions if not isinstance(a, argparse._HelpAction)]

    walk(build_parser(), [])
    return out


def _value(v: str, fx: Path) -> str:
    return v if v.startswith("/") or v in NUMBERS else str(fx / v)


def with_option(base: list[str], action: argparse.Action, value: str | None) -> list[str]:
    """`base` with `action` given `value` (its old value removed), or with the flag added (value None)."""
    argv = list(base)
    if not action.option_strings:  # a positional: the first non-option word, or overrides
        if action.dest == "overrides":
            return argv + ([value] if value is None or "=" in value else [f"steps={value}"])
        return [value if i == 0 else a for i, a in enumerate(argv)] if argv else [value]
    names = set(action.option_strings)
    out, skip = [], 0
    for a in argv:
        if skip:
            skip -= 1
            continue
        if a in names:
            skip = 0 if action.nargs == 0 else 1
            continue
        out.append(a)
    return out + [action.option_strings[0]] + ([] if value is None else [value])


def cases(seed: int, every: bool, fx: Path) -> list[tuple[str, str, str | None]]:
    """(command, option, value) triples: one random value per option, or every value."""
    rng = random.Random(seed)
    out = []
    for cmd, actions in commands().items():
        if cmd not in BASES:
            raise SystemExit(f"cli_fuzz: no tiny base command for `{cmd}`; add one to BASES")
        for a in actions:
            name = a.option_strings[0] if a.option_strings else a.dest
            if a.nargs == 0:
                out.append((cmd, name, None))
                continue
            values = NUMBERS + PATHS
            if name == "overrides":  # keys too: unknown, nested, malformed
                values = values + ["nope=1", "data.nope=1", "=1", "optim.lr=nan", "steps=", "data=1"]
            for v in (values if every else [rng.choice(values)]):
                out.append((cmd, name, _value(v, fx)))
    return out


def snapshot(*roots: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    out = {}
    for root in roots:
        for dirpath, dirnames, files in os.walk(root):
            d = Path(dirpath)
            if any(d == s or s in d.parents for s in skip):
                dirnames[:] = []
                continue
            dirnames[:] = [n for n in dirnames if n != "__pycache__"]
            for f in files:
                p = d / f
                if any(p.parent == s.parent and p.stem == s.stem for s in skip):  # an output and its siblings
                    continue
                with contextlib.suppress(OSError):
                    st = p.stat()
                    out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


@contextlib.contextmanager
def captured_fds():
    """stdout and stderr of this process (Python and C level) into files; yields a dict filled on exit."""
    got = {}
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile("w+b") as out, tempfile.TemporaryFile("w+b") as err:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
        try:
            yield got
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            for fd, keep in saved.items():
                os.dup2(keep, fd)
                os.close(keep)
            for name, f in (("out", out), ("err", err)):
                f.seek(0)
                got[name] = f.read().decode("utf-8", "replace")


def stderr_lines(err: str) -> list[str]:
    """What a terminal shows: per line, the text after the last carriage return (progress bars redraw)."""
    return [ln.split("\r")[-1] for ln in err.split("\n") if ln.split("\r")[-1].strip()]


def run_case(argv: list[str], skip: tuple[Path, ...], watch: list[Path], seconds: int) -> dict | None:
    """None when the case keeps the contract, else what went wrong. `skip`: the case's output paths."""
    from cinetune.cli import main

    before = snapshot(*watch, skip=skip)
    net = []

    def no_network(self, *a, **k):
        net.append(a)
        raise OSError("network disabled by the fuzz test")

    old_connect = socket.socket.connect
    socket.socket.connect = no_network
    old_alarm = signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(CaseTimeout()))
    code = "timeout"
    try:
        with captured_fds() as io_:
            signal.alarm(seconds)
            try:
                code = main(argv)
            except CaseTimeout:
                pass
            except MemoryError:  # past the driver's memory cap: the command took what the input asked, unchecked
                code = "memory"
            except BaseException as e:  # noqa: BLE001  SystemExit and the like: not the contract either
                code = f"{type(e).__name__}"
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old_alarm)
        socket.socket.connect = old_connect
    import torch

    err = io_["err"]
    lines = stderr_lines(err)
    problems = []
    if not torch.is_grad_enabled():  # a command that returned with autograd off would break a Python caller too;
        if code != "timeout":       # one stopped by the alarm may be cut inside a no_grad block: reset, not a defect
            problems.append("left autograd disabled")
        torch.set_grad_enabled(True)
    if code not in (0, 2, "timeout"):
        problems.append(f"exit {code}")
    if code == 2 and (len(lines) != 1 or not lines[0].startswith("cinetune: error:")):
        problems.append(f"{len(lines)} stderr lines")
    if "Traceback" in err:
        problems.append("traceback")
    if net:
        problems.append("network attempt")
    changed = sorted(set(before.items()) ^ set(snapshot(*watch, skip=skip).items()))
    if changed:
        problems.append(f"changed outside the output: {sorted({c[0] for c in changed})[:3]}")
    return {"argv": argv, "exit": code, "problems": problems, "stderr": lines[-3:]} if problems else None


def cap_memory(gib: float) -> None:
    """A huge size must be refused, not allocated: past `gib` of address space an allocation fails (MemoryError, a
    failed case) instead of the machine's OOM killer ending the whole run."""
    import resource

    limit = int(gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def fuzz(seed: int, every: bool, seconds: int, root: Path, limit: int | None = None,
         log: Path | None = None) -> dict:
    from cinetune.backbones.presets import PACKAGE_ASSETS

    os.environ.pop("CINETUNE_DEBUG", None)
    fxd = make_fixtures(root)
    work = root / "cwd"
    work.mkdir()
    os.chdir(work)  # relative defaults (runs/, demo_out/) land here, where they are checked
    todo = cases(seed, every, fxd["fx"])
    if limit:
        todo = todo[:limit]
    failures = []
    for i, (cmd, name, value) in enumerate(todo):
        out = root / "out" / f"{i:05d}"
        out.mkdir(parents=True)
        actions = {(a.option_strings[0] if a.option_strings else a.dest): a for a in commands()[cmd]}
        argv = cmd.split() + with_option(BASES[cmd](fxd, out), actions[name], value)
        skip = (out,)
        if value is not None and (name in OUTPUTS or value.startswith("output_dir=")):  # the value is the output
            skip += ((work / value.removeprefix("output_dir=")).resolve(),)
        if log is not None:  # the case about to run, outside the capture (a crash is then attributable)
            with open(log, "a") as f:
                f.write(json.dumps(argv, ensure_ascii=False) + "\n")
        bad = run_case(argv, skip, [fxd["fx"], work, Path(PACKAGE_ASSETS)], seconds)
        if bad:
            failures.append(bad)
        shutil.rmtree(out, ignore_errors=True)
    return {"seed": seed, "cases": len(todo), "failures": failures}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--all", action="store_true", help="every option x every value")
    p.add_argument("--case-seconds", type=int, default=30)
    p.add_argument("--limit", type=int, default=None, help="run only the first N cases")
    p.add_argument("--memory-gib", type=float, default=12.0, help="address-space cap of this process")
    p.add_argument("--log", type=Path, default=None, help="append each case's argv here before it runs")
    a = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cap_memory(a.memory_gib)
    with tempfile.TemporaryDirectory(prefix="cinetune-fuzz-") as tmp:
        report = fuzz(a.seed, a.all, a.case_seconds, Path(tmp), a.limit, a.log)
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    main()
