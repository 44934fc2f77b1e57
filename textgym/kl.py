"""KL estimators and the KL-coefficient controllers used for reward shaping.

With ``d = log pi(a|s) - log pi_ref(a|s)`` for the sampled token ``a`` (Schulman's estimators):

- ``k1 = d``: unbiased, can be negative per token; this is what shapes the reward.
- ``k2 = d**2 / 2``.
- ``k3 = exp(-d) - 1 + d``: non-negative, low variance; logged beside k1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

Array = torch.Tensor | np.ndarray | float


def kl_k1(logprob: Array, ref_logprob: Array) -> Array:
    return logprob - ref_logprob


def kl_k2(logprob: Array, ref_logprob: Array) -> Array:
    return 0.5 * (logprob - ref_logprob) ** 2


def kl_k3(logprob: Array, ref_logprob: Array) -> Array:
    d = logprob - ref_logprob
    exp = torch.exp if isinstance(d, torch.Tensor) else np.exp
    return exp(-d) - 1 + d


@dataclass
class FixedKLController:
    """A constant KL coefficient ``beta``."""

    value: float

    def update(self, kl: float, n_steps: int) -> None:
        """No-op: a fixed coefficient ignores the measured KL."""

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


@dataclass
class AdaptiveKLController:
    """Ziegler et al. (2019) proportional controller, as in TRL <= 0.11, trlx and RL4LMs.

    ``e = clip(KL / target - 1, -0.2, 0.2)`` and ``beta <- beta * (1 + e * n_steps / horizon)``, where
    KL is the per-sequence KL (summed over tokens) averaged over a batch of ``n_steps`` episodes.
    """

    value: float  # current beta
    target: float  # KL per sequence, in nats, that beta steers towards
    horizon: int = 10_000  # episodes over which a KL error is corrected

    def __post_init__(self) -> None:
        if self.target <= 0 or self.horizon <= 0:
            raise ValueError(f"kl_target and kl_horizon must be > 0, got {self.target} and {self.horizon}")

    def update(self, kl: float, n_steps: int) -> None:
        error = float(np.clip(kl / self.target - 1.0, -0.2, 0.2))
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value, self.target, self.horizon = (
            float(state["value"]),
            float(state["target"]),
            int(state["horizon"]),
        )


KLController = FixedKLController | AdaptiveKLController


def make_kl_controller(
    kl_coef: float, kl_target: float | None = None, kl_horizon: int = 10_000
) -> KLController:
    """A fixed controller, or the adaptive one when ``kl_target`` is given."""
    if not np.isfinite(kl_coef) or kl_coef < 0:
        raise ValueError(f"kl_coef must be a finite number >= 0, got {kl_coef!r}")
    if kl_target is None:
        return FixedKLController(float(kl_coef))
    return AdaptiveKLController(float(kl_coef), float(kl_target), int(kl_horizon))
