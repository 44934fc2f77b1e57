"""Losses that fit a scalar reward to preferences: Bradley-Terry (pairs, ties), Plackett-Luce (rankings).

All return the mean negative log-likelihood over the batch.

- **Bradley-Terry**: ``P(w > l) = sigmoid(r_w - r_l)``; with a margin ``m`` (Llama 2) the loss is
  ``-log sigmoid(r_w - r_l - m)``; TRL's centering term ``c (r_w + r_l)^2`` keeps rewards near zero.
- **Ties, by half credit**: a tie counts as half a win each way, ``-(log sigmoid(d) + log sigmoid(-d)) / 2``
  with ``d = r_a - r_b``, minimised at ``d = 0``. It keeps Bradley-Terry's model of ``P(a > b)`` (the
  Rao-Kupper and Davidson extensions add a tie parameter that a reward model has no use for), and is the
  expected Bradley-Terry loss of a coin-flip label.
- **Plackett-Luce** over a ranking ``s_1 > s_2 > ... > s_k`` of ``K >= k`` completions:
  ``P = prod_{j<=k} exp(r_{s_j}) / sum_{l not in s_1..s_{j-1}} exp(r_l)``; with ``k < K`` the unranked
  completions stay in every denominator (a top-k ranking). With ``K = 2`` it is Bradley-Terry.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    margin: torch.Tensor | float = 0.0,
    center_coef: float = 0.0,
) -> torch.Tensor:
    """``mean(-log sigmoid(r_chosen - r_rejected - margin) + center_coef * (r_chosen + r_rejected)^2)``.

    ``chosen``, ``rejected`` and a tensor ``margin`` have shape ``(N,)``.
    """
    loss = -F.logsigmoid(chosen - rejected - margin)
    if center_coef:
        loss = loss + center_coef * (chosen + rejected) ** 2
    return loss.mean()


def tie_loss(a: torch.Tensor, b: torch.Tensor, center_coef: float = 0.0) -> torch.Tensor:
    """Half credit each way: ``mean(-(log sigmoid(a - b) + log sigmoid(b - a)) / 2)``, shapes ``(N,)``."""
    d = a - b
    loss = -(F.logsigmoid(d) + F.logsigmoid(-d)) / 2
    if center_coef:
        loss = loss + center_coef * (a + b) ** 2
    return loss.mean()


def plackett_luce_loss(
    rewards: torch.Tensor, ranking: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean negative Plackett-Luce log-likelihood of rankings.

    Args:
        rewards: ``(N, K)`` rewards of each record's completions (records with fewer than ``K`` completions
            are padded; ``valid`` marks the real ones).
        ranking: ``(N, K)`` int64 completion indices, best first; ``-1`` after a record's last ranked one.
        valid: ``(N, K)`` bool, the real completions; None: all.
    """
    N, K = rewards.shape
    remaining = torch.ones_like(rewards, dtype=torch.bool) if valid is None else valid.clone()
    rows = torch.arange(N, device=rewards.device)
    nll = rewards.new_zeros(N)
    for j in range(K):
        index = ranking[:, j]
        ranked = index >= 0  # (N,) records with a j-th ranked completion
        if not ranked.any():
            break
        pick = index.clamp(min=0)
        # Rows without a j-th ranked completion get a dummy, finite denominator: a row of -inf would give
        # NaN gradients through logsumexp even where torch.where drops its value.
        pool = rewards.masked_fill(~remaining, float("-inf"))
        pool = torch.where(ranked[:, None], pool, torch.zeros_like(pool).detach())
        denominator = torch.logsumexp(pool, dim=-1)  # (N,)
        term = rewards[rows, pick] - denominator
        nll = nll - torch.where(ranked, term, torch.zeros_like(term))
        remaining = remaining & ~(F.one_hot(pick, K).bool() & ranked[:, None])
    return nll.mean()
