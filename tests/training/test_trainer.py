import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cinetune.backbones.codec import FRAME_STATS, LatentCodec
from cinetune.config import merge, parse_overrides
from cinetune.errors import CinetuneError
from cinetune.training import TrainConfig, preset_config, train
from cinetune.training.task import step_generator
from cinetune.training.tasks import make_task

REPO = Path(__file__).resolve().parents[2]


def tiny(tmp_path: Path, name: str, **over) -> TrainConfig:
    return preset_config("tiny", {"output_dir": str(tmp_path / name), **over})


def _weights(run: Path) -> dict:
    return load_file(run / "final" / "transformer" / "diffusion_pytorch_model.safetensors")


@torch.no_grad()
def _eval_loss(task, n: int = 6) -> float:
    """Loss on fixed clips, noise and timesteps: comparable before and after training."""
    total = 0.0
    for k in range(n):
        batch = task.batch(10_000 + k, 0, 0, 1)
        batch["gens"] = [step_generator(99, k, i) for i in range(len(batch["gens"]))]
        total += task.loss(task.model, batch)[0].item()
    return total / n


def test_init_is_a_saved_directory_or_a_shipped_model_name(tmp_path):
    from cinetune.backbones.presets import PACKAGE_ASSETS as ASSETS
    from cinetune.training.config import init_dir

    # presets name shipped weights, so `cinetune train control --preset toy-control` works from any directory
    assert Path(init_dir("toy-large", "transformer")) == ASSETS / "toy-large" / "transformer"
    assert init_dir(str(ASSETS / "toy-small" / "transformer"), "transformer") == str(ASSETS / "toy-small" / "transformer")
    assert init_dir("", "transformer") == ""
    with pytest.raises(CinetuneError, match="toy-large"):  # lists the shipped names
        init_dir("no-such-model", "transformer")
    with pytest.raises(CinetuneError, match="no config.json"):
        init_dir(str(tmp_path), "transformer")


def test_loss_decreases_when_overfitting(tmp_path):
    cfg = tiny(tmp_path, "fit", steps=150, batch_size=2, checkpoint_every=150, data={"size": 2, "caption_dropout": 0.0},
               optim={"lr": 2e-3})
    torch.manual_seed(cfg.seed)
    before = _eval_loss(make_task(cfg, torch.device("cpu")))
    out = train(cfg, progress=False)
    task = make_task(cfg, torch.device("cpu"))
    task.model.load_state_dict(_weights(out))
    after = _eval_loss(task)
    assert after < 0.7 * before, (before, after)
    assert (out / "loss.png").stat().st_size > 0 and (out / "metrics.csv").is_file()
    assert list((out / "samples").glob("*.gif"))


def test_kill_and_resume_is_bit_identical(tmp_path):
    over = dict(steps=6, checkpoint_every=3, ema_decay=0.9, log_every=1)
    straight = train(tiny(tmp_path, "straight", **over), progress=False)
    cfg = tiny(tmp_path, "resumed", **over)
    train(cfg, stop_after=3, progress=False)  # as if killed right after the step-3 checkpoint
    assert [p.name for p in (Path(cfg.output_dir) / "checkpoints").iterdir()] == ["step-0000003"]
    resumed = train(cfg, resume=True, progress=False)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ca = load_file(straight / "checkpoints" / "step-0000006" / "optimizer.safetensors")
    cb = load_file(resumed / "checkpoints" / "step-0000006" / "optimizer.safetensors")
    assert all(torch.equal(ca[k], cb[k]) for k in ca)
    rows = (resumed / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, 7))


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(CinetuneError, match="no checkpoint"):
        train(tiny(tmp_path, "none"), resume=True, progress=False)


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.safetensors"])
def test_resume_passes_over_a_truncated_checkpoint_to_the_newest_that_verifies(tmp_path, capsys, damaged):
    cfg = tiny(tmp_path, "damaged", steps=6, checkpoint_every=2, keep_checkpoints=3)
    train(cfg, stop_after=4, progress=False)
    newest = Path(cfg.output_dir) / "checkpoints" / "step-0000004"
    data = (newest / damaged).read_bytes()
    (newest / damaged).write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    out = train(cfg, resume=True, progress=False)
    printed = capsys.readouterr().out
    assert "skipping damaged checkpoint step-0000004" in printed and "resumed from" in printed
    assert "step-0000002 at step 2" in printed and (out / "final").is_dir()
    # with every checkpoint damaged there is nothing to resume from: a one-line error, not a traceback
    for ck in (Path(cfg.output_dir) / "checkpoints").iterdir():
        (ck / "model.safetensors").write_bytes(b"x")
    with pytest.raises(CinetuneError, match="verifies"):
        train(cfg, resume=True, progress=False)
    # a checkpoint from before fingerprints were recorded: the loader's own error, one line
    for ck in (Path(cfg.output_dir) / "checkpoints").iterdir():
        state = json.loads((ck / "state.json").read_text())
        (ck / "state.json").write_text(json.dumps({k: v for k, v in state.items() if k != "files"}))
    with pytest.raises(CinetuneError, match="cannot resume from .*SafetensorError"):
        train(cfg, resume=True, progress=False)


