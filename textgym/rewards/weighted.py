"""A reward that is a weighted sum of other rewards."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from textgym.rewards.protocol import RewardFn, resolve_reward, reward_name, score_completions

__all__ = ["WeightedSum"]


class WeightedSum:
    """``sum_i weight_i * part_i(prompts, completions, **kwargs)``, itself a reward.

    Each part is called once per batch and validated on its own, so an error names the failing part rather
    than only the sum.

    Example:
        >>> reward = WeightedSum({"my_rewards:length_penalty": 0.5, classifier: 1.0})  # doctest: +SKIP
        >>> reward(prompts, completions)  # doctest: +SKIP
        >>> reward.last_components  # doctest: +SKIP
        {'my_rewards.length_penalty': array([...]), 'SequenceClassifierReward': array([...])}

    Attributes:
        parts: The resolved ``(reward, weight)`` pairs, in the order given.
        last_components: The per-part scores (unweighted) of the most recent evaluation, keyed by part name
            (as in :meth:`score_parts`), or None before the first; handy for logging each term.
    """

    def __init__(
        self, parts: Mapping[RewardFn | str, float] | Iterable[tuple[RewardFn | str, float]]
    ) -> None:
        """Resolve and check the parts.

        Args:
            parts: ``{reward_or_spec: weight}`` or ``[(reward_or_spec, weight), ...]``; each reward is
                resolved with :func:`~textgym.rewards.resolve_reward`. The list form allows a reward twice.

        Raises:
            ValueError: if there are no parts, an entry is not a pair, or a weight is not a finite number.
            TypeError, ImportError: if a reward spec cannot be resolved (see ``resolve_reward``).
        """
        pairs = list(parts.items()) if isinstance(parts, Mapping) else list(parts)
        if not pairs:
            raise ValueError("WeightedSum needs at least one (reward, weight) part")
        resolved: list[tuple[RewardFn, float]] = []
        for entry in pairs:
            if not (isinstance(entry, tuple) and len(entry) == 2):
                raise ValueError(f"each WeightedSum part must be a (reward, weight) pair, got {entry!r}")
            spec, weight = entry
            fn = resolve_reward(spec)
            resolved.append((fn, _check_weight(weight, fn)))
        self.parts: tuple[tuple[RewardFn, float], ...] = tuple(resolved)
        self.last_components: dict[str, np.ndarray] | None = None
        self._keys = _unique_keys([reward_name(fn) for fn, _ in self.parts])

    @property
    def name(self) -> str:
        """The composition, e.g. ``WeightedSum(0.5*mod.length_penalty - 1.0*SequenceClassifierReward)``."""
        text = ""
        for i, (fn, weight) in enumerate(self.parts):
            term = f"{abs(weight)!r}*{reward_name(fn)}"
            if i == 0:
                text = f"-{term}" if weight < 0 else term
            else:
                text += f" {'-' if weight < 0 else '+'} {term}"
        return f"WeightedSum({text})"

    def __repr__(self) -> str:
        return self.name

    def score_parts(self, prompts: list[str], completions: list[str], **kwargs: Any) -> dict[str, np.ndarray]:
        """Score the batch with every part, unweighted.

        Args:
            prompts: One prompt per finished episode.
            completions: The completions, aligned with ``prompts``.
            **kwargs: Dataset columns and extra keys, passed to every part.

        Returns:
            ``{part name: float64 array of shape (len(prompts),)}`` in part order; a name shared by several
            parts gets a ``#2``, ``#3``... suffix from its second occurrence on. Also stored as
            :attr:`last_components`.

        Raises:
            RewardError: naming the failing part, as :func:`~textgym.rewards.score_completions` does.
        """
        components = {
            key: score_completions(fn, prompts, completions, **kwargs)
            for key, (fn, _) in zip(self._keys, self.parts, strict=True)
        }
        self.last_components = components
        return components

    def __call__(self, prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
        """The weighted sum of the parts' scores, one float per completion."""
        components = self.score_parts(prompts, completions, **kwargs)
        total = np.zeros(len(prompts), dtype=np.float64)
        for (_, weight), scores in zip(self.parts, components.values(), strict=True):
            total += weight * scores
        return total.tolist()


def _check_weight(weight: object, fn: RewardFn) -> float:
    # bool is an Integral, but a True/False weight is almost certainly a mistake.
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight):
        raise ValueError(f"the weight of reward {reward_name(fn)} must be a finite number, got {weight!r}")
    return float(weight)


def _unique_keys(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    keys = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys
