"""REINFORCE for language models, with the baselines of the RLHF literature (RLOO, GRPO and friends).

Each iteration samples ``batch_size`` episodes through the env (KV-cached, log-probs announced so the
env pays the exact KL-shaped reward), turns each episode's return, what the env paid over its steps
(``R = score - beta * sum_t KL_t``), into an advantage with the chosen baseline, and takes one gradient
step on ``-A * log pi(completion | prompt)`` aggregated as configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from textgym import distributed
from textgym.agents.base import LMAgent
from textgym.agents.config import AgentConfig, arg
from textgym.rollout import Episodes


@dataclass
class REINFORCEConfig(AgentConfig):
    renamed: ClassVar[dict[str, str]] = {"entropy_coef": "ent_coef"}

    baseline: Literal["none", "moving_average", "batch_mean", "rloo", "group"] = arg(
        "rloo",
        "what R is compared to: none, moving_average, batch_mean, rloo (leave-one-out) or group (GRPO)",
    )
    num_generations: int = arg(
        4,
        "episodes per prompt for 'rloo' and 'group'; 2 (TRL's RLOO default, and ours before) scored lower on "
        "Sentiment-v0 at 640 episodes: docs/sentiment-640",
    )
    scale_rewards: bool = arg(True, "'group': divide by the group's std (GRPO); False gives Dr.GRPO")
    moving_average_decay: float = arg(0.9, "'moving_average': weight of the old baseline per iteration")
    loss_aggregation: Literal["sequence_mean", "token_mean", "token_sum"] = arg(
        "token_mean", "reduction over tokens: sequence_mean, token_mean (DAPO) or token_sum (Dr.GRPO)"
    )
    ent_coef: float = arg(0.0, "bonus on the policy's entropy at generated positions")


def rloo_advantages(returns: torch.Tensor, group: int) -> torch.Tensor:
    """``A_i = R_i - mean_{j != i} R_j`` within consecutive groups of ``group`` episodes (same prompt)."""
    grouped = returns.view(-1, group)  # (N / k, k)
    others = (grouped.sum(-1, keepdim=True) - grouped) / (group - 1)
    return (grouped - others).view(-1)


def group_advantages(returns: torch.Tensor, group: int, scale: bool, eps: float = 1e-4) -> torch.Tensor:
    """GRPO: ``(R_i - mean_g) / (std_g + eps)`` within groups (``scale=False``: no std, Dr.GRPO)."""
    grouped = returns.view(-1, group)
    centred = grouped - grouped.mean(-1, keepdim=True)
    if scale:
        centred = centred / (grouped.std(-1, keepdim=True) + eps)
    return centred.view(-1)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Reduce a ``(N, T)`` per-token loss over the generated tokens of the global batch.

    - ``sequence_mean``: mean over episodes of each episode's token mean (GRPO's original; favours
      short answers when advantages are negative, long ones when positive).
    - ``token_mean``: sum over all tokens divided by their count (DAPO): every token weighs the same.
    - ``token_sum``: sum divided by a constant, ``N * T`` (Dr.GRPO): no length normalisation at all.

    The denominators count every rank's episodes, so data-parallel this is the rank's share of the
    global loss (the shares sum to it); in one process it is the loss.
    """
    if how == "sequence_mean":
        per_episode = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_episode.sum() / distributed.total(mask.shape[0]).to(per_token)
    if how == "token_mean":
        return (per_token * mask).sum() / distributed.total(mask.sum()).clamp(min=1).to(per_token)
    if how == "token_sum":
        width = distributed.largest(mask.shape[1])
        return (per_token * mask).sum() / (distributed.total(mask.shape[0]).to(per_token) * width)
    raise ValueError(f"loss_aggregation must be sequence_mean, token_mean or token_sum, got {how!r}")


class REINFORCE(LMAgent):
    """REINFORCE with a baseline on a textgym env (see :class:`REINFORCEConfig` for every option).

    ```python
    from textgym.agents import REINFORCE
    agent = REINFORCE("textgym/Pattern-v0", learning_rate=3e-3, batch_size=16).learn(total_episodes=800)
    ```
    """

    config_class: ClassVar[type[AgentConfig]] = REINFORCEConfig
    config: REINFORCEConfig

    def build(self) -> None:
        cfg = self.config
        grouped = cfg.baseline in ("rloo", "group")
        if grouped and (cfg.num_generations < 2 or cfg.batch_size % cfg.num_generations):
            raise ValueError(
                f"baseline={cfg.baseline!r} needs num_generations >= 2 dividing batch_size, got "
                f"num_generations={cfg.num_generations}, batch_size={cfg.batch_size}"
            )
        aggregate(torch.zeros(1, 1), torch.ones(1, 1), cfg.loss_aggregation)  # validates the name
        self.running_baseline: float | None = None

    def group_size(self) -> int:
        return self.config.num_generations if self.config.baseline in ("rloo", "group") else 1

    def advantages(self, returns: torch.Tensor) -> torch.Tensor:
        """``(N,)`` advantages of the returns under the configured baseline (a group is on one rank)."""
        cfg = self.config
        if cfg.baseline == "none":
            return returns
        mean = (distributed.total(returns.sum()) / distributed.total(len(returns))).to(returns)
        if cfg.baseline == "batch_mean":
            return returns - mean
        if cfg.baseline == "rloo":
            return rloo_advantages(returns, cfg.num_generations)
        if cfg.baseline == "group":
            return group_advantages(returns, cfg.num_generations, cfg.scale_rewards)
        if cfg.baseline == "moving_average":
            baseline = mean.item() if self.running_baseline is None else self.running_baseline
            advantages = returns - baseline
            decay = cfg.moving_average_decay
            self.running_baseline = decay * baseline + (1 - decay) * mean.item()
            return advantages
        raise ValueError(f"unknown baseline {cfg.baseline!r}")

    def update(self, episodes: Episodes, iteration: int) -> dict[str, float]:
        cfg = self.config
        mask = episodes.completion_mask  # (N, T)
        advantages = self.advantages(episodes.returns).detach()  # (N,) from what the env paid

        logprobs, entropy, _ = self.evaluate_tokens(episodes, entropy_grad=cfg.ent_coef != 0)  # (N, T)
        loss = aggregate(-advantages[:, None] * logprobs - cfg.ent_coef * entropy, mask, cfg.loss_aggregation)
        self.backward(loss)
        grad_norm = self.clip_and_step()
        all_advantages = distributed.gather(advantages)
        entropy_sum = distributed.total((entropy.detach() * mask).sum())
        return {
            "loss/policy": float(distributed.total(loss.item())),
            "objective/entropy": float(entropy_sum / distributed.total(mask.sum()).clamp(min=1)),
            "objective/advantage_std": float(all_advantages.std(ddof=1)) if len(all_advantages) > 1 else 0.0,
            "policy/grad_norm": grad_norm,
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "running_baseline": self.running_baseline}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        baseline = state["running_baseline"]
        self.running_baseline = None if baseline is None or np.isnan(baseline) else float(baseline)
