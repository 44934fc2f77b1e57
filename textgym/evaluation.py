"""Evaluate a policy on a textgym task: score, KL to the reference, length, EOS rate, diversity, fluency."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from textgym.agent import Agent
from textgym.rollout import Episodes, PredictPolicy, sample_episodes


@dataclass
class Evaluation:
    """Figures over ``episodes`` held-out episodes (RL4LMs reports the same beside reward)."""

    env_id: str
    episodes: int
    score: float  # mean task score
    score_stderr: float  # standard error of that mean
    kl: float  # mean per-episode KL(pi || pi_ref), summed k1 over tokens; NaN for predict-only policies
    length: float  # mean completion length in tokens
    eos_rate: float  # fraction of episodes ended by EOS or a stop sequence rather than the budget
    distinct_1: float  # unique unigrams / all unigrams over every completion (whitespace words)
    distinct_2: float  # the same for bigrams
    perplexity: float  # the reference model's perplexity of the completions, per generated token
    completions: list[str] = field(repr=False, default_factory=list)
    prompts: list[str] = field(repr=False, default_factory=list)
    scores: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def summary(self) -> dict[str, Any]:
        """The scalar figures, for tables and logs."""
        return {k: v for k, v in asdict(self).items() if k not in ("completions", "prompts", "scores")}

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write the figures, prompts, completions and scores as JSON (written whole, then renamed)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({**asdict(self), "scores": self.scores.tolist()}, indent=1))
        os.replace(tmp, path)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Evaluation:
        data = json.loads(Path(path).read_text())
        return cls(**{**data, "scores": np.asarray(data["scores"], dtype=np.float64)})


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): unique n-grams over all n-grams, across all texts; 0 with none."""
    grams = [
        tuple(words[i : i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0


def sampled_policy(agent: Any, envs: Any) -> Any:
    """What :func:`~textgym.rollout.sample_episodes` samples for ``agent``: ``"reference"`` is the env's
    reference model (its own model when it runs none), an agent with an ``lm`` is that LM, anything else
    (a causal LM, an object with ``predict``) is itself."""
    if isinstance(agent, str):
        env = envs.unwrapped
        return (env.ref_model or env.model).model
    if not isinstance(agent, torch.nn.Module) and isinstance(getattr(agent, "lm", None), torch.nn.Module):
        return agent.lm
    return agent


def evaluate(
    agent: Agent | PredictPolicy | torch.nn.Module | Literal["reference"],
    env_id: str,
    episodes: int = 64,
    *,
    split: str = "test",
    seed: int = 0,
    num_envs: int = 8,
    temperature: float = 1.0,
    deterministic: bool = False,
    **env_kwargs: Any,
) -> Evaluation:
    """Run ``episodes`` episodes of ``agent`` on ``env_id`` and measure them.

    Args:
        agent: what writes the completions. A causal LM sharing the env's tokenizer, sampled with a KV
            cache; an :class:`~textgym.agent.Agent` with an ``lm`` attribute (textgym's agents, the
            adapters), whose LM is sampled so; any object with SB3-style ``predict(obs,
            deterministic=...)`` (its KL is unknown: NaN); or ``"reference"`` to sample from the env's
            own (reference) model, the zero-shot baseline.
        env_id: a registered id, e.g. ``"textgym/Sentiment-v0"``.
        episodes: how many episodes (rounded up to a multiple of ``num_envs``).
        split: the task split the prompts come from; ``"test"`` holds prompts never trained on.
        seed: seeds the prompts (env ``i`` of batch ``b`` is reset with ``seed + b * num_envs + i``) and
            the sampling, so the same seed evaluates on the same prompts.
        num_envs: episodes run side by side.
        temperature: LM sampling temperature. deterministic: greedy decoding.
        env_kwargs: passed to ``gym.make_vec`` (``model=...``, ``kl_coef=...``). KL shaping is switched
            on (``kl_coef=0.05``) unless given, since KL and perplexity need the reference model.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env_kwargs.setdefault("kl_coef", 0.05)
    if not env_kwargs["kl_coef"] and env_kwargs.get("kl_target") is None:
        raise ValueError("evaluate needs the reference model for KL and perplexity: pass kl_coef > 0")
    if isinstance(agent, str) and agent != "reference":
        raise ValueError(f"agent must be a model, an object with predict, or 'reference'; got {agent!r}")
    # The reference sampled at temperature 1 is its own reference: its KL is 0 and the log-probs it samples
    # with are the reference's, so the env runs no reference pass at all (kl_coef=0 loads none).
    itself = (
        agent == "reference"
        and temperature == 1.0
        and not deterministic
        and env_kwargs.get("ref_model") is None
        and env_kwargs.get("kl_target") is None
    )
    # Evaluation reads whole episodes: one teacher-forced reference pass per finished episode, not a
    # cached step with every token.
    env_kwargs.setdefault("ref_logprobs", "episode_end")
    envs = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        split=split,
        autoreset_mode=AutoresetMode.DISABLED,
        **{**env_kwargs, "kl_coef": 0.0} if itself else env_kwargs,
    )
    agent = sampled_policy(agent, envs)
    generator = torch.Generator(device=envs.unwrapped.device).manual_seed(seed)
    runs: list[Episodes] = [
        sample_episodes(
            envs,
            agent,
            seed=seed + b * num_envs,
            temperature=temperature,
            deterministic=deterministic,
            generator=generator,
        )
        for b in range(math.ceil(episodes / num_envs))
    ]
    if itself:
        for r in runs:
            r.ref_logprobs, r.kl = r.logprobs, np.zeros_like(r.kl)
    scores = np.concatenate([r.scores for r in runs])
    lengths = np.concatenate([r.lengths for r in runs])
    ref_logprob_total = sum(float(r.ref_logprobs.sum()) for r in runs)
    completions = [c for r in runs for c in r.completions]
    return Evaluation(
        env_id=env_id,
        episodes=len(scores),
        score=float(scores.mean()),
        score_stderr=float(scores.std(ddof=1) / np.sqrt(len(scores))) if len(scores) > 1 else 0.0,
        kl=float(np.concatenate([r.kl for r in runs]).mean()),
        length=float(lengths.mean()),
        eos_rate=float(np.concatenate([r.stopped for r in runs]).mean()),
        distinct_1=distinct_n(completions, 1),
        distinct_2=distinct_n(completions, 2),
        perplexity=math.exp(-ref_logprob_total / max(int(lengths.sum()), 1)),
        completions=completions,
        prompts=[p for r in runs for p in r.prompts],
        scores=scores,
    )


def markdown_table(rows: Mapping[str, Evaluation], label: str = "policy") -> str:
    """A Markdown table of the figures, one row per named evaluation (KL in nats per episode)."""
    lines = [
        f"| {label} | episodes | score (± s.e.) | KL | length | EOS rate | distinct-2 | perplexity |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r.episodes} | {r.score:.3f} ± {r.score_stderr:.3f} | {r.kl:.3f} | "
            f"{r.length:.1f} | {r.eos_rate:.2f} | {r.distinct_2:.3f} | {r.perplexity:.2f} |"
        )
    return "\n".join(lines)