def test_a_fresh_run_over_an_existing_run_is_refused_and_keeps_it(tmp_path):
    cfg = tiny(tmp_path, "old", steps=4, checkpoint_every=2)
    train(cfg, stop_after=2, progress=False)
    with pytest.raises(CinetuneError, match="already holds a run .* --resume"):
        train(cfg, progress=False)
    assert [p.name for p in (Path(cfg.output_dir) / "checkpoints").iterdir()] == ["step-0000002"]
    train(cfg, resume=True, progress=False)  # the old run continues


def test_nan_loss_stops_with_an_error_and_keeps_checkpoints(tmp_path):
    cfg = tiny(tmp_path, "nan", steps=8, checkpoint_every=1, optim={"lr": 1e12, "grad_clip": 0.0})
    with pytest.raises(CinetuneError, match="loss became"):
        train(cfg, progress=False)
    assert list((Path(cfg.output_dir) / "checkpoints").glob("step-*"))


# Adam's first updates are ~lr*sign(g): parameters with near-zero gradients flip sign under a different float
# summation order, so equivalence is checked with eps=1 (an SGD-like update proportional to the gradient).
WELL_CONDITIONED = {"eps": 1.0, "lr": 1e-2}


def test_gradient_accumulation_matches_a_bigger_batch(tmp_path):
    over = dict(steps=2, data={"size": 4, "caption_dropout": 0.0}, optim=WELL_CONDITIONED)
    big = _weights(train(tiny(tmp_path, "big", batch_size=2, **over), progress=False))
    acc = _weights(train(tiny(tmp_path, "acc", batch_size=1, grad_accum=2, **over), progress=False))
    assert all(torch.allclose(big[k], acc[k], atol=1e-5, rtol=1e-4) for k in big)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_equals_one_process_with_the_global_batch(tmp_path):
    common = ["steps=2", "data.size=4", "data.caption_dropout=0.0", "optim.eps=1.0", "optim.lr=0.01"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port()), "-m", "cinetune.cli", "train", "base", "--preset", "tiny",
              f"output_dir={tmp_path / 'ddp'}", "batch_size=1", *common]
    r = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["processes"] == 2
    single = train(preset_config("tiny", parse_overrides(common + [f"output_dir={tmp_path / 'single'}", "batch_size=2"])),
                   progress=False)
    a, b = _weights(tmp_path / "ddp"), _weights(single)
    assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)


def test_config_overrides_and_errors():
    cfg = preset_config("tiny", parse_overrides(["optim.lr=0.5", "steps=3", "data.frames=9"]))
    assert cfg.optim.lr == 0.5 and cfg.steps == 3 and cfg.data.frames == 9
    with pytest.raises(CinetuneError, match="unknown config field"):
        merge(cfg, {"optim": {"nope": 1}})
    with pytest.raises(CinetuneError, match="expects int"):
        merge(cfg, {"steps": "many"})
    with pytest.raises(CinetuneError, match="4k\\+1"):
        merge(cfg, {"data": {"frames": 6}}).validate()
    with pytest.raises(CinetuneError, match="unknown training preset"):
        preset_config("nope")


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    cfg = tiny(tmp_path, "gc")
    torch.manual_seed(0)
    task = make_task(cfg, torch.device("cpu"))
    task.model.train()
    batch = task.batch(0, 0, 0, 1)

    def grads():
        task.model.zero_grad()
        b = {**batch, "gens": [step_generator(5, i) for i in range(len(batch["gens"]))]}
        task.loss(task.model, b)[0].backward()
        return [p.grad.clone() for p in task.parameters()]

    plain = grads()
    task.enable_gradient_checkpointing()
    assert task.model.gradient_checkpointing
    ckpt = grads()
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(plain, ckpt))


