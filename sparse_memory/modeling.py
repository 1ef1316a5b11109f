"""Hugging Face causal LMs with product-key memory layers retrofitted into their decoders.

``MemoryLlamaForCausalLM`` (and its Qwen2/Mistral twins) is an ordinary ``PreTrainedModel``:
``save_pretrained``/``from_pretrained`` with safetensors and the memory config inside
``config.json``, ``generate()`` with the KV cache. ``retrofit(base, MemoryConfig(...))`` turns a
loaded base model into one, keeping every base weight.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    DynamicCache,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from sparse_memory.memory import MemoryConfig, ProductKeyMemory


class MemoryConfigMismatchError(ValueError):
    """A checkpoint's memory does not match the memory config it is loaded with."""


class _StopForward(Exception):
    """Raised after the last memory layer when only slot accesses are wanted."""


class MemoryModelMixin:
    """Inserts the memory layers after the base model is built, and reads slot accesses."""

    def _insert_memory_layers(self) -> None:
        memory = self.memory_config
        layers = self.model.layers
        for index in memory.layers:
            if not 0 <= index < len(layers):
                raise ValueError(f"memory layer {index} is outside the model's {len(layers)} decoder layers")
            module = ProductKeyMemory(self.config.hidden_size, memory, rms_eps=self.config.rms_norm_eps)
            block = layers[index]
            if memory.layout == "replace":
                block.mlp = module
            else:
                # Beside the MLP: the base weights keep their names, the memory's output joins the
                # MLP's on its way to the residual.
                block.memory = module
                # A plain reference, not a submodule (weight names stay), that a deep copy of
                # the model re-points at its own memory; a closure would keep the original's.
                object.__setattr__(block.mlp, "_beside_memory", module)
                block.mlp.register_forward_hook(_add_beside_memory)

    @property
    def memory_config(self) -> MemoryConfig:
        return MemoryConfig.from_dict(self.config.memory)

    def memory_layers(self) -> dict[int, ProductKeyMemory]:
        """Decoder-layer index -> its memory module."""
        layout = self.memory_config.layout
        return {
            index: self.model.layers[index].mlp if layout == "replace" else self.model.layers[index].memory
            for index in self.memory_config.layers
        }

    @contextmanager
    def _capturing(self, stop_after_memory: bool) -> Iterator[dict[int, ProductKeyMemory]]:
        memories = self.memory_layers()
        last = max(memories)
        handle = None
        if stop_after_memory:

            def stop(_module, _inputs, _output):
                raise _StopForward

            handle = memories[last].register_forward_hook(stop)
        for memory in memories.values():
            memory.capture_accesses = True
        try:
            yield memories
        finally:
            for memory in memories.values():
                memory.capture_accesses = False
                memory.last_accesses = None
            if handle is not None:
                handle.remove()

    @torch.no_grad()
    def memory_accesses(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        stop_after_memory: bool = True,
    ) -> dict[int, torch.Tensor]:
        """Slots read by every token: layer -> (batch, seq, heads * k) long, -1 at padding.

        With ``stop_after_memory`` the forward pass ends at the last memory layer, which is all
        that slot statistics need (at layer 3 of 30, nine tenths of the model are skipped).
        """
        with self._capturing(stop_after_memory) as memories:
            try:
                self(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            except _StopForward:
                pass
            accesses = {}
            for index, memory in memories.items():
                slots = memory.last_accesses.flatten(-2).clone()
                if attention_mask is not None:
                    slots[attention_mask == 0] = -1
                accesses[index] = slots
        return accesses

    @classmethod
    def from_pretrained(cls, path, *args, memory: MemoryConfig | None = None, **kwargs):
        """Load a saved memory model; ``memory`` (optional) is the config the caller expects."""
        check_memory_checkpoint(path, expected=memory)
        return super().from_pretrained(path, *args, **kwargs)


@dataclass
class PrefixStates:
    """What the decoder computes for a prefix every row of a batch opens with (a chat template's
    system prompt): its key/value states at every layer and its last position's hidden state.
    Computed once, they stand in for the prefix while nothing the prefix reads changes."""

    length: int
    keys_values: list[tuple[torch.Tensor, torch.Tensor]]  # per decoder layer, each (1, kv_heads, length, head_dim)
    last_hidden: torch.Tensor  # (1, 1, hidden), after the final norm


@torch.no_grad()
def prefix_states(causal_lm, prefix_ids: torch.Tensor) -> PrefixStates:
    """The decoder's states of ``prefix_ids`` (1-D), to pass to ``next_token_logits``."""
    out = causal_lm.model(input_ids=prefix_ids[None], use_cache=True)
    keys_values = [(layer.keys, layer.values) for layer in out.cache.layers]
    return PrefixStates(prefix_ids.numel(), keys_values, out.last_hidden_state[:, -1:])


def next_token_logits(
    causal_lm,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    at: torch.Tensor,
    prefix: PrefixStates | None = None,
):
    """Next-token logits (fp32) at the positions ``at`` (a bool mask like ``input_ids``) only: with a
    49k-token vocabulary the projection would otherwise cost more than the decoder itself on short
    sequences.

    With ``prefix`` (the states of ``input_ids``' first ``prefix.length`` tokens, the same in every
    row) only the positions after it are computed; ``at`` must not hold a position before its last.
    """
    if prefix is None:
        hidden = causal_lm.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        return causal_lm.lm_head(hidden[at]).float()
    length, rows = prefix.length, input_ids.shape[0]
    if at[:, : length - 1].any():
        raise ValueError("a position inside the shared prefix is asked for: its logits are not computed")
    cache = DynamicCache(
        ddp_cache_data=[
            (keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1)) for keys, values in prefix.keys_values
        ]
    )
    after = causal_lm.model(
        input_ids=input_ids[:, length:], attention_mask=attention_mask, cache=cache, use_cache=True
    ).last_hidden_state
    # Positions length - 1 onwards: the prefix's last position predicts the first token after it.
    hidden = torch.cat([prefix.last_hidden.to(after.dtype).expand(rows, 1, -1), after], dim=1)
    return causal_lm.lm_head(hidden[at[:, length - 1 :]]).float()


