"""Training task of adaptive video distillation (paper Algorithm 1 on DMD2): a student and a critic ("fake score"),
both initialised from the frozen teacher ("real score"); the critic trains every step with flow matching on the
student's samples, the student every `generator_every`-th step with the DMD gradient (Eq. 4), the temporal
regularisation on the same sample (Eq. 8) and the adaptive regression loss on real clips (Eq. 5-7)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F

from ...errors import CinetuneError
from ...io import atomic_dir, video_grid, write_json, write_video
from ...training.cache import latents_column, text_column
from ...training.config import TrainConfig
from ...training.flow import FlowMatchingTask, task_backbone
from ...training.objectives import flow_matching_inputs, shift_sigmas
from ...training.task import Update, step_generator
from .guards import collapse_reasons, guard_scores, health
from .losses import AdaptiveRegression, dmd_loss, regression_error, temporal_loss
from .model import StudentModel
from .sampler import few_step_sample, noise_like, student_sigmas, to_x0


class StudentAndCritic(torch.nn.Module):
    """The two trained transformers under one module (what accelerate wraps); forward(role, ...) runs one of them,
    so each update's one gradient-carrying call goes through the wrapper."""

    def __init__(self, view, student: torch.nn.Module, critic: torch.nn.Module):
        super().__init__()
        self.student, self.critic, self.view = student, critic, view

    def forward(self, role: str, xt: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.view(xt, t, emb, module=getattr(self, role))


def _child(g: torch.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=g)))