def test_bf16_training_runs(tmp_path):
    out = train(tiny(tmp_path, "bf16", mixed_precision="bf16", steps=3), progress=False)
    assert json.loads((out / "summary.json").read_text())["final_loss"] < 10


def test_vae_decoder_only_keeps_the_encoder_and_latents(tmp_path):
    from diffusers import AutoencoderKLWan

    over = dict(task="vae", steps=2, batch_size=1, data={"frames": 5, "height": 32, "width": 32, "size": 4})
    base = train(tiny(tmp_path, "vae", **over), progress=False)
    ft = train(tiny(tmp_path, "dec", init=str(base / "final" / "vae"), decoder_only=True, **over), progress=False)
    a = AutoencoderKLWan.from_pretrained(base / "final" / "vae").state_dict()
    b = AutoencoderKLWan.from_pretrained(ft / "final" / "vae").state_dict()
    enc = [k for k in a if k.startswith(("encoder.", "quant_conv."))]
    dec = [k for k in a if k.startswith("decoder.")]
    assert all(torch.equal(a[k], b[k]) for k in enc)
    assert any(not torch.equal(a[k], b[k]) for k in dec)


def test_vae_temporal_difference_term_and_flicker_validation(tmp_path):
    from cinetune.training.objectives import motion_mse

    cfg = tiny(tmp_path, "vae-t", task="vae", batch_size=1, data={"frames": 9, "height": 32, "width": 32, "size": 4,
                                                                  "motion_weight": 2.0})
    torch.manual_seed(0)
    task = make_task(cfg, torch.device("cpu"))

    def loss(weight: float) -> tuple[float, torch.Tensor]:
        task.cfg.data.motion_weight = weight
        batch = task.batch(0, 0, 0, 1)
        with torch.no_grad():
            return task.loss(task.model, batch)[0].item(), batch["video"]

    with_term, x = loss(2.0)
    without, _ = loss(0.0)
    noise = torch.randn(1, 16, 3, 8, 8, generator=task.batch(0, 0, 0, 1)["gens"][0])
    with torch.no_grad():
        rec = task.model(x, noise)[0]
    assert with_term == pytest.approx(without + 2.0 * motion_mse(rec, x, None).item(), rel=1e-5)
    out = task.validate(tmp_path, 0)
    assert set(out) == {"val_psnr", "val_chunk_flicker"} and np.isfinite(out["val_chunk_flicker"])


def test_vae_wider_decoder_keeps_the_encoder_and_latent_statistics(tmp_path):
    from diffusers import AutoencoderKLWan

    over = dict(task="vae", steps=2, batch_size=1, data={"frames": 5, "height": 32, "width": 32, "size": 4})
    base = train(tiny(tmp_path, "vae", **over), progress=False)
    wide = train(tiny(tmp_path, "wide", init=str(base / "final" / "vae"), decoder_only=True, decoder_base_dim=24,
                      **over), progress=False)
    a = AutoencoderKLWan.from_pretrained(base / "final" / "vae")
    b = AutoencoderKLWan.from_pretrained(wide / "final" / "vae")
    assert b.config.decoder_base_dim == 24 and a.config.latents_mean == b.config.latents_mean
    # per-(channel, latent frame) statistics beside each (33-frame clips: 9 latent frames), the same encoder's
    fa, fb = (json.loads((d / "final" / "vae" / FRAME_STATS).read_text()) for d in (base, wide))
    assert np.array(fa["latents_std"]).shape == (16, 9) and fa == fb
    codec = LatentCodec.from_dir(a, base / "final" / "vae")
    assert codec.per_frame and torch.equal(codec.mean[0, :, 0, 0, 0], torch.tensor(fa["latents_mean"])[:, 0])
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa if k.startswith(("encoder.", "quant_conv.")))
    assert sum(v.numel() for k, v in sb.items() if k.startswith("decoder.")) > \
        2 * sum(v.numel() for k, v in sa.items() if k.startswith("decoder."))
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        assert b.decode(b.encode(x).latent_dist.mode()).sample.shape == x.shape