def _add_beside_memory(mlp, inputs, output):
    """The beside layout: the memory's output joins the MLP's."""
    return output + mlp._beside_memory(inputs[0])


def _memory_config_class(base: type) -> type:
    class Config(base):
        model_type = f"memory_{base.model_type}"

        def __init__(self, memory: dict | None = None, **kwargs):
            super().__init__(**kwargs)
            if memory is None:
                raise ValueError(
                    f"{type(self).__name__} needs a memory config; to add memory to a plain "
                    "checkpoint use sparse_memory.retrofit()"
                )
            self.memory = MemoryConfig.from_dict(memory).to_dict() if isinstance(memory, dict) else memory.to_dict()

    Config.__name__ = Config.__qualname__ = f"Memory{base.__name__}"
    return Config


def _memory_model_class(base: type, config_class: type) -> type:
    class Model(MemoryModelMixin, base):
        def __init__(self, config):
            super().__init__(config)
            self._insert_memory_layers()

    Model.config_class = config_class
    Model.__name__ = Model.__qualname__ = f"Memory{base.__name__}"
    return Model


MemoryLlamaConfig = _memory_config_class(LlamaConfig)
MemoryLlamaForCausalLM = _memory_model_class(LlamaForCausalLM, MemoryLlamaConfig)
MemoryQwen2Config = _memory_config_class(Qwen2Config)
MemoryQwen2ForCausalLM = _memory_model_class(Qwen2ForCausalLM, MemoryQwen2Config)
MemoryMistralConfig = _memory_config_class(MistralConfig)
MemoryMistralForCausalLM = _memory_model_class(MistralForCausalLM, MemoryMistralConfig)

# Base model_type -> memory model class; Llama-like decoders with ``model.layers[i].mlp``.
MEMORY_MODEL_CLASSES: dict[str, type] = {
    "llama": MemoryLlamaForCausalLM,
    "qwen2": MemoryQwen2ForCausalLM,
    "mistral": MemoryMistralForCausalLM,
}
for _cls in MEMORY_MODEL_CLASSES.values():
    AutoConfig.register(_cls.config_class.model_type, _cls.config_class, exist_ok=True)
    AutoModelForCausalLM.register(_cls.config_class, _cls, exist_ok=True)