class DistillTask(FlowMatchingTask):
    find_unused_parameters = True  # each update's backward reaches only its own transformer

    def __init__(self, cfg: TrainConfig, device: torch.device):
        super().__init__(cfg, device)
        c = cfg.distill
        if not cfg.data.latent_cache:
            raise CinetuneError("distill needs data.latent_cache > 0: its real clips and prompts come from the cache")
        if c.interpolator:  # bundled at export: a missing one fails now, not after the training
            from .interpolator import find_interpolator

            find_interpolator(c.interpolator)
        self.backbone = task_backbone(cfg, device, frozen=True)
        self.teacher = self.backbone.transformer.eval()
        student, critic = copy.deepcopy(self.teacher), copy.deepcopy(self.teacher)
        for m in (student, critic):
            m.requires_grad_(True).train()
        self.model = StudentAndCritic(self.backbone.view, student, critic)
        self.init_flow()
        path = Path(cfg.data.cache_path or Path(cfg.output_dir) / "latents.safetensors")
        self.cache = self.build_cache(path, cfg.data.latent_cache, [latents_column(self.backbone, device),
                                                                   text_column(self.backbone)])
        self.shift = c.shift or float(self.backbone.scheduler.config.get("shift", 1.0))
        self.sigmas = student_sigmas(c.timesteps(), self.shift)
        self.regression = AdaptiveRegression(len(self.sigmas), c.regression_ema, c.regression_k, c.regression_weight,
                                             c.ema_order, c.regression)
        self.best, self.stale, self.stop_requested, self.teacher_guard = None, 0, False, None

    # -- what trains ----------------------------------------------------------------------------------------------
    def updates(self) -> list[Update]:
        c = self.cfg.distill
        g = c.generator_every
        student = [{"params": list(self.model.student.parameters()), "lr_scale": 1.0}]
        critic = [{"params": list(self.model.critic.parameters()), "lr_scale": 1.0}]
        # Algorithm 1: the student's step comes before the critic's on the steps both run, and the critic has run
        # g - 1 steps alone on the student's current samples before each (DMD2's two-timescale rule).
        return [Update("student", student, every=g, offset=g - 1),
                Update("critic", critic, lr_scale=c.critic_lr_scale, ema=False)]

    def enable_gradient_checkpointing(self) -> None:
        self.model.student.enable_gradient_checkpointing()
        self.model.critic.enable_gradient_checkpointing()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The regression's running means and the early stop's best score and count (a resumed run decides alike)."""
        best = float("-inf") if self.best is None else self.best
        return {"regression_mean": self.regression.mean.clone(), "best": torch.tensor([best, float(self.stale)])}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != {"regression_mean", "best"} or state["regression_mean"].shape != self.regression.mean.shape:
            raise CinetuneError(f"this checkpoint's task state does not fit distill ({sorted(state)[:3]})")
        self.regression.mean = state["regression_mean"].clone()
        best, stale = state["best"].tolist()
        self.best, self.stale = (None if best == float("-inf") else best), int(stale)

    # -- data -----------------------------------------------------------------------------------------------------
    def batch(self, step: int, micro: int, rank: int, world: int) -> dict:
        """Real clips and prompts (no caption dropout: the teacher's guidance needs the prompt) and this step's random
        choices: the rollout length k (one per step, as backward simulation samples it) and per-sample generators."""
        idx, gens = self.draw(step, micro, rank, world, self.cache["latents"].shape[0])
        idx_t = torch.tensor(idx)
        k = int(torch.randint(0, len(self.sigmas), (1,), generator=step_generator(self.cfg.seed, 5, step)))
        per = {name: [_child(g) for g in gens] for name in ("rollout", "dmd", "regression", "critic")}
        return {"x0": self.cache["latents"][idx_t].to(self.device), "emb": self.cache["text"][idx_t].float().to(
            self.device), "k": k, "gens": gens, **per}

    # -- losses ---------------------------------------------------------------------------------------------------
    def _rollout(self, batch: dict, k: int) -> torch.Tensor:
        """The student's own few-step rollout, without gradients, to the noisy input of step k."""
        view, student, emb = self.backbone.view, self.model.student, batch["emb"]
        with torch.no_grad():
            return few_step_sample(lambda x, t, i: view(x, t, emb, module=student), tuple(batch["x0"].shape),
                                   self.sigmas, batch["rollout"], self.device, stop=k)

    def update_loss(self, name: str, model, batch: dict) -> tuple[torch.Tensor, dict]:
        return self.student_loss(model, batch) if name == "student" else self.critic_loss(model, batch)

    def student_loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        c, B, k = self.cfg.distill, batch["x0"].shape[0], batch["k"]
        xk = self._rollout(batch, k)
        inputs, ts = [xk], [torch.full((B,), self.sigmas[k] * 1000.0, device=self.device)]
        reg = c.regression != "off"
        if reg:  # the regression's forward rides in the same call (one gradient-carrying forward per update)
            steps = torch.stack([torch.randint(0, len(self.sigmas), (1,), generator=g) for g in batch["regression"]])[:, 0]
            sig = torch.tensor(self.sigmas)[steps].to(self.device)
            noise = noise_like(tuple(batch["x0"].shape), batch["regression"], self.device)
            yt, _, _ = flow_matching_inputs(batch["x0"], sig, noise)
            inputs.append(yt), ts.append(sig * 1000.0)
        v = model("student", torch.cat(inputs), torch.cat(ts), batch["emb"].repeat(len(inputs), 1, 1))
        x = to_x0(xk, v[:B], self.sigmas[k])
        batch["generated"] = x.detach()
        loss_dmd, _ = self._dmd(x, batch)
        loss_tr, tr_value = temporal_loss(x, c.temporal_threshold, c.temporal_eps)
        loss = loss_dmd + c.temporal_weight * loss_tr
        extra = {"dmd": float(loss_dmd.detach()), "temporal": float(tr_value), "k": k}
        if reg:
            err = regression_error(v[B:], yt, batch["x0"], noise, sig, c.regression_target)
            loss_reg, w = self.regression(err, steps)
            loss = loss + loss_reg
            extra.update(regression=float(err.detach().mean()), weight=float(w.mean()))
        return loss, extra

    def _dmd(self, x: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 4: noise the sample to u ~ U(dmd_t_min, dmd_t_max) (shifted), guided teacher vs critic clean estimates."""
        c, B = self.cfg.distill, x.shape[0]
        u = torch.cat([c.dmd_t_min + (c.dmd_t_max - c.dmd_t_min) * torch.rand(1, generator=g) for g in batch["dmd"]])
        sig = shift_sigmas(u, self.shift).to(self.device)
        xt, t, _ = flow_matching_inputs(x.detach(), sig, noise_like(tuple(x.shape), batch["dmd"], self.device))
        view, emb = self.backbone.view, batch["emb"]
        with torch.no_grad():
            both = view(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([emb, self.empty.expand_as(emb)]),
                        module=self.teacher)
            cond, uncond = both.chunk(2)
            real = to_x0(xt, uncond + c.guidance * (cond - uncond), sig)
            fake = to_x0(xt, view(xt, t, emb, module=self.model.critic), sig)
        return dmd_loss(x, real, fake)

    def critic_loss(self, model, batch: dict) -> tuple[torch.Tensor, dict]:
        """Flow matching of the critic on the student's samples (stop-grad): those of this step's student update,
        else a fresh no-grad sample at this step's rollout length."""
        x = batch.get("generated")
        if x is None:
            k, B = batch["k"], batch["x0"].shape[0]
            xk = self._rollout(batch, k)
            with torch.no_grad():
                v = self.backbone.view(xk, torch.full((B,), self.sigmas[k] * 1000.0, device=self.device),
                                       batch["emb"], module=self.model.student)
            x = to_x0(xk, v, self.sigmas[k])
        u = torch.cat([torch.rand(1, generator=g) for g in batch["critic"]])
        sig = shift_sigmas(u, self.cfg.timestep_shift).to(self.device)
        xt, t, target = flow_matching_inputs(x, sig, noise_like(tuple(x.shape), batch["critic"], self.device))
        return F.mse_loss(model("critic", xt, t, batch["emb"]).float(), target.float()), {}

    # -- validation: collapse guards, best checkpoint, early stop -------------------------------------------------
    def _videos(self, prompts_emb: torch.Tensor, student: bool):
        d, B = self.cfg.data, prompts_emb.shape[0]
        shape = (B, *self.backbone.codec.latent_shape(d.frames, d.height, d.width))
        if student:
            view, module = self.backbone.view, self.model.student
            lat = few_step_sample(lambda x, t, i: view(x, t, prompts_emb, module=module), shape, self.sigmas,
                                  torch.Generator().manual_seed(self.cfg.seed), self.device)
        else:
            from ...pipelines import TextToVideoPipeline

            lat = TextToVideoPipeline(self.backbone, self.device)(
                prompt_embeds=prompts_emb, frames=d.frames, height=d.height, width=d.width,
                steps=self.cfg.distill.teacher_steps, guidance=self.cfg.distill.guidance, seed=self.cfg.seed,
                progress=False, decode=False).latents
        from ...pipelines.text_to_video import to_uint8

        return list(to_uint8(self.backbone.codec.decode(lat)))

    @torch.no_grad()
    def validate(self, out_dir: Path, step: int) -> dict:
        c = self.cfg.distill
        n = min(c.guard_prompts, len(self.val_set))
        emb = self.backbone.text_encoder([self.val_set[i]["caption"] for i in range(n)]).to(self.device)
        self.model.eval()
        if self.teacher_guard is None:  # the teacher's videos on the same prompts and seed, once per run
            self.teacher_videos = self._videos(emb, student=False)
            self.teacher_guard = guard_scores(self.teacher_videos, self.teacher_videos)
        videos = self._videos(emb, student=True)
        self.model.train()
        scores = guard_scores(videos, self.teacher_videos)
        reasons, h = collapse_reasons(scores, self.teacher_guard), health(scores, self.teacher_guard)
        write_video(out_dir / "samples" / f"step-{step:07d}.gif", video_grid(self.teacher_videos + videos, cols=n))
        history = self._guard_history(out_dir, step, {**scores, "health": h, "collapsed": reasons})
        if reasons:
            print(f"step {step}: collapse guard: {'; '.join(reasons)}")
        if self.best is None or h > self.best:
            self.best, self.stale = h, 0
            with atomic_dir(out_dir / "best") as tmp:
                self._student().save(tmp / "student")
        else:
            self.stale += 1
            self.stop_requested = bool(c.early_stop) and self.stale >= c.early_stop
        _plot_guards(history, out_dir / "guards.png", self.teacher_guard)
        return {f"guard_{k}": v for k, v in scores.items()} | {"health": h, "collapsed": len(reasons)}

    def _guard_history(self, out_dir: Path, step: int, row: dict) -> list[dict]:
        import json

        path = out_dir / "guards.json"
        rows = json.loads(path.read_text()) if path.is_file() else []
        rows = [r for r in rows if r["step"] < step] + [{"step": step, **row}]
        write_json(path, rows)
        return rows

    def _student(self) -> StudentModel:
        c = self.cfg.distill
        from .interpolator import load_interpolator

        interp = load_interpolator(c.interpolator) if c.interpolator else None
        return StudentModel.from_transformers(self.teacher, self.model.student, c.timesteps(), self.shift,
                                              self.cfg.backbone, teacher=self.cfg.init, interpolator=interp,
                                              half_steps=c.half_steps,
                                              info={"steps": self.cfg.steps, "preset": self.cfg.preset})

    def export(self, out_dir: Path) -> None:
        """final/student: the best validation's student when early stopping is on, else the last (EMA) weights."""
        best = Path(self.cfg.output_dir) / "best" / "student"
        if self.cfg.distill.early_stop and best.is_dir():
            import shutil

            shutil.copytree(best, out_dir / "student")
        else:
            self._student().save(out_dir / "student")


def _plot_guards(rows: list[dict], png: Path, teacher: dict) -> None:
    from ...core.figures import figure

    keys = ("dynamic", "oversaturation", "flashing", "tearing")
    with figure(png, 1, 4, figsize=(14, 3), dpi=100) as (fig, axes):
        for ax, k in zip(axes, keys):
            ax.plot([r["step"] for r in rows], [r[k] for r in rows], marker="o", label="student")
            ax.axhline(teacher[k], color="grey", ls="--", label="teacher")
            ax.set_title(k)
            ax.set_xlabel("step")
        axes[0].legend()
