"""PPO for language models, as in the RLHF stacks (TRL, trlx, RL4LMs), on a textgym env.

Each iteration samples ``batch_size`` episodes (KV-cached; the env pays the exact KL-shaped reward per
token). The per-token rewards the env paid, ``r_t = -beta * (log pi - log pi_ref)`` plus the score on
the last token, are turned into GAE advantages with a scalar value head on the policy's last hidden
state (a shared trunk, no separate value model), then the clipped surrogate and a clipped value loss are
minimised for ``n_epochs`` passes over shuffled minibatches, stopping early when the approximate KL
grows too large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from textgym import distributed
from textgym.agents.base import LMAgent
from textgym.agents.config import AgentConfig, arg
from textgym.rollout import Episodes


@dataclass
class PPOConfig(AgentConfig):
    renamed: ClassVar[dict[str, str]] = {
        "lam": "gae_lambda",
        "ppo_epochs": "n_epochs",
        "clip_range_value": "clip_range_vf",
        "whiten_advantages": "normalize_advantage",
        "entropy_coef": "ent_coef",
    }

    value_learning_rate: float | None = arg(
        None, "AdamW step size of the value head; None: learning_rate (TRL; OpenRLHF runs 18x)"
    )
    gamma: float = arg(1.0, "discount (TRL: 1.0)")
    gae_lambda: float = arg(
        1.0, "GAE lambda (OpenRLHF: 1.0, so the terminal score reaches the first token; TRL: 0.95)"
    )
    clip_range: float = arg(0.2, "policy ratio clipping")
    clip_range_vf: float | None = arg(0.2, "value clipping around the rollout's values; None: no clipping")
    vf_coef: float = arg(0.1, "weight of the value loss (TRL: 0.1)")
    n_epochs: int = arg(4, "passes over each batch of episodes")
    num_minibatches: int = arg(1, "minibatches per pass")
    normalize_advantage: bool = arg(True, "whiten advantages over the batch's generated tokens")
    target_kl: float | None = arg(
        None, "stop an iteration's epochs once approx KL to the rollout policy exceeds it"
    )
    ent_coef: float = arg(0.0, "bonus on the policy's entropy at generated positions")


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalised advantage estimation over ``(N, T)`` per-token rewards and values.

    Positions where ``mask`` is 0 (after the episode's end) are ignored; the value after the last token
    is 0 (the episode has terminated). Returns ``(advantages, returns)``, both ``(N, T)``.
    """
    N, T = rewards.shape
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros(N, device=rewards.device)
    next_value = torch.zeros(N, device=rewards.device)
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = next_advantage
        next_value = values[:, t] * mask[:, t]
    return advantages, (advantages + values) * mask


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Whiten ``x`` by the mean and variance of the masked entries of every rank's batch."""
    count = distributed.total(mask.sum()).to(x)
    mean = distributed.total((x * mask).sum()).to(x) / count
    var = distributed.total((((x - mean) * mask) ** 2).sum()).to(x) / count.clamp(min=2)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean over the masked entries of every rank's minibatch: data-parallel, this rank's share."""
    return (x * mask).sum() / distributed.total(mask.sum()).clamp(min=1).to(x)


class PPO(LMAgent):
    """PPO with a value head on a textgym env (see :class:`PPOConfig` for every option).

    ```python
    from textgym.agents import PPO
    agent = PPO("textgym/Pattern-v0", learning_rate=3e-3, batch_size=16).learn(total_episodes=800)
    ```
    """

    config_class: ClassVar[type[AgentConfig]] = PPOConfig
    config: PPOConfig
    value_head: ClassVar[bool] = True

    def build(self) -> None:
        if not 1 <= self.config.num_minibatches <= self.local_batch_size:
            raise ValueError(
                f"num_minibatches={self.config.num_minibatches} must be between 1 and the episodes per "
                f"iteration on each process, {self.local_batch_size}"
            )
        self.last_ratios: list[float] = []

    def param_groups(self) -> list[dict[str, Any]]:
        # A fresh value head knows nothing of the task: at the policy's small step size it stays near 0 for
        # many iterations, and until it fits the returns the advantages carry every prompt's difficulty.
        cfg = self.config
        value_lr = cfg.learning_rate if cfg.value_learning_rate is None else cfg.value_learning_rate
        return [
            {"params": [p for p in self.policy.lm_parameters() if p.requires_grad]},
            {"params": self.policy.value_parameters(), "lr": value_lr},
        ]

    def update(self, episodes: Episodes, iteration: int) -> dict[str, float]:
        cfg = self.config
        mask = episodes.completion_mask  # (N, T)
        N = mask.shape[0]
        # The old log-probs are recomputed (not the sampler's) so that the first minibatch's ratio is
        # exactly 1. With one minibatch, the first epoch's pass over the whole batch is that
        # recomputation: its outputs, detached, are the old log-probs and values, and it saves a forward
        # pass per iteration (TRL does the same for num_iterations=1). With several minibatches the whole
        # batch is evaluated first, since whitening needs every advantage before the first step.
        entropy_grad = cfg.ent_coef != 0
        first_pass = None
        if cfg.num_minibatches == 1:
            first_pass = self.evaluate_tokens(episodes, entropy_grad=entropy_grad)
        with torch.no_grad():
            if first_pass is None:
                old_logprobs, _, old_values = self.evaluate_tokens(episodes)
            else:
                old_logprobs, old_values = first_pass.logprobs.detach(), first_pass.values.detach()
            # (N, T) what the env paid per token: the KL shaping, and the score on the last token
            advantages, returns = gae(episodes.rewards, old_values * mask, mask, cfg.gamma, cfg.gae_lambda)
            if cfg.normalize_advantage:
                advantages = masked_whiten(advantages, mask)

        generator = torch.Generator().manual_seed(cfg.seed * 104_729 + iteration + (self.rank << 32))
        stats: dict[str, list[float]] = {
            k: [] for k in ("pg", "vf", "clip", "vclip", "approxkl", "ratio", "ent", "grad_norm")
        }
        self.last_ratios = []
        stopped_early = False
        for _ in range(cfg.n_epochs):
            order = torch.randperm(N, generator=generator).to(self.device)
            for rows in order.chunk(cfg.num_minibatches):
                m = mask[rows]
                if first_pass is not None:
                    logprobs, entropy, values = (x[rows] for x in first_pass)
                    first_pass = None
                else:
                    logprobs, entropy, values = self.evaluate_tokens(episodes, rows, entropy_grad)
                log_ratio = (logprobs - old_logprobs[rows]) * m
                ratio = torch.exp(log_ratio)
                adv = advantages[rows]
                pg_loss = masked_mean(
                    torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range)), m
                )
                vf_error = (values - returns[rows]) ** 2
                if cfg.clip_range_vf is not None:
                    clipped_values = old_values[rows] + (values - old_values[rows]).clamp(
                        -cfg.clip_range_vf, cfg.clip_range_vf
                    )
                    vf_error = torch.max(vf_error, (clipped_values - returns[rows]) ** 2)
                vf_loss = 0.5 * masked_mean(vf_error, m)
                loss = pg_loss + cfg.vf_coef * vf_loss - cfg.ent_coef * masked_mean(entropy, m)
                self.backward(loss)
                stats["grad_norm"].append(self.clip_and_step())
                with torch.no_grad():
                    vf_clip = cfg.clip_range_vf if cfg.clip_range_vf is not None else torch.inf
                    shares = {
                        "pg": pg_loss,
                        "vf": vf_loss,
                        "clip": masked_mean(((ratio - 1).abs() > cfg.clip_range).float(), m),
                        "vclip": masked_mean(((values - old_values[rows]).abs() > vf_clip).float(), m),
                        "approxkl": 0.5 * masked_mean(log_ratio**2, m),
                        "ratio": masked_mean(ratio, m),
                        "ent": masked_mean(entropy, m),
                    }
                    # One reduction for all: every rank sees the global figures, and stops early together.
                    figures = distributed.total(torch.stack(list(shares.values()))).tolist()
                    for key, value in zip(shares, figures, strict=True):
                        stats[key].append(value)
                    approxkl = stats["approxkl"][-1]
                    self.last_ratios.append(stats["ratio"][-1])
                if cfg.target_kl is not None and approxkl > cfg.target_kl:
                    stopped_early = True
                    break
            if stopped_early:
                break
        return {
            "loss/policy": float(np.mean(stats["pg"])),
            "loss/value": float(np.mean(stats["vf"])),
            "policy/clipfrac": float(np.mean(stats["clip"])),
            "policy/approxkl": float(np.mean(stats["approxkl"])),
            "val/clipfrac": float(np.mean(stats["vclip"])),
            "val/ratio": float(np.mean(stats["ratio"])),
            "objective/entropy": float(np.mean(stats["ent"])),
            "policy/grad_norm": float(np.mean(stats["grad_norm"])),
            "policy/early_stop": float(stopped_early),
        }