@pytest.mark.parametrize("over", [dict(decoder_base_dim=32), dict(decoder_base_dim=32, task="vae", init="x"),
                                  dict(decoder_base_dim=-1, task="vae", init="x", decoder_only=True)])
def test_decoder_base_dim_needs_a_decoder_only_vae_run(tmp_path, over):
    with pytest.raises(CinetuneError, match="decoder_base_dim"):
        tiny(tmp_path, "bad", **over).validate()


def test_latent_cache_grows_and_reencodes_text_of_another_length(tmp_path):
    cache = tmp_path / "latents.safetensors"
    task = make_task(tiny(tmp_path, "cache", data={"latent_cache": 3, "cache_path": str(cache)}), torch.device("cpu"))
    first = load_file(cache)
    assert first["latents"].shape[0] == 3 and first["text"].shape[1] == task.backbone.text_encoder.max_len
    # a larger cache encodes only the missing clips: the first three are kept as they were
    task.cfg.data.latent_cache = 5
    grown = task.load_cache()
    assert grown["latents"].shape[0] == 5 and torch.equal(grown["latents"][:3], first["latents"])
    enc = task.backbone.text_encoder
    assert torch.equal(grown["text"][3:], enc([task.train_set.caption(i) for i in (3, 4)]).half())
    # another max_text_len re-encodes the captions (without rendering), keeping the latents
    enc.max_len = 16
    short = task.load_cache()
    assert short["text"].shape[1] == 16 and torch.equal(short["latents"], grown["latents"])
    assert torch.equal(short["text"], enc([task.train_set.caption(i) for i in range(5)]).half())
    assert load_file(cache)["text"].shape[1] == 16


def test_a_stopped_latent_cache_build_keeps_what_it_encoded(tmp_path):
    from cinetune.training.cache import latents_column, load_or_build, text_column

    task = make_task(tiny(tmp_path, "flush"), torch.device("cpu"))
    cache, seen = tmp_path / "partial.safetensors", []

    def render(i):
        if i == 5:
            raise KeyboardInterrupt  # the process is stopped while encoding clip 5
        seen.append(i)
        return task.render(i)

    cols = [latents_column(task.backbone, torch.device("cpu")), text_column(task.backbone)]
    with pytest.raises(KeyboardInterrupt):
        load_or_build(cache, 8, cols, render, task.backbone, task.train_set.caption, chunk=1, flush_every=2)
    assert load_file(cache)["latents"].shape[0] == 4  # flushed after clips 0-1 and 2-3
    seen.clear()
    done = load_or_build(cache, 6, cols, task.render, task.backbone, task.train_set.caption, chunk=1)
    assert done["latents"].shape[0] == 6


def test_latent_cache_made_with_other_statistics_is_carried_over(tmp_path):
    from safetensors.torch import save_file

    from cinetune.backbones.codec import renormalize

    cache = tmp_path / "latents.safetensors"
    task = make_task(tiny(tmp_path, "cache", data={"latent_cache": 3, "cache_path": str(cache)}), torch.device("cpu"))
    codec = task.backbone.codec
    made = load_file(cache)  # records the statistics it was normalised with
    assert torch.equal(made["latents_mean"], codec.mean[0, :, :, 0, 0])
    # a cache written before per-frame statistics: per-channel (the VAE config's), no record
    per_channel = LatentCodec(codec.vae)
    legacy = {"latents": renormalize(made["latents"], made["latents_mean"], made["latents_std"], per_channel),
              "text": made["text"]}
    assert not torch.allclose(legacy["latents"], made["latents"], atol=1e-2)
    save_file(legacy, str(cache))
    back = task.load_cache()
    torch.testing.assert_close(back["latents"], made["latents"], atol=1e-5, rtol=1e-5)
    rewritten = load_file(cache)
    assert torch.equal(rewritten["latents_std"], made["latents_std"])
    torch.testing.assert_close(rewritten["latents"], made["latents"], atol=1e-5, rtol=1e-5)


