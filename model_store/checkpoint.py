"""The base checkpoint every process starts from: the prepared memory model and its
background statistics, shared by all instances (each instance keeps its own ledger)."""

from __future__ import annotations

from pathlib import Path

from model_store.settings import ServiceSettings
from sparse_memory.prepare import load_memory_model, prepare
from sparse_memory.slots import BackgroundStats


def checkpoint_dir(settings: ServiceSettings, log=print) -> Path:
    """The memory model to serve; prepares the default one on first use (with progress)."""
    if settings.memory_model is not None:
        return settings.memory_model
    return prepare(settings, log=log).memory


def load_checkpoint(settings: ServiceSettings, log=print):
    """(directory, model, tokenizer, background statistics) of the base checkpoint, on the
    configured device."""
    directory = checkpoint_dir(settings, log)
    model, tokenizer = load_memory_model(directory, settings.torch_device())
    return directory, model, tokenizer, BackgroundStats.load(directory)
