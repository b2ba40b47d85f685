"""The pieces every method builds on: per-model adapter state with block- and attention-level hooks, removable
handles, the method protocols, selective fine-tuning, LoRA, saved-adapter files and the figure helper."""

from .attention import add_attention_hooks
from .files import find_manifest, load_pretrained, load_tensors, read_manifest, save_tensors, write_adapter_dir
from .finetune import apply_trained_state, enable_finetune, select_parameters, trained_state
from .lora import DEFAULT_LORA_TARGETS, add_lora, load_lora_state, lora_state
from .protocol import AdapterModel, AttachedDenoiser, Attachment
from .state import AdapterState, Handle, add_residual_hooks, state_of

__all__ = ["AdapterModel", "AdapterState", "AttachedDenoiser", "Attachment", "DEFAULT_LORA_TARGETS", "Handle",
           "add_attention_hooks", "add_lora", "add_residual_hooks", "apply_trained_state", "enable_finetune",
           "find_manifest", "load_lora_state", "load_pretrained", "load_tensors", "lora_state", "read_manifest",
           "save_tensors", "select_parameters", "state_of", "trained_state", "write_adapter_dir"]
