"""Control methods on a frozen DiT: ControlNeXt-DiT, the DiT-ControlNet baseline and channel-concat control."""

from ..registry import Flag, Method
from .config import PRESETS, ControlConfig


def _adjust(flags: dict, overrides: dict) -> dict:
    """A run for another method gets its own default output directory."""
    method = flags.get("control", {}).get("method")
    return {"output_dir": f"runs/control-{method}"} if method and "output_dir" not in overrides else {}


METHOD = Method(
    name="control", summary="ControlNeXt-DiT, DiT-ControlNet or channel concat on a frozen DiT",
    section="control", config=ControlConfig, presets=PRESETS, default_preset="toy-control",
    manifest="cinetune_control.json", model="cinetune.methods.control.model:ControlModel",
    task="cinetune.methods.control.task:ControlTask", benches={"control": "cinetune.methods.control.bench"},
    flags=(Flag("--method", "control.method", "controlnext | dit-controlnet | concat"),
           Flag("--conditions", "control.conditions", "comma list, e.g. canny,depth,pose")),
    adjust=_adjust, card="cinetune.methods.control.card:card",
    contract="cinetune.methods.control.contract:examples")
