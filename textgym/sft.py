"""Supervised fine-tuning on demonstrations: the warm start of InstructGPT's pipeline, before RL.

```python
from textgym.sft import SFTConfig, sft

sft("textgym/Arithmetic-v0", out="arith-sft")  # 512 worked answers from the task's own generator
# then RL from it; the SFT model is also the KL reference, as in InstructGPT:
#   textgym train --env textgym/Arithmetic-v0 --model arith-sft --out runs/arith-rl
```

Demonstrations are ``(prompt, completion)`` pairs: a JSONL file of ``{"prompt": str, "completion": str}``
lines, or drawn from the env's train split with the task's own :meth:`~textgym.task.Task.demonstration`
(the toy tasks' targets, Arithmetic's worked answers). Each prompt is encoded exactly as the env
encodes it (its chat template, its budget), the completion follows with EOS, and the loss is the mean
cross-entropy over the completion's tokens and EOS (TRL's ``completion_only_loss``). The result is a plain
Hugging Face folder that :func:`textgym.models.load_model`, ``textgym train --model`` and
``textgym eval --policy`` read.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from textgym.jsonl import read_jsonl
from textgym.models import ModelBundle, load_model, resolve_device


class DemonstrationError(ValueError):
    """A demonstrations file line that is not ``{"prompt": str, "completion": str}``."""


@dataclass
class SFTConfig:
    """How :func:`sft` trains."""

    learning_rate: float = 1e-5  # AdamW step size (1e-5 for pretrained LMs; 1e-3 trains the tiny models)
    batch_size: int = 8  # demonstrations per optimizer step
    epochs: int = 1  # passes over the demonstrations
    examples: int = 512  # demonstrations drawn from the task when no file is given
    max_grad_norm: float = 1.0  # gradient clipping (global L2 norm)
    weight_decay: float = 0.0  # AdamW weight decay
    seed: int = 0  # seeds the drawn examples and the batch order
    device: str = "auto"  # 'auto': CUDA when available, else CPU


def read_demonstrations(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``(prompt, completion)`` pairs of a JSONL file; a bad line raises naming its number and field."""
    pairs = []
    for where, data in read_jsonl(path, DemonstrationError):
        if not isinstance(data, dict):
            raise DemonstrationError(f"{where}: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"prompt", "completion"})
        if unknown:
            raise DemonstrationError(
                f"{where}: unknown field(s) {unknown}; expected 'prompt' and 'completion'"
            )
        for key in ("prompt", "completion"):
            if not isinstance(data.get(key), str):
                raise DemonstrationError(
                    f"{where}: field {key!r} must be a string, got {type(data.get(key)).__name__}"
                )
        pairs.append((data["prompt"], data["completion"]))
    if not pairs:
        raise DemonstrationError(f"{path}: no demonstrations")
    return pairs


def task_demonstrations(env_id: str, count: int, seed: int = 0, **env_kwargs: Any) -> list[tuple[str, str]]:
    """``count`` ``(prompt, completion)`` pairs from the env's train split, written by its task."""
    env = gym.make(env_id, **env_kwargs).unwrapped
    rng = np.random.default_rng(seed)
    examples = [env.task.sample(rng, "train") for _ in range(count)]
    pairs = [(ex["prompt"], env.task.demonstration(ex)) for ex in examples]
    env.close()
    return pairs


def sft(
    env_id: str,
    demonstrations: list[tuple[str, str]] | None = None,
    *,
    model: str | ModelBundle | None = None,
    out: str | os.PathLike[str] | None = None,
    config: SFTConfig | None = None,
    progress: bool = True,
    **env_kwargs: Any,
) -> tuple[ModelBundle, list[float]]:
    """Fine-tune ``model`` (default: the env's) on ``demonstrations`` (default: the task's own).

    Returns:
        The trained model (eval mode, frozen, like :func:`load_model`'s) and the loss of every step.
    """
    cfg = config or SFTConfig()
    device = resolve_device(cfg.device)
    if demonstrations is None:
        demonstrations = task_demonstrations(env_id, cfg.examples, cfg.seed, **env_kwargs)
    if isinstance(model, str):
        model = load_model(model, device=device)
    env = gym.make(env_id, **env_kwargs, **({"model": model} if model is not None else {})).unwrapped
    bundle = (model or env.model).trainable_copy()
    lm, tokenizer = bundle.model.to(device), bundle.tokenizer
    eos = env.eos_token_ids[0]
    rows = []
    for prompt, completion in demonstrations:
        prompt_ids = env.encode_prompt(prompt)
        completion_ids = [*tokenizer(completion, add_special_tokens=False)["input_ids"], eos]
        rows.append((prompt_ids, completion_ids))
    env.close()
    # Fused, as the agents' AdamW (agents/base.py): the per-tensor loop is a third of a CPU step.
    optimizer = torch.optim.AdamW(
        lm.parameters(),
        lr=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        fused=device.type in ("cpu", "cuda"),
    )
    rng = np.random.default_rng(cfg.seed)
    steps = cfg.epochs * math.ceil(len(rows) / cfg.batch_size)
    losses: list[float] = []
    lm.train()
    with tqdm(total=steps, desc="sft", unit="step", disable=not progress) as bar:
        for _ in range(cfg.epochs):
            order = rng.permutation(len(rows))
            for start in range(0, len(rows), cfg.batch_size):
                ids, mask, labels = _batch(
                    [rows[i] for i in order[start : start + cfg.batch_size]], env.pad_token_id
                )
                out_ = lm(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device))
                optimizer.zero_grad()
                out_.loss.backward()
                torch.nn.utils.clip_grad_norm_(lm.parameters(), cfg.max_grad_norm)
                optimizer.step()
                losses.append(float(out_.loss.detach()))
                bar.update()
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    lm.eval().requires_grad_(False)
    if out is not None:
        out = Path(out)
        lm.save_pretrained(out)
        tokenizer.save_pretrained(out)
        (out / "sft.json").write_text(
            json.dumps(
                {"env": env_id, "demonstrations": len(rows), "config": asdict(cfg), "losses": losses},
                indent=1,
            )
        )
    return ModelBundle(
        model=lm, tokenizer=tokenizer, name=str(out) if out is not None else bundle.name
    ), losses


def _batch(
    rows: list[tuple[list[int], list[int]]], pad: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``(B, L)`` ids, mask and labels (-100 on the prompt and padding: completion-only loss)."""
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for r, (prompt, completion) in enumerate(rows):
        n = len(prompt) + len(completion)
        ids[r, :n] = torch.tensor(prompt + completion)
        mask[r, :n] = 1
        labels[r, len(prompt) : n] = torch.tensor(completion)
    return ids, mask, labels
