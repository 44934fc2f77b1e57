"""Agent checkpoints: written atomically, read back with a clear error for anything that is not one.

A checkpoint is one ``torch.save`` file of plain tensors and values (loadable with ``weights_only=True``):
the agent's class name and config, its counters, the policy's trained weights (only the adapter's under
LoRA), the optimizer, the env's KL controller and the algorithm's own extras.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = "textgym-agent-v2"
# v1 (textgym 0.1 before the policy module) kept the LM under "model" and PPO's head under "value_head".
_V1_FORMAT = "textgym-agent-v1"


def is_plain(value: Any) -> bool:
    """Whether ``value`` is stored as it is (in a checkpoint, a config file): None, str, int, float, bool."""
    return value is None or isinstance(value, str | int | float | bool)


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or from another agent."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` atomically: a crash mid-write never leaves a half-written file there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike[str], agent: str) -> dict[str, Any]:
    """Read and validate a checkpoint of an ``agent`` (class name), or raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}: expected a file written by {agent}.save()")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a textgym checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if isinstance(state, dict) and state.get("format") == _V1_FORMAT and "model" in state:
        state["policy"] = {"lm": state.pop("model"), "value_head": state.pop("value_head", None)}
        state["format"] = CHECKPOINT_FORMAT
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a {CHECKPOINT_FORMAT} checkpoint")
    if state.get("agent") != agent:
        raise CheckpointError(f"{str(path)!r} holds a {state.get('agent')} checkpoint, not a {agent} one")
    return state
