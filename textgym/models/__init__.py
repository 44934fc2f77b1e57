"""Causal language models for textgym: the shared bundle type, the loader and tiny test models."""

from textgym.models.bundle import ModelBundle
from textgym.models.cached_lm import CachedLM
from textgym.models.loader import DEFAULT_MODEL, clear_model_cache, load_model, resolve_device
from textgym.models.tiny import tiny_model

__all__ = [
    "DEFAULT_MODEL",
    "CachedLM",
    "ModelBundle",
    "clear_model_cache",
    "load_model",
    "resolve_device",
    "tiny_model",
]
