"""A simulated annotator: preferences drawn from a hidden gold reward with Bradley-Terry noise.

For experiments without people (the reward over-optimisation curve needs a gold reward the policy never
sees). Given completions ``a`` and ``b`` with gold rewards ``g_a`` and ``g_b``, the annotator prefers ``a``
with probability ``sigmoid((g_a - g_b) / temperature)``, the Bradley-Terry model a reward model fits; a
ranking of ``K`` completions is a Plackett-Luce draw with strengths ``exp(g / temperature)`` (the Gumbel
trick: sort ``g / temperature`` plus independent Gumbel noise). ``temperature=0`` is a noiseless annotator
that calls a tie when the gold rewards are equal.

The best accuracy any reward model can reach on such labels, the noise ceiling, is the mean of
``max(p, 1 - p)`` over the pairs: :meth:`SimulatedAnnotator.noise_ceiling`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from textgym.preferences.data import Comparison, Ranking
from textgym.rewards.protocol import RewardFn, resolve_reward, score_completions


class SimulatedAnnotator:
    """Judges completions by a gold reward plus Bradley-Terry noise; writes what a person would.

    Args:
        gold: the hidden reward, ``fn(prompts, completions, **columns) -> list[float]`` or an import string.
        temperature: the noise, in the gold reward's units (> 0; 0: noiseless, ties on equal gold).
        seed: seeds the draws.
    """

    def __init__(self, gold: RewardFn | str | None, temperature: float = 1.0, seed: int = 0) -> None:
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        self.gold = resolve_reward(gold) if gold is not None else None
        self.temperature = float(temperature)
        self.rng = np.random.default_rng(seed)

    def _values(
        self, prompts: list[str], completions: list[str], given: Any, columns: dict[str, Any]
    ) -> np.ndarray:
        """The gold rewards of ``completions``: ``given`` when the caller has them, else scored now."""
        if given is not None:
            return np.asarray(given, dtype=np.float64)
        if self.gold is None:
            raise ValueError("this annotator has no gold reward: pass the completions' gold values")
        return score_completions(self.gold, prompts, completions, **columns)

    def probability(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """``(N,)`` probability of preferring completions of gold ``first`` to those of gold ``second``."""
        first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
        if self.temperature == 0:
            return np.where(first > second, 1.0, np.where(first < second, 0.0, 0.5))
        return 1.0 / (1.0 + np.exp(-(first - second) / self.temperature))

    def preference_probability(
        self, prompts: list[str], first: list[str], second: list[str], **columns: list[Any]
    ) -> np.ndarray:
        """``(N,)`` probability that the annotator prefers ``first[i]`` to ``second[i]``."""
        return self.probability(
            self._values(prompts, first, None, columns), self._values(prompts, second, None, columns)
        )

    def compare(
        self,
        prompts: list[str],
        first: list[str],
        second: list[str],
        gold_first: Any = None,
        gold_second: Any = None,
        **columns: list[Any],
    ) -> list[Comparison]:
        """One judgment per pair: chosen and rejected, or a tie (noiseless annotator, equal gold).

        ``gold_first``/``gold_second`` give the completions' gold rewards when known (an env's episodes
        carry them); else the gold reward scores them, with ``columns``.
        """
        p = self.probability(
            self._values(prompts, first, gold_first, columns),
            self._values(prompts, second, gold_second, columns),
        )
        wins = self.rng.random(len(p)) < p
        return [
            Comparison(prompt, a, b, tie=True)
            if self.temperature == 0 and q == 0.5
            else Comparison(prompt, a, b)
            if win
            else Comparison(prompt, b, a)
            for prompt, a, b, q, win in zip(prompts, first, second, p, wins, strict=True)
        ]

    def rank(self, prompt: str, completions: list[str], gold: Any = None, **columns: Any) -> Ranking:
        """A full ranking of ``completions``, best first, drawn by Plackett-Luce (a column: one value)."""
        n = len(completions)
        g = self._values([prompt] * n, completions, gold, {k: [v] * n for k, v in columns.items()})
        keys = g if self.temperature == 0 else g / self.temperature + self.rng.gumbel(size=n)
        order = np.argsort(-keys, kind="stable")
        return Ranking(prompt, tuple(completions), tuple(int(i) for i in order))

    @staticmethod
    def noise_ceiling(probabilities: np.ndarray) -> float:
        """The expected accuracy of the best possible predictor on these pairs: ``mean(max(p, 1 - p))``."""
        p = np.asarray(probabilities, dtype=np.float64)
        return float(np.maximum(p, 1.0 - p).mean())