def test_foreground_weighted_training_with_and_without_a_latent_cache(tmp_path, monkeypatch):
    for name, data in (("render", {}), ("cached", {"latent_cache": 4, "cache_path": str(tmp_path / "c.safetensors")})):
        cfg = tiny(tmp_path, name, steps=2, checkpoint_every=2, data={"foreground_weight": 4.0, **data})
        task = make_task(cfg, torch.device("cpu"))
        batch = task.batch(0, 0, 0, 1)
        assert batch["weight"].shape == (2, 2, 8, 8) and batch["weight"].min() >= 1 and batch["weight"].max() <= 5
        assert torch.isfinite(task.loss(task.model, batch)[0])
        train(cfg, progress=False)
    # a grown cache renders only the new clips, once, for latents and maps alike; the maps equal maps from scratch
    from cinetune.training.flow import FlowMatchingTask

    rendered = []
    get = FlowMatchingTask.render
    monkeypatch.setattr(FlowMatchingTask, "render", lambda self, i: rendered.append(i) or get(self, i))
    grown = make_task(tiny(tmp_path, "grown", data={"foreground_weight": 4.0, "latent_cache": 6,
                                                    "cache_path": str(tmp_path / "c.safetensors")}), torch.device("cpu"))
    assert rendered == [4, 5]
    assert torch.equal(grown.cache["foreground"], torch.cat([grown._foreground_of([grown.train_set[i]["instance"]]).half()
                                                             for i in range(6)]))


def test_single_object_share_and_motion_term(tmp_path):
    cache = {"size": 40, "latent_cache": 40, "cache_path": str(tmp_path / "c.safetensors")}
    cfg = tiny(tmp_path, "mix", steps=2, checkpoint_every=2,
               data={**cache, "foreground_weight": 4.0, "motion_weight": 1.0, "single_object_share": 1.0})
    task = make_task(cfg, torch.device("cpu"))
    single = [i for i in range(40) if len(task.train_set.spec(i).objects) == 1 and not task.train_set.spec(i).actors]
    assert task.single.tolist() == single and single
    drawn = [i for s in range(20) for i in task.draw(s, 0, 0, 1, 40)[0]]
    assert set(drawn) <= set(single)  # share 1: every sample shows one object and no actor
    assert task.draw(3, 0, 0, 1, 40)[0] == task.draw(3, 0, 0, 1, 40)[0]  # deterministic per step (resume)
    batch = task.batch(0, 0, 0, 1)
    plain = make_task(tiny(tmp_path, "plain", data={**cache, "foreground_weight": 4.0}), torch.device("cpu"))
    # the motion term only adds to the frame-wise loss
    assert task.loss(task.model, batch)[0] > plain.loss(task.model, batch)[0]
    train(cfg, progress=False)
    half = make_task(tiny(tmp_path, "half", data={**cache, "single_object_share": 0.5}), torch.device("cpu"))
    drawn = [i for s in range(50) for i in half.draw(s, 0, 0, 1, 40)[0]]
    assert 0.5 < sum(i in single for i in drawn) / len(drawn) < 0.9 and not set(drawn) <= set(single)
    with pytest.raises(CinetuneError, match="single_object_share"):
        tiny(tmp_path, "bad", data={"single_object_share": 1.5}).validate()


def test_image_steps_train_on_the_first_latent_frame(tmp_path):
    cfg = tiny(tmp_path, "img", steps=4, checkpoint_every=4, data={"image_share": 0.5, "motion_weight": 1.0,
                                                                    "foreground_weight": 2.0})
    task = make_task(cfg, torch.device("cpu"))
    steps = [s for s in range(40) if task.image_step(s)]
    assert 8 < len(steps) < 32  # about half
    video, image = task.batch(next(s for s in range(40) if s not in steps), 0, 0, 1), task.batch(steps[0], 0, 0, 1)
    assert video["x0"].shape[2] == 2 and image["x0"].shape[2] == 1 and image["weight"].shape[1] == 1
    # an image is the clip's first latent frame: the causal VAE encodes frame 0 alone
    clip = task.train_set[0]["video"][:, :1][None]
    torch.testing.assert_close(task.backbone.codec.encode(clip), task.backbone.codec.encode(
        task.train_set[0]["video"][None])[:, :, :1], atol=1e-5, rtol=1e-4)
    assert torch.isfinite(task.loss(task.model, image)[0])  # no motion term on a single frame
    train(cfg, progress=False)
    with pytest.raises(CinetuneError, match="image_share"):
        tiny(tmp_path, "bad", data={"image_share": 1.5}).validate()