def retrofit(base: PreTrainedModel, memory: MemoryConfig) -> PreTrainedModel:
    """A memory model holding every weight of ``base`` plus freshly initialised memory layers."""
    model_type = base.config.model_type
    if model_type not in MEMORY_MODEL_CLASSES:
        raise ValueError(f"cannot retrofit model_type {model_type!r}; supported: {sorted(MEMORY_MODEL_CLASSES)}")
    cls = MEMORY_MODEL_CLASSES[model_type]
    settings = base.config.to_dict()
    for key in ("model_type", "architectures", "quantization_config", "_name_or_path"):
        settings.pop(key, None)
    config = cls.config_class(memory=memory.to_dict(), **settings)
    model = cls(config).to(dtype=base.dtype, device=base.device)
    # In the "replace" layout the memory takes the MLP's place, so the old MLP weights are dropped.
    replaced = tuple(f"model.layers.{i}.mlp." for i in memory.layers) if memory.layout == "replace" else ()
    kept = {key: value for key, value in base.state_dict().items() if not key.startswith(replaced)}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    not_memory = [key for key in missing if ".memory." not in key and not key.startswith(replaced)]
    if not_memory or unexpected:
        raise RuntimeError(f"retrofit lost weights: missing {not_memory[:5]}, unexpected {unexpected[:5]}")
    model.generation_config = base.generation_config
    return model.eval()


def _expected_memory_shapes(config: dict, memory: MemoryConfig) -> dict[str, tuple[int, ...]]:
    hidden = config["hidden_size"]
    value_dim = memory.value_dim or hidden
    shapes = {
        "query_proj.weight": (memory.heads * memory.key_dim, hidden),
        "sub_keys_1": (memory.heads, memory.n_keys, memory.key_dim // 2),
        "sub_keys_2": (memory.heads, memory.n_keys, memory.key_dim // 2),
        "values": (memory.n_slots, value_dim),
        "out_proj.weight": (hidden, value_dim),
    }
    if memory.gate == "silu":
        shapes["gate_proj.weight"] = (value_dim, hidden)
    prefix = "memory." if memory.layout == "beside" else "mlp."
    return {f"model.layers.{i}.{prefix}{name}": shape for i in memory.layers for name, shape in shapes.items()}


def check_memory_checkpoint(path: str | Path, expected: MemoryConfig | None = None) -> MemoryConfig:
    """Refuse a memory checkpoint whose weights or config differ from what is expected.

    Checks (without loading weights) that the directory holds a memory model, that its memory
    config equals ``expected`` when given, and that every memory tensor has the shape the
    config implies: a mismatch is an error that names the difference, never a silent reshape.
    """
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"no config.json in {path}: not a saved model directory")
    config = json.loads(config_file.read_text())
    if "memory" not in config:
        raise MemoryConfigMismatchError(
            f"{path} is a plain {config.get('model_type')} checkpoint with no memory layers; "
            "create a memory model from it with sparse_memory.retrofit()"
        )
    saved = MemoryConfig.from_dict(config["memory"])
    if expected is not None and saved != expected:
        differences = {
            name: (value, getattr(expected, name))
            for name, value in saved.to_dict().items()
            if value != getattr(expected, name)
        }
        lines = ", ".join(f"{name}: checkpoint {a!r} vs requested {b!r}" for name, (a, b) in differences.items())
        raise MemoryConfigMismatchError(
            f"memory config of {path} does not match the requested one ({lines}); "
            "load it without a memory argument, or retrofit the base model with the new config"
        )
    shapes = {}
    for weights in sorted(path.glob("*.safetensors")):
        with safe_open(str(weights), framework="pt") as handle:
            for key in handle.keys():
                shapes[key] = tuple(handle.get_slice(key).get_shape())
    for key, shape in _expected_memory_shapes(config, saved).items():
        if key not in shapes:
            raise MemoryConfigMismatchError(
                f"{path}: memory config places a memory at {key.rsplit('.', 2)[0]} but the weights "
                f"have no {key}; the config.json and the weights come from different models"
            )
        if shapes[key] != shape:
            raise MemoryConfigMismatchError(
                f"{path}: {key} has shape {shapes[key]} but the memory config implies {shape}; "
                "the config.json and the weights come from different memory configs"
            )
    return saved
