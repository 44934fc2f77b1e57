"""A trained policy as a plain Hugging Face model folder, loadable with no textgym installed.

``AutoModelForCausalLM.from_pretrained(folder)`` and ``pipeline("text-generation", model=folder)`` read
it; a LoRA adapter is merged into the weights first, so the folder holds one ordinary model.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from textgym.models import ModelBundle


def merged_model(lm: torch.nn.Module) -> PreTrainedModel:
    """The Hugging Face model an agent's ``lm`` computes, with any LoRA adapter merged into its weights.

    ``lm`` is a plain causal LM, or the view textgym's agents train LoRA through (an adapter added under
    its own name to a model it shares with the env's reference, which is left as it was).
    """
    base, adapter = getattr(lm, "base", None), getattr(lm, "name", None)
    if not isinstance(lm, PreTrainedModel) and isinstance(base, PreTrainedModel) and adapter:
        merged = copy.deepcopy(base)
        merged.enable_adapters()
        merged.set_adapter(adapter)
        for module in merged.modules():
            if hasattr(module, "base_layer") and hasattr(module, "merge"):  # a peft LoRA layer
                module.merge(adapter_names=[adapter])
        state = {
            key.replace(".base_layer", ""): value
            for key, value in merged.state_dict().items()
            if "lora_" not in key
        }
        plain = AutoModelForCausalLM.from_config(base.config, dtype=base.dtype)
        plain.load_state_dict(state)
        plain.generation_config = base.generation_config
        return plain.to(base.device).eval()
    if not isinstance(lm, PreTrainedModel):
        raise TypeError(f"cannot export a {type(lm).__name__}: expected a Hugging Face causal LM")
    return lm


def export(agent: Any, folder: str | os.PathLike[str], env_id: str | None = None) -> Path:
    """Write ``agent``'s LM and its env's tokenizer to ``folder`` with ``save_pretrained``.

    Args:
        agent: an agent with an ``lm`` attribute (textgym's agents and adapters), or a causal LM.
        env_id: the env whose tokenizer goes with the model; default: the agent's ``env_id``.
    """
    lm = agent if isinstance(agent, torch.nn.Module) else getattr(agent, "lm", None)
    if not isinstance(lm, torch.nn.Module):
        raise TypeError(
            f"{type(agent).__name__} has no `lm` (the causal LM it samples from): nothing to export"
        )
    env_id = env_id or getattr(agent, "env_id", None)
    if env_id is None:
        raise ValueError("name the env whose tokenizer goes with the model (env_id)")
    env = gym.make(env_id)
    bundle: ModelBundle = env.unwrapped.model
    folder = Path(folder)
    model = merged_model(lm)
    model.save_pretrained(folder)
    bundle.tokenizer.save_pretrained(folder)
    env.close()
    return folder