def test_resume_refuses_a_changed_training_field_and_keeps_the_record(tmp_path):
    cfg = tiny(tmp_path, "changed", steps=4, checkpoint_every=2)
    train(cfg, stop_after=2, progress=False)
    before = (Path(cfg.output_dir) / "config.yaml").read_text()
    cfg.optim.lr = 1e30
    with pytest.raises(CinetuneError, match=r"optim.lr 0.001 -> 1e\+30"):
        train(cfg, resume=True, progress=False)
    assert (Path(cfg.output_dir) / "config.yaml").read_text() == before
    cfg.optim.lr, cfg.log_every = 1e-3, 1  # how a run logs may change
    assert (train(cfg, resume=True, progress=False) / "final").is_dir()


def test_a_nan_loss_names_a_checkpoint_that_exists(tmp_path):
    cfg = tiny(tmp_path, "nan", steps=4, checkpoint_every=3, optim={"lr": 1e30, "warmup_steps": 0})
    with pytest.raises(CinetuneError) as e:
        train(cfg, progress=False)
    msg = str(e.value)
    assert "no checkpoint was written yet" in msg or Path(msg.split("checkpoint is ")[1].split(" ")[0]).is_dir()


def test_a_resumed_run_logs_the_same_rows_as_a_straight_one(tmp_path):
    over = dict(steps=6, checkpoint_every=2, log_every=4)
    straight = train(tiny(tmp_path, "straight", **over), progress=False)
    cfg = tiny(tmp_path, "resumed", **over)
    train(cfg, stop_after=2, progress=False)
    resumed = train(cfg, resume=True, progress=False)
    steps = lambda run: [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().splitlines()[1:]]  # noqa: E731
    assert steps(resumed) == steps(straight) == [1, 4, 6]


def test_a_base_lora_fine_tune_exports_a_lora_file_that_loads(tmp_path):
    from cinetune.backbones import load_backbone
    from cinetune.core.lora_file import LoraFile

    cfg = tiny(tmp_path, "lora", steps=3, lora_rank=2, optim={"lr": 1e-2})
    run = train(cfg, progress=False)
    assert not (run / "final" / "transformer").exists()
    lora = LoraFile(run / "final" / "lora")
    assert lora.tensors and all("lora_" in k for k in lora.tensors)
    backbone = load_backbone(cfg.backbone, random_init=True)
    x, t = torch.randn(1, 16, 2, 8, 8), torch.tensor([500.0])
    e = backbone.text_encoder(["a red circle"])
    with torch.no_grad():
        base = backbone.view(x, t, e)
        with lora.attach(backbone):
            assert not torch.allclose(backbone.view(x, t, e), base)  # trained: B moved off zero
    with pytest.raises(CinetuneError, match="lora_rank"):
        preset_config("toy-annotator", {"lora_rank": 4}).validate()


def test_a_cogvideox_directory_trains_with_its_own_v_prediction(tmp_path):
    import diffusers

    from tests.pipelines.test_parity import _cogvideox_components

    sched = diffusers.CogVideoXDDIMScheduler(prediction_type="v_prediction", snr_shift_scale=3.0)
    diffusers.CogVideoXPipeline(**_cogvideox_components(sched)).save_pretrained(tmp_path / "cog")
    cfg = tiny(tmp_path, "cog-run", backbone=str(tmp_path / "cog"), steps=2, checkpoint_every=2)
    run = train(cfg, progress=False)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) >= 2 and all(math.isfinite(float(r.split(",")[1])) for r in rows[1:])
    assert (run / "final" / "transformer" / "config.json").is_file()
